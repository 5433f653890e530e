"""The xgrammar logits processor of the transformers backend, on a toy character vocabulary (no model needed).

The real model under the mask is tested in tests/llm/test_transformers_backend.py.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from synthdiv.models.llm import _grammar
from synthdiv.models.llm.structured import list_schema

xgr = pytest.importorskip("xgrammar")

VOCAB = ["<eos>", "[", "]", '"', ",", " ", "a", "b", "c", ", ", '", "', "{", "}", ":", "\\", "\n", "ab", '["', '"]']
EOS = 0


def _grammar_of(schema: dict) -> object:
    info = xgr.TokenizerInfo(VOCAB, xgr.VocabType.RAW, vocab_size=len(VOCAB), stop_token_ids=[EOS])
    return xgr.GrammarCompiler(info).compile_json_schema(json.dumps(schema), any_whitespace=False)


def _decode(mask: _grammar.SchemaMask, rows: int, steps: int, seed: int, dtype: torch.dtype) -> list[list[int]]:
    """Greedy decoding of random logits through ``mask``, the way generate calls it (finished rows stay finished)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(rows, 1, dtype=torch.long)
    done = [False] * rows
    for _ in range(steps):
        scores = torch.randn(rows, len(VOCAB), generator=gen).to(dtype)
        scores = mask(ids, scores)
        assert scores.dtype == dtype and torch.isfinite(scores).any(dim=-1).all()  # never a row with no token left
        nxt = scores.float().argmax(dim=-1)
        nxt = torch.tensor([EOS if d else int(t) for d, t in zip(done, nxt, strict=True)])
        done = [d or int(t) == EOS for d, t in zip(done, nxt, strict=True)]
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        if all(done):
            break
    return [[int(t) for t in row[1:]] for row in ids]


def _text(tokens: list[int]) -> str:
    return "".join(VOCAB[t] for t in tokens if t != EOS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("seed", range(4))
def test_masked_rows_write_json_of_their_schema_and_free_rows_are_untouched(seed: int, dtype: torch.dtype) -> None:
    schemas = [list_schema(2, 1, 4), None, list_schema(3, 2, 3)]
    grammars = [None if s is None else _grammar_of(s) for s in schemas]
    mask = _grammar.SchemaMask(grammars, len(VOCAB))
    out = _decode(mask, 3, 60, seed, dtype)
    for tokens, schema in zip(out, schemas, strict=True):
        if schema is None:
            continue
        value = json.loads(_text(tokens))  # complete, valid JSON: the grammar ended it with <eos>
        assert tokens[-1] == EOS and len(value) == schema["minItems"]
        assert all(re.fullmatch(schema["items"]["pattern"], v) for v in value)
    free = _grammar.SchemaMask([None], len(VOCAB))
    scores = torch.randn(1, len(VOCAB))
    assert torch.equal(free(torch.zeros(1, 1, dtype=torch.long), scores.clone()), scores)


def test_the_torch_kernel_for_accelerators_masks_as_the_cpu_kernel() -> None:
    grammar = _grammar_of(list_schema(2, 1, 4))
    bitmask = xgr.allocate_token_bitmask(3, len(VOCAB))
    for row in (0, 2):
        xgr.GrammarMatcher(grammar).fill_next_token_bitmask(bitmask, row)
    scores = torch.randn(3, len(VOCAB))
    cpu = _grammar._mask(scores.clone(), bitmask, len(VOCAB), [0, 2], native=False)
    native = _grammar._mask(scores.clone().to(torch.bfloat16), bitmask, len(VOCAB), [0, 2], native=True)
    assert torch.equal(torch.isinf(cpu), torch.isinf(native.float())) and torch.equal(cpu[1], scores[1])
    assert [VOCAB[t] for t in torch.nonzero(torch.isfinite(cpu[0])).flatten()] == ["[", '["']  # a list must open


def test_available_checks_without_importing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _grammar.available()
    _grammar.available.cache_clear()
    monkeypatch.setattr(_grammar.importlib.util, "find_spec", lambda name: None)
    try:
        assert not _grammar.available()
    finally:
        _grammar.available.cache_clear()
