"""The openai backend against a REAL OpenAI-compatible server: llama-cpp-python's, serving the embedded SmolLM2 GGUF.

The server is started on a free loopback port by the fixture and stopped after the module. The test is skipped
(with the reason) only when llama_cpp is not installed; ``make dev`` installs it (see the Makefile).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthdiv.config import LLMSpec
from synthdiv.llm import CachedLLM, create_llm
from synthdiv.llm.openai_backend import OpenAILLM
from synthdiv.llm.structured import LIST_SCHEMA, ask_list

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (make dev builds it)")

pytestmark = pytest.mark.slow

MSG = [{"role": "user", "content": "Name three colours."}]
STARTUP_S = 180


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from synthdiv.llm.llama_server import serve_embedded

    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    try:
        with serve_embedded(log, threads=2, startup_s=STARTUP_S) as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


def _llm(url: str, **options) -> OpenAILLM:
    spec = LLMSpec(backend="openai", model="smollm2", options={"base_url": url, "schema_format": "json_object",
                                                                "timeout_s": 120, **options})
    return create_llm(spec)


def test_chat_completion_is_deterministic_under_a_seed(server_url: str) -> None:
    llm = _llm(server_url)
    a = llm.complete(MSG, n=2, temperature=0.9, seed=11, max_tokens=12)
    assert len(a) == 2 and all(isinstance(t, str) and t.strip() for t in a)
    assert llm.complete(MSG, n=2, temperature=0.9, seed=11, max_tokens=12) == a


def test_constrained_decoding_returns_a_json_list(server_url: str) -> None:
    llm = _llm(server_url)
    assert llm.supports_json_schema
    messages = [{"role": "user", "content": "List three colours as a JSON list of strings."}]
    (text,) = llm.complete(messages, temperature=0.2, seed=0, max_tokens=128, json_schema=LIST_SCHEMA)
    value = json.loads(text)  # the grammar forces a JSON array of strings; without it SmolLM2 writes prose
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    ans = ask_list(llm, messages, n_items=2, max_retries=1, temperature=0.2, seed=0, max_tokens=128)
    assert ans.attempts <= 2 and (ans.ok or ans.error)  # whether SmolLM2's strings are usable is its own affair


def test_cache_in_front_of_the_server(server_url: str, tmp_path: Path) -> None:
    cached = CachedLLM(_llm(server_url), tmp_path)
    first = cached.complete(MSG, temperature=0.5, seed=3, max_tokens=8)
    assert cached.complete(MSG, temperature=0.5, seed=3, max_tokens=8) == first
    assert cached.stats.as_dict() == {"hits": 1, "misses": 1}
    (entry,) = tmp_path.rglob("*.json")
    assert json.loads(entry.read_text())["model_id"] == "openai:smollm2"
    assert server_url not in entry.read_text()
