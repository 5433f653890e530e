"""The openai backend against a scripted local HTTP server: request shape, key handling, retries, timeouts, errors."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from synthdiv.config.models import LLMSpec
from synthdiv.errors import ConfigError, SynthdivError
from synthdiv.models.llm import create_llm
from synthdiv.models.llm.openai_backend import LLMServerError
from synthdiv.models.llm.structured import LIST_SCHEMA

SECRET = "sk-test-secret-0123456789"
MSG = [{"role": "user", "content": "hi"}]


class Script:
    """What the server does, request by request: ("ok", text) | ("status", code, headers) | ("hang", s) | ("raw", b).

    The server counts the requests in flight itself (``in_flight``, ``max_in_flight``); with ``gather`` set, each
    request is held until that many were in flight at once, so concurrency is measured by the server's count, not
    by a clock. A "hang" lasts until ``release`` is set (at the fixture's end) or its seconds pass.
    """

    def __init__(self) -> None:
        self.steps: deque[tuple[Any, ...]] = deque()
        self.default: tuple[Any, ...] = ("echo",)
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrived = threading.Condition(self.lock)
        self.gather = 0
        self.hanging = 0
        self.release = threading.Event()
        self.delay = 0.0
        self.usage: int | None = None  # completion_tokens in each answer's "usage" (None: no usage, as some servers)

    def next(self) -> tuple[Any, ...]:
        with self.lock:
            return self.steps.popleft() if self.steps else self.default


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with script.lock:
                script.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                script.in_flight += 1
                script.max_in_flight = max(script.max_in_flight, script.in_flight)
                script.arrived.notify_all()
                if script.gather:  # held until `gather` requests were in flight together (60 s at most)
                    script.arrived.wait_for(lambda: script.max_in_flight >= script.gather, timeout=60)
            time.sleep(script.delay)
            with script.lock:  # counted out before answering: the client frees its slot only once answered
                script.in_flight -= 1
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._answer(script.next(), body)

        def _answer(self, step: tuple[Any, ...], body: dict[str, Any]) -> None:
            kind = step[0]
            if kind == "hang":
                with script.lock:
                    script.hanging += 1
                script.release.wait(step[1])
                with script.lock:
                    script.hanging -= 1
                return
            if kind == "status":
                payload, code, headers = b'{"error": {"message": "busy"}}', step[1], step[2] if len(step) > 2 else {}
            elif kind == "raw":
                payload, code, headers = step[1], 200, {}
            else:
                text = step[1] if kind == "ok" else f"seed={body.get('seed')}"
                answer = {"choices": [{"message": {"role": "assistant", "content": text}}]}
                if script.usage is not None:
                    answer["usage"] = {"completion_tokens": script.usage, "prompt_tokens": 9}
                payload = json.dumps(answer).encode()
                code, headers = 200, {}
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", script
    finally:
        script.release.set()
        httpd.shutdown()
        httpd.server_close()


def _llm(base_url: str, **options: Any):
    opts = {"base_url": base_url, "backoff_s": 0.01, "max_backoff_s": 0.05, **options}
    return create_llm(LLMSpec(backend="openai", model="tiny-model", options=opts))


def test_request_shape_and_key_never_logged(
    server: tuple[str, Script], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url, script = server
    monkeypatch.setenv("SYNTHDIV_TEST_KEY", SECRET)
    script.steps.extend([("status", 500), ("ok", '["a", "b"]')])
    llm = _llm(url, api_key_env="SYNTHDIV_TEST_KEY")
    with caplog.at_level(logging.DEBUG):
        assert llm.complete(MSG, temperature=0.3, seed=5, max_tokens=17) == ['["a", "b"]']
    req = script.requests[-1]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {SECRET}"
    body = req["body"]
    assert body == {"model": "tiny-model", "messages": MSG, "temperature": 0.3, "max_tokens": 17, "seed": 5}
    assert "retrying" in caplog.text  # the 500 was logged...
    assert SECRET not in caplog.text and SECRET not in repr(llm)  # ...without the key
    assert llm.model_id == "openai:tiny-model" and SECRET not in llm.model_id


def test_missing_key_variable_is_a_config_error_only_when_a_request_is_sent(
    server: tuple[str, Script], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, script = server
    monkeypatch.setenv("SYNTHDIV_TEST_KEY", SECRET)
    spec = LLMSpec(backend="openai", model="m", options={"base_url": url, "api_key_env": "SYNTHDIV_TEST_KEY"})
    assert create_llm(spec, cache_dir=tmp_path).complete(MSG, seed=1) == ["seed=1"]
    assert SECRET not in "".join(p.read_text() for p in tmp_path.rglob("*.json"))

    monkeypatch.delenv("SYNTHDIV_TEST_KEY")
    rerun = create_llm(spec, cache_dir=tmp_path)  # no key: the cached answer is still served
    assert rerun.complete(MSG, seed=1) == ["seed=1"] and len(script.requests) == 1
    with pytest.raises(ConfigError, match=r"models\.llm\.options\.api_key_env: .*SYNTHDIV_TEST_KEY"):
        rerun.complete(MSG, seed=2)


def test_n_samples_are_separate_seeded_requests_within_the_concurrency_limit(server: tuple[str, Script]) -> None:
    url, script = server
    script.delay = 0.15
    llm = _llm(url, concurrency=2)
    assert llm.complete(MSG, n=6, seed=10) == [f"seed={s}" for s in range(10, 16)]
    assert len(script.requests) == 6 and script.max_in_flight == 2


def test_native_n(server: tuple[str, Script]) -> None:
    url, script = server
    script.steps.append(("raw", json.dumps({"choices": [{"message": {"content": t}} for t in "xyz"]}).encode()))
    assert _llm(url, native_n=True).complete(MSG, n=3, seed=1) == ["x", "y", "z"]
    assert script.requests[0]["body"]["n"] == 3


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("json_schema", {"type": "json_schema", "json_schema": {"name": "answer", "schema": LIST_SCHEMA}}),
        ("json_object", {"type": "json_object", "schema": LIST_SCHEMA}),
        ("none", None),
    ],
)
def test_schema_formats(server: tuple[str, Script], fmt: str, expected: dict | None) -> None:
    url, script = server
    llm = _llm(url, schema_format=fmt)
    assert llm.supports_json_schema is (expected is not None)
    llm.complete(MSG, json_schema=LIST_SCHEMA)
    assert script.requests[0]["body"].get("response_format") == expected


def test_retries_429_and_5xx_with_backoff_honouring_retry_after(server: tuple[str, Script]) -> None:
    url, script = server
    script.steps.extend([("status", 429, {"Retry-After": "0.3"}), ("status", 502), ("ok", "fine")])
    t0 = time.monotonic()
    assert _llm(url, max_retries=3, max_backoff_s=1.0).complete(MSG) == ["fine"]
    assert len(script.requests) == 3 and time.monotonic() - t0 >= 0.3


def test_gives_up_after_bounded_retries(server: tuple[str, Script]) -> None:
    url, script = server
    script.default = ("status", 503)
    with pytest.raises(LLMServerError, match=r"HTTP 503 after 3 tries") as err:
        _llm(url, max_retries=2).complete(MSG)
    assert url in str(err.value) and "\n" not in str(err.value)
    assert len(script.requests) == 3


def test_client_error_is_not_retried(server: tuple[str, Script]) -> None:
    url, script = server
    script.default = ("status", 404)
    with pytest.raises(LLMServerError, match=r"refused the request with HTTP 404 \(check"):
        _llm(url, max_retries=3).complete(MSG)
    assert len(script.requests) == 1


@pytest.mark.timeout(120)
def test_timeout_on_a_hanging_server(server: tuple[str, Script]) -> None:
    url, script = server
    script.default = ("hang", 90.0)
    with pytest.raises(LLMServerError, match=r"did not answer within 0.3s .* after 2 tries"):
        _llm(url, timeout_s=0.3, max_retries=1).complete(MSG)
    assert len(script.requests) == 2
    assert script.hanging == 2  # both tries are still unanswered: the client gave up on its own, by its timeout


def test_not_a_chat_completion(server: tuple[str, Script]) -> None:
    url, script = server
    script.default = ("raw", b"<html>proxy says hello</html>")
    with pytest.raises(LLMServerError, match="not a chat completion: <html>proxy says hello"):
        _llm(url).complete(MSG)


def test_unreachable_server_names_the_url() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(SynthdivError, match=rf"cannot reach the LLM server at {url}/chat/completions after 2 tries"):
        _llm(url, max_retries=1).complete(MSG)


def test_complete_many_sends_requests_concurrently_in_order(server: tuple[str, Script], tmp_path: Path) -> None:
    from synthdiv.models.llm.base import Request, complete_many

    url, script = server
    script.gather, script.delay = 4, 0.05  # the first four are held until all four are in flight
    requests = [Request(MSG, seed=s) for s in range(8)]
    assert complete_many(_llm(url, concurrency=4), requests) == [[f"seed={s}"] for s in range(8)]
    assert script.max_in_flight == 4  # four at once (one at a time never gets there), and never a fifth
    # behind the cache: each answer is stored under the key of the sequential path
    cached = create_llm(LLMSpec(backend="openai", model="tiny-model", options={"base_url": url, "concurrency": 4}),
                        cache_dir=tmp_path)
    assert cached.complete_many(requests[:3]) == [[f"seed={s}"] for s in range(3)]
    before = len(script.requests)
    assert cached.complete(MSG, seed=2) == ["seed=2"] and len(script.requests) == before


def test_complete_many_stops_sending_after_a_refusal(server: tuple[str, Script]) -> None:
    from synthdiv.models.llm.base import Request

    url, script = server
    script.delay = 0.05
    script.steps.append(("status", 400))
    with pytest.raises(LLMServerError, match="HTTP 400"):
        _llm(url, concurrency=2).complete_many([Request(MSG, seed=s) for s in range(40)])
    assert len(script.requests) < 40  # the requests not yet sent were dropped


def test_the_tokens_the_server_counts_reach_the_stage_tally(server: tuple[str, Script]) -> None:
    """``usage.completion_tokens`` of every answer, also from the worker threads of concurrent requests and of
    ``n`` samples, is reported to the round's observer; an answer without ``usage`` reports none."""
    from synthdiv.models.llm.base import Request, complete_many
    from synthdiv.models.llm.progress import count_tokens, llm_progress

    url, script = server
    script.usage = 7
    llm = _llm(url, concurrency=4)
    with count_tokens() as tally, llm_progress("LLM", 1):
        complete_many(llm, [Request(MSG, seed=s) for s in range(5)])
        llm.complete(MSG, n=3)
    assert tally.total == 7 * (5 + 3)
    script.usage = None
    with count_tokens() as none, llm_progress("LLM", 1):
        llm.complete(MSG)
    assert none.total == 0
