"""The openai backend against a REAL OpenAI-compatible server: llama-cpp-python's, serving the embedded SmolLM2 GGUF.

The server is started on a free loopback port by the fixture and stopped after the module. The test is skipped
(with the reason) only when llama_cpp is not installed; ``make dev`` installs it (see the Makefile).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthdiv.config.models import LLMSpec
from synthdiv.models.llm import create_llm
from synthdiv.models.llm.cache import CachedLLM
from synthdiv.models.llm.openai_backend import OpenAILLM
from synthdiv.models.llm.structured import ask_list, list_schema

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (make dev builds it)")

pytestmark = pytest.mark.slow

MSG = [{"role": "user", "content": "Name three colours."}]
STARTUP_S = 180


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from synthdiv.models.llm.llama_server import serve_embedded

    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    try:
        with serve_embedded(log, threads=2, startup_s=STARTUP_S) as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


def _llm(url: str, **options: Any) -> OpenAILLM:
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
    schema = list_schema(3, 1, 30)
    for seed in range(3):  # the grammar forces exactly this JSON; without it SmolLM2 writes prose
        (text,) = llm.complete(messages, temperature=0.8, seed=seed, max_tokens=128, json_schema=schema)
        value = json.loads(text)
        assert isinstance(value, list) and len(value) == 3, text
        assert all(isinstance(v, str) and re.fullmatch(schema["items"]["pattern"], v) for v in value), text
    assert llm.supports_json_schema  # nothing was refused
    ans = ask_list(llm, messages, n_items=2, max_retries=1, temperature=0.2, seed=0, max_tokens=128)
    assert ans.attempts <= 2 and (ans.ok or ans.error)  # whether SmolLM2's strings are usable is its own affair


def test_a_refused_response_format_falls_back_to_free_decoding(server_url: str, tmp_path: Path) -> None:
    # llama-cpp-python's server takes only "json_object" (with the schema inside) and refuses "json_schema" (HTTP
    # 422): the backend asks again without it, and decodes freely from then on; the cache keys what was done
    llm = _llm(server_url, schema_format="json_schema")
    cached = CachedLLM(llm, tmp_path)
    messages = [{"role": "user", "content": "List three colours as a JSON list of strings."}]
    first = cached.complete(messages, temperature=0.5, seed=2, max_tokens=24, json_schema=list_schema(3, 1, 30))
    assert not llm.supports_json_schema and not cached.supports_json_schema
    assert first == llm.complete(messages, temperature=0.5, seed=2, max_tokens=24)  # the free answer, as stored
    assert cached.complete(messages, temperature=0.5, seed=2, max_tokens=24) == first
    assert cached.stats.as_dict() == {"hits": 1, "misses": 1}


def test_cache_in_front_of_the_server(server_url: str, tmp_path: Path) -> None:
    cached = CachedLLM(_llm(server_url), tmp_path)
    first = cached.complete(MSG, temperature=0.5, seed=3, max_tokens=8)
    assert cached.complete(MSG, temperature=0.5, seed=3, max_tokens=8) == first
    assert cached.stats.as_dict() == {"hits": 1, "misses": 1}
    (entry,) = tmp_path.rglob("*.json")
    assert json.loads(entry.read_text())["model_id"] == "openai:smollm2"
    assert server_url not in entry.read_text()
