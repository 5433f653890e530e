"""The on-disk response cache, and create_llm's registry and option validation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synthdiv.config.models import LLMSpec
from synthdiv.errors import ConfigError, UnknownBackendError
from synthdiv.models.llm import LLM_BACKENDS, create_llm, list_llms
from synthdiv.models.llm.cache import CachedLLM, request_key
from tests.llm.fakes import FakeLLM

MSG = [{"role": "user", "content": "hello"}]


def test_cache_hit_and_miss(tmp_path: Path) -> None:
    fake = FakeLLM("first", "second", "third")
    llm = CachedLLM(fake, tmp_path / "c")
    assert llm.complete(MSG, seed=1) == ["first"]
    assert llm.complete(MSG, seed=1) == ["first"]  # hit: the fake is not called again
    assert llm.complete(MSG, seed=2) == ["second"]  # another seed is another request
    assert llm.stats.as_dict() == {"hits": 1, "misses": 2}
    assert len(fake.calls) == 2
    files = list((tmp_path / "c").rglob("*.json"))
    assert len(files) == 2 and not list((tmp_path / "c").rglob("*.tmp-*"))

    again = CachedLLM(FakeLLM(), tmp_path / "c")  # a rerun: every answer from disk, the empty fake never called
    assert again.complete(MSG, seed=1) == ["first"] and again.complete(MSG, seed=2) == ["second"]
    assert again.stats.as_dict() == {"hits": 2, "misses": 0}


@pytest.mark.parametrize(
    "change",
    [
        {"n": 2},
        {"temperature": 0.1},
        {"max_tokens": 7},
        {"json_schema": {"type": "array"}},
        {"messages": [{"role": "user", "content": "hello!"}]},
    ],
)
def test_every_parameter_enters_the_key(change: dict) -> None:
    base = {"messages": MSG, "n": 1, "temperature": 0.7, "seed": 0, "max_tokens": 256, "json_schema": None}
    assert request_key("b", "m", **base) != request_key("b", "m", **{**base, **change})
    assert request_key("b", "m", **base) != request_key("b2", "m", **base)
    assert request_key("b", "m", **base) != request_key("b", "m2", **base)
    assert request_key("b", "m", **base) == request_key("b", "m", **dict(base))


def test_free_request_keys_are_unchanged() -> None:
    # pinned: the key of a free request (no schema) as every earlier synthdiv computed it, so old caches still answer
    key = request_key("transformers", "transformers:embedded", MSG, 1, 0.7, 3, 64, None)
    assert key == "88c01c2ae06c0f735ae348f84b3804162a6586234e28b1f00d8d00599df48ed5"


class _Switch(FakeLLM):
    """A fake whose constrained decoding stops (like an OpenAI server refusing structured output) at its first call."""

    def complete(self, *args, **kwargs):
        self.supports_json_schema = False
        return super().complete(*args, **kwargs)


def test_the_key_holds_the_decoding_the_backend_does(tmp_path: Path) -> None:
    schema = {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}
    free = CachedLLM(FakeLLM("free"), tmp_path, backend="b", model="m")
    assert free.complete(MSG, json_schema=schema) == ["free"]  # ignored by a backend that decodes freely...
    (entry,) = tmp_path.rglob("*.json")  # ...so it is stored as the free request it really was
    assert entry.stem == request_key("b", "m", MSG, 1, 0.7, 0, 256, None)
    constrained = CachedLLM(FakeLLM('["x", "y"]', supports_json_schema=True), tmp_path, backend="b", model="m")
    assert constrained.complete(MSG, json_schema=schema) == ['["x", "y"]']  # a miss: the free answer is not served
    assert constrained.complete(MSG) == ["free"]  # and a free request never gets the constrained answer
    assert constrained.stats.as_dict() == {"hits": 1, "misses": 1}
    assert {p.stem for p in tmp_path.rglob("*.json")} == {
        request_key("b", "m", MSG, 1, 0.7, 0, 256, None), request_key("b", "m", MSG, 1, 0.7, 0, 256, schema)}
    assert request_key("b", "m", MSG, 1, 0.7, 0, 256, schema) != request_key(
        "b", "m", MSG, 1, 0.7, 0, 256, {**schema, "maxItems": 3})  # and the schema itself is in the key


@pytest.mark.parametrize("batched", [False, True])
def test_a_fallback_during_the_call_stores_a_free_answer(tmp_path: Path, batched: bool) -> None:
    from synthdiv.models.llm.base import Request

    schema = {"type": "array", "items": {"type": "string"}}
    inner = _Switch("answered freely", supports_json_schema=True)
    if batched:
        inner.complete_many = lambda requests: [r.send(inner) for r in requests]
    llm = CachedLLM(inner, tmp_path, backend="b", model="m")
    request = Request(MSG, seed=5, json_schema=schema)
    assert (llm.complete_many([request])[0] if batched else request.send(llm)) == ["answered freely"]
    (entry,) = tmp_path.rglob("*.json")
    assert entry.stem == request_key("b", "m", MSG, 1, 0.7, 5, 256, None)
    assert request.send(llm) == ["answered freely"] and llm.stats.as_dict() == {"hits": 1, "misses": 1}


def test_corrupt_entry_is_a_miss_and_is_rewritten(tmp_path: Path) -> None:
    llm = CachedLLM(FakeLLM("a", "b"), tmp_path)
    llm.complete(MSG)
    (entry,) = tmp_path.rglob("*.json")
    entry.write_text("{not json")
    assert llm.complete(MSG) == ["b"]
    assert json.loads(entry.read_text())["responses"] == ["b"]
    assert llm.stats.misses == 2


def test_wrapped_llm_error_leaves_no_entry(tmp_path: Path) -> None:
    llm = CachedLLM(FakeLLM(), tmp_path)
    with pytest.raises(AssertionError):
        llm.complete(MSG)
    assert not list(tmp_path.rglob("*"))


def test_registry_has_builtins_without_importing_them() -> None:
    assert {"transformers", "openai"} <= set(list_llms())
    assert "synthdiv.models.llm.openai_backend" in LLM_BACKENDS._lazy["openai"]


def test_unknown_backend_lists_names() -> None:
    with pytest.raises(UnknownBackendError, match="openai, transformers"):
        create_llm(LLMSpec(backend="nope"))


@pytest.mark.parametrize(
    ("backend", "options", "where"),
    [
        ("openai", {"base_url": "http://x/v1", "concurency": 2}, "models.llm.options.concurency"),
        ("openai", {"timeout_s": "soon"}, "models.llm.options.timeout_s"),
        ("transformers", {"batch_size": 0}, "models.llm.options.batch_size"),
        ("transformers", {"gguf": "x.gguf"}, "models.llm.options.gguf"),
    ],
)
def test_bad_option_names_its_key(backend: str, options: dict, where: str) -> None:
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")) as err:
        create_llm(LLMSpec(backend=backend, options=options))
    assert "\n" not in str(err.value)


def test_create_llm_wraps_in_cache_and_stays_light(tmp_path: Path) -> None:
    llm = create_llm(LLMSpec(), cache_dir=tmp_path)
    assert isinstance(llm, CachedLLM) and llm.model_id.startswith("transformers:embedded")
    assert llm.supports_json_schema is True  # xgrammar is a dependency: the embedded model decodes under the schema
    # building a backend loads neither the model nor torch (nor xgrammar) before a miss: checked in a fresh process,
    # as this one imported torch already (the autouse fixture of tests/conftest.py)
    code = ("import sys\nfrom synthdiv.config import LLMSpec\nfrom synthdiv.models.llm import create_llm\n"
            f"create_llm(LLMSpec(), cache_dir={str(tmp_path / 'fresh')!r})\n"
            "print(sorted(m for m in ('torch', 'transformers', 'xgrammar') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_transformers_missing_model_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="models.llm.model"):
        create_llm(LLMSpec(model=str(tmp_path / "missing.gguf")))
    with pytest.raises(ConfigError, match="models.llm.model"):
        create_llm(LLMSpec(model=str(tmp_path / "no-such-dir")))


class _BatchEcho:
    """A scripted batch backend: answers every request with its seed, and records the batches it was sent."""

    model_id = "echo:batch"
    supports_json_schema = False

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def complete_many(self, requests):
        self.batches.append([r.seed for r in requests])
        return [[f"{r.messages[-1]['content']}/{r.seed}/{j}" for j in range(r.n)] for r in requests]


def test_cached_complete_many_sends_only_the_misses(tmp_path: Path) -> None:
    from synthdiv.models.llm.base import Request

    inner = _BatchEcho()
    llm = CachedLLM(inner, tmp_path)
    requests = [Request([{"role": "user", "content": t}], n=2, seed=s) for t, s in (("a", 1), ("b", 2), ("c", 3))]
    first = llm.complete_many(requests[:2])
    assert first == [["a/1/0", "a/1/1"], ["b/2/0", "b/2/1"]]
    again = llm.complete_many(requests)
    assert again == [*first, ["c/3/0", "c/3/1"]]
    assert inner.batches == [[1, 2], [3]] and llm.stats.as_dict() == {"hits": 2, "misses": 3}


def test_cached_complete_many_shares_entries_with_complete(tmp_path: Path) -> None:
    from synthdiv.models.llm.base import Request
    from tests.llm.fakes import FakeLLM

    fake = FakeLLM("one", "two", "three")
    llm = CachedLLM(fake, tmp_path)
    msgs = [[{"role": "user", "content": t}] for t in "abc"]
    assert llm.complete(msgs[0], seed=1) == ["one"]  # the sequential path fills one entry
    requests = [Request(msgs[0], seed=1), Request(msgs[1], seed=2), Request(msgs[1], seed=2),
                Request(msgs[2], seed=3, json_schema={"type": "array"})]
    assert llm.complete_many(requests) == [["one"], ["two"], ["two"], ["three"]]
    assert [c["seed"] for c in fake.calls] == [1, 2, 3]  # a hit is not resent; a repeated request is sent once
    assert llm.complete(msgs[2], seed=3, json_schema={"type": "array"}) == ["three"]  # and vice versa
    assert llm.stats.as_dict() == {"hits": 3, "misses": 3}
