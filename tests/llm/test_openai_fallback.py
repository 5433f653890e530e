"""The openai backend's structured-output fallback against a scripted server that refuses ``response_format``.

The real server (llama-cpp-python's, which refuses ``json_schema`` and takes ``json_object``) is in
tests/llm/test_llama_server.py; this file pins the failure paths a real server does not offer at will.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from synthdiv.config.models import LLMSpec
from synthdiv.models.llm import create_llm
from synthdiv.models.llm.cache import CachedLLM, request_key
from synthdiv.models.llm.openai_backend import LLMServerError, OpenAILLM
from synthdiv.models.llm.structured import ask_list, list_schema

MSG = [{"role": "user", "content": "Name two colours."}]
SCHEMA = list_schema(2, 1, 20)


class Refuser:
    """Answers ``["red", "blue"]``, or ``code`` to a request that has a response_format (``always``: to any)."""

    def __init__(self) -> None:
        self.code = 400
        self.message = b'{"error": {"message": "response_format is not supported"}}'
        self.always = False
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()


@pytest.fixture
def refuser() -> Iterator[tuple[str, Refuser]]:
    state = Refuser()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.bodies.append(body)
            if state.always or "response_format" in body:
                code, payload = state.code, state.message
            else:
                code = 200
                payload = json.dumps({"choices": [{"message": {"content": '["red", "blue"]'}}]}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _llm(url: str, **options: Any) -> OpenAILLM:
    llm = create_llm(LLMSpec(backend="openai", model="m", options={"base_url": url, "max_retries": 0, **options}))
    assert isinstance(llm, OpenAILLM)
    return llm


@pytest.mark.parametrize("code", [400, 422, 500])  # 500: llama-cpp-python's validation error, naming the field
def test_a_refused_schema_is_dropped_once_and_remembered(
    refuser: tuple[str, Refuser], code: int, caplog: pytest.LogCaptureFixture
) -> None:
    url, state = refuser
    state.code = code
    llm = _llm(url)
    assert llm.supports_json_schema
    with caplog.at_level(logging.WARNING, logger="synthdiv.models.llm.openai_backend"):
        assert llm.complete(MSG, json_schema=SCHEMA) == ['["red", "blue"]']
        assert llm.complete(MSG, n=2, seed=4, json_schema=SCHEMA) == ['["red", "blue"]'] * 2
    first, retry, *later = state.bodies
    assert first["response_format"] == {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}}
    assert retry == {k: v for k, v in first.items() if k != "response_format"}  # the same request, once, without it
    assert len(later) == 2 and not any("response_format" in b for b in later)  # remembered: not offered again
    assert not llm.supports_json_schema
    (warning,) = caplog.records
    assert f"HTTP {code}" in warning.getMessage() and "decodes freely from now on" in warning.getMessage()
    assert _llm(url).supports_json_schema  # per backend instance


def test_a_refusal_that_is_not_about_the_schema_is_raised(refuser: tuple[str, Refuser]) -> None:
    url, state = refuser
    state.always = True  # refused without response_format too: the schema was not the problem
    llm = _llm(url)
    with pytest.raises(LLMServerError, match="HTTP 400"):
        llm.complete(MSG, json_schema=SCHEMA)
    assert len(state.bodies) == 2 and llm.supports_json_schema  # nothing remembered
    state.always, state.code = False, 401
    with pytest.raises(LLMServerError, match="HTTP 401"):
        llm.complete(MSG, json_schema=SCHEMA)
    assert len(state.bodies) == 3 and llm.supports_json_schema  # an auth error is not retried without the schema
    state.code, state.message = 500, b'{"error": {"message": "out of memory"}}'
    with pytest.raises(LLMServerError, match="HTTP 500 after 2 tries"):
        _llm(url, max_retries=1, backoff_s=0).complete(MSG, json_schema=SCHEMA)
    assert len(state.bodies) == 5 and all("response_format" in b for b in state.bodies[3:])  # retried as it was


def test_schema_format_none_never_sends_it(refuser: tuple[str, Refuser]) -> None:
    url, state = refuser
    llm = _llm(url, schema_format="none")
    assert not llm.supports_json_schema
    assert llm.complete(MSG, json_schema=SCHEMA) == ['["red", "blue"]'] and len(state.bodies) == 1


def test_ask_list_behind_the_cache_stores_the_fallback_as_free_answers(
    refuser: tuple[str, Refuser], tmp_path: Path
) -> None:
    url, state = refuser
    spec = LLMSpec(backend="openai", model="m", options={"base_url": url, "max_retries": 0})
    llm = create_llm(spec, cache_dir=tmp_path)
    assert isinstance(llm, CachedLLM) and llm.supports_json_schema
    ans = ask_list(llm, MSG, n_items=2, max_len=20, seed=7)
    assert ans.ok and ans.items == ["red", "blue"] and len(state.bodies) == 2
    (entry,) = tmp_path.rglob("*.json")  # stored under the free request's key: it was decoded freely
    assert entry.stem == request_key("openai", "m", MSG, 1, 0.7, 7, 512, None)
    assert ask_list(llm, MSG, n_items=2, max_len=20, seed=7).items == ["red", "blue"]  # now asked free: a hit
    assert len(state.bodies) == 2 and llm.stats.as_dict() == {"hits": 1, "misses": 1}
