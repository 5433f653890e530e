"""The transformers backend with the real embedded SmolLM2-135M (GGUF): determinism, batching, cache, ask_list, and
JSON-schema constrained decoding."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import pytest

from synthdiv.config.models import LLMSpec
from synthdiv.models.llm import create_llm, templates
from synthdiv.models.llm.cache import CachedLLM
from synthdiv.models.llm.structured import ask_list, item_key, list_schema
from synthdiv.models.llm.transformers_backend import TransformersLLM

pytestmark = pytest.mark.slow

MSG = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def smol() -> TransformersLLM:
    llm = create_llm(LLMSpec(backend="transformers", model="embedded", device="cpu", options={"batch_size": 2}))
    assert isinstance(llm, TransformersLLM)
    return llm


def test_sampling_is_deterministic_under_a_seed(smol: TransformersLLM) -> None:
    a = smol.complete(MSG, n=3, temperature=1.0, seed=3, max_tokens=6)  # 2 batches: 2 + 1
    assert len(a) == 3 and all(isinstance(t, str) and t.strip() for t in a)
    assert smol.complete(MSG, n=3, temperature=1.0, seed=3, max_tokens=6) == a
    assert smol.complete(MSG, n=3, temperature=1.0, seed=4, max_tokens=6) != a
    assert len(set(a)) > 1  # the samples of one request differ from each other


def test_a_sample_does_not_depend_on_its_batch(smol: TransformersLLM) -> None:
    other = [{"role": "user", "content": "Write a JSON list of two animals and nothing else."}]
    batch = smol.complete_batch([MSG, other], n=2, temperature=0.8, seeds=[1, 2], max_tokens=5)  # 4 rows, 2 batches
    assert batch[1] == smol.complete(other, n=2, temperature=0.8, seed=2, max_tokens=5)
    assert batch[0][1] == smol.complete_batch([MSG], n=2, temperature=0.8, seeds=[1], max_tokens=5)[0][1]


def test_greedy_at_temperature_zero(smol: TransformersLLM) -> None:
    a, b = smol.complete(MSG, n=2, temperature=0, seed=0, max_tokens=6)
    assert a.strip() and a == b and a == smol.complete(MSG, n=1, temperature=0, seed=99, max_tokens=6)[0]


def test_gguf_is_converted_once_into_the_cache(smol: TransformersLLM, _model_cache: Path) -> None:
    smol.complete(MSG, n=1, temperature=0, max_tokens=1)
    (folder,) = (_model_cache / "llm").glob("SmolLM2-135M-Instruct.Q4_1-*")
    assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()
    assert not list((_model_cache / "llm").glob("*.tmp-*"))
    twin = create_llm(LLMSpec(backend="transformers", model="embedded", device="cpu", options={"batch_size": 2}))
    assert twin._load() is smol._load()  # one model per process


def test_cache_makes_a_rerun_free(smol: TransformersLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = CachedLLM(smol, tmp_path, backend="transformers", model="embedded")
    first = cached.complete(MSG, n=1, temperature=0.7, seed=1, max_tokens=4)

    def asked(*args, **kwargs):
        raise AssertionError("the model was asked again")

    for method in ("complete", "complete_batch", "complete_many"):
        monkeypatch.setattr(smol, method, asked)
    assert cached.complete(MSG, n=1, temperature=0.7, seed=1, max_tokens=4) == first
    assert cached.stats.as_dict() == {"hits": 1, "misses": 1}


def test_ask_list_with_the_real_model(smol: TransformersLLM) -> None:
    messages, template_id = templates.render("styles.v1", k=3)
    ans = ask_list(smol, messages, n_items=3, max_retries=0, temperature=0.7, seed=0, max_tokens=32, max_len=80)
    assert template_id == "styles.v1"
    assert ans.attempts == 1 and ans.ok == (len(ans.items) == 3)
    keys = [item_key(i) for i in ans.items]
    assert len(set(keys)) == len(keys) and all(0 < len(i) <= 80 for i in ans.items)
    assert ans.ok or ans.error


def test_complete_many_batches_requests_by_their_settings(smol: TransformersLLM) -> None:
    from synthdiv.models.llm.base import Request

    other = [{"role": "user", "content": "Write a JSON list of two animals and nothing else."}]
    requests = [Request(MSG, temperature=0.8, seed=1, max_tokens=5), Request(other, temperature=0, max_tokens=4),
                Request(other, temperature=0.8, seed=2, max_tokens=5, n=2)]
    got = smol.complete_many(requests)
    assert got[0] == smol.complete(MSG, temperature=0.8, seed=1, max_tokens=5)  # batched with request 2's samples
    assert got[1] == smol.complete(other, temperature=0, max_tokens=4)
    assert got[2] == smol.complete(other, n=2, temperature=0.8, seed=2, max_tokens=5)


# --- constrained decoding (xgrammar) -----------------------------------------------------------------------------

CRANE = [{"role": "user", "content": 'Class name: "crane"\nOther classes: "heron", "stork", "seal"\n'
          "Write 3 different short noun phrases that name exactly this class and say what it looks like.\n"
          "Answer with only a JSON list of 3 strings."}]


def _matches(text: str, schema: dict) -> bool:
    """Whether ``text`` is a JSON document of ``schema`` (a list_schema: item count, each item's pattern and length)."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    item = schema["items"]
    return (isinstance(value, list) and schema["minItems"] <= len(value) <= schema["maxItems"]
            and all(isinstance(v, str) and re.fullmatch(item["pattern"], v) for v in value))


@pytest.mark.timeout(900)
def test_constrained_answers_are_json_of_the_schema(smol: TransformersLLM) -> None:
    from synthdiv.models.llm.base import Request

    assert smol.supports_json_schema
    schema = list_schema(3, 2, 40)  # 3 items of <= 40 characters fit in 160 tokens: never cut off
    requests = [Request(CRANE, temperature=0.9, seed=s, max_tokens=160, json_schema=schema) for s in range(4)]
    constrained = [a for (a,) in smol.complete_many([*requests, Request(CRANE, temperature=0, max_tokens=160,
                                                                        json_schema=schema)])]
    assert all(_matches(a, schema) for a in constrained), constrained  # every seed, and greedy
    assert len(set(constrained)) > 1
    # the same requests decoded freely: SmolLM2 does not write this JSON by itself (so the test above needs the mask)
    free = [a for (a,) in smol.complete_many([Request(CRANE, temperature=0.9, seed=s, max_tokens=160)
                                              for s in range(4)])]
    assert sum(_matches(a, schema) for a in free) < len(free), free


def test_a_constrained_sample_does_not_depend_on_its_batch(smol: TransformersLLM) -> None:
    from synthdiv.models.llm.base import Request

    one, two = list_schema(1, 1, 12), list_schema(2, 1, 6)
    requests = [Request(CRANE, temperature=0.8, seed=1, max_tokens=24, json_schema=one),
                Request(MSG, temperature=0.8, seed=1, max_tokens=24),  # free, in the same batch
                Request(MSG, temperature=0.8, seed=2, max_tokens=24, json_schema=two)]
    got = smol.complete_many(requests)
    assert got == [r.send(smol) for r in requests]  # the same as alone (batch_size 2: other neighbours too)
    assert _matches(got[0][0], one) and got[0][0].startswith('["') and got[2][0].startswith('["')


def test_without_xgrammar_it_decodes_freely(smol: TransformersLLM, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    from synthdiv.models.llm import _grammar, transformers_backend

    schema = list_schema(2, 1, 20)
    monkeypatch.setattr(_grammar, "available", lambda: False)
    transformers_backend._say_free_decoding.cache_clear()
    with caplog.at_level(logging.WARNING, logger="synthdiv.models.llm.transformers_backend"):
        spec = LLMSpec(backend="transformers", model="embedded", device="cpu", options={"batch_size": 2})
        llm, again = create_llm(spec), create_llm(spec)
    assert [r.getMessage() for r in caplog.records] == [
        "xgrammar is not installed: the transformers LLM decodes freely, without its JSON schema (pip install xgrammar)"
    ]  # one line, however many backends
    assert not llm.supports_json_schema and not again.supports_json_schema
    free = llm.complete(CRANE, temperature=0.8, seed=3, max_tokens=8)
    assert llm.complete(CRANE, temperature=0.8, seed=3, max_tokens=8, json_schema=schema) == free
    off = TransformersLLM(spec, TransformersLLM.Options(batch_size=2, constrained=False))
    monkeypatch.undo()
    assert not off.supports_json_schema and smol.supports_json_schema
    assert off.complete(CRANE, temperature=0.8, seed=3, max_tokens=8, json_schema=schema) == free


def test_masking_is_cheap_next_to_the_model(smol: TransformersLLM) -> None:
    import torch
    import xgrammar as xgr

    tokenizer, model = smol._load()
    (grammar,) = smol._grammars(tokenizer, model, [list_schema(5, 2, 300)])  # long items: a split repetition
    text = json.dumps(["a tall grey wading bird with a long neck", "a crane in a marsh", "a red-crowned crane",
                       "a sandhill crane flying over water at dawn", "a crane"])
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    bitmask = xgr.allocate_token_bitmask(1, model.config.vocab_size)

    def mask_per_token() -> float:
        matcher, t0 = xgr.GrammarMatcher(grammar), time.perf_counter()
        for token in tokens:
            matcher.fill_next_token_bitmask(bitmask, 0)
            assert matcher.accept_token(token)
        return (time.perf_counter() - t0) / len(tokens)

    def model_step() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            model(torch.tensor([tokens[:1]]))
        return time.perf_counter() - t0

    # against the model's own one-token step in the same test, not a wall-clock bound: a busy machine slows both
    # (~0.1-0.4 ms a token against 20-120 ms a step here; a repetition bound above 128 costs ~15 ms a token)
    assert min(mask_per_token() for _ in range(3)) * 20 < min(model_step() for _ in range(5))
