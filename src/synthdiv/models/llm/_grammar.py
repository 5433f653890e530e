"""JSON-schema constrained decoding for the ``transformers`` backend, with xgrammar.

xgrammar (https://github.com/mlc-ai/xgrammar) compiles a JSON schema against a tokenizer's vocabulary into a
grammar; its matcher tells, at every step, which tokens keep the output a prefix of a JSON document that matches the
schema (and, once the document is complete, that only the end-of-sequence token may follow). :class:`SchemaMask` is
a ``transformers`` logits processor holding one matcher per batch row: it advances each constrained row's matcher by
the token chosen at the last step and sets the logits of every token the grammar forbids to ``-inf``. It runs before
the seeded sampler (:mod:`synthdiv.models.llm._sampling`), which then draws among the allowed tokens only, so a sample
still depends only on its prompt, seed and schema. Rows without a schema are left as they are.

The JSON is compact (no free whitespace between tokens): a small model given the choice fills its token budget with
newlines. xgrammar is imported only here, when a constrained request is generated; :func:`available` checks that
it is installed without importing it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from collections.abc import Sequence
from functools import cache
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["SchemaCompiler", "SchemaMask", "available"]


@cache
def available() -> bool:
    """Whether xgrammar is installed (found, not imported: importing it is slow)."""
    return importlib.util.find_spec("xgrammar") is not None


class SchemaCompiler:
    """Compiles JSON schemas for one tokenizer; each distinct schema is compiled once.

    Args:
        tokenizer: A Hugging Face tokenizer.
        vocab_size: Rows of the model's logits (may exceed the tokenizer's vocabulary: padding).
        stop_token_ids: The tokens that end generation (the model's ``eos_token_id``); the grammar ends with them.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, stop_token_ids: Sequence[int]) -> None:
        import xgrammar as xgr

        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size,
                                                  stop_token_ids=list(stop_token_ids))
        self.vocab_size = vocab_size
        self._compiler = xgr.GrammarCompiler(info)
        self._compiled: dict[str, Any] = {}
        self._lock = threading.Lock()

    def compile(self, schema: dict[str, Any]) -> Any:
        """The ``xgrammar.CompiledGrammar`` of ``schema`` (compact JSON, no properties or items beyond it)."""
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            if key not in self._compiled:
                self._compiled[key] = self._compiler.compile_json_schema(key, any_whitespace=False, strict_mode=True)
            return self._compiled[key]


class SchemaMask:
    """A ``LogitsProcessor`` that keeps row ``i`` inside ``grammars[i]`` (None: row ``i`` is free).

    Use one instance per ``generate`` call: it follows the rows from the first step on.

    Args:
        grammars: One compiled grammar (or None) per batch row.
        vocab_size: Size of the grammars' vocabulary (:attr:`SchemaCompiler.vocab_size`).
    """

    def __init__(self, grammars: Sequence[Any | None], vocab_size: int) -> None:
        import xgrammar as xgr

        self.matchers = [None if g is None else xgr.GrammarMatcher(g) for g in grammars]
        self.vocab_size = vocab_size
        self.bitmask = xgr.allocate_token_bitmask(len(self.matchers), vocab_size)
        self._started = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[0] != len(self.matchers):
            raise RuntimeError(f"SchemaMask made for {len(self.matchers)} rows got a batch of {input_ids.shape[0]}")
        if self._started:
            last = input_ids[:, -1].tolist()
            for row, matcher in enumerate(self.matchers):
                if matcher is not None and not matcher.is_terminated() and not matcher.accept_token(last[row]):
                    # only reachable when a later processor overrode the mask; decode the rest of the row freely
                    logger.warning("constrained decoding: row %d left its grammar (token %d); the rest is free",
                                   row, last[row])
                    self.matchers[row] = None
        self._started = True
        rows = [r for r, m in enumerate(self.matchers) if m is not None and not m.is_terminated()]
        if not rows:
            return scores
        for row in rows:
            self.matchers[row].fill_next_token_bitmask(self.bitmask, row)
        return _mask(scores, self.bitmask, self.vocab_size, rows, native=scores.device.type != "cpu")


def _mask(scores: Any, bitmask: Any, vocab_size: int, rows: list[int], native: bool) -> Any:
    """``scores`` with the tokens ``bitmask`` forbids set to -inf in ``rows``: xgrammar's CPU kernel, or (``native``)
    its pure-torch one, which runs on any device without a kernel to build."""
    import xgrammar as xgr

    if native:
        xgr.apply_token_bitmask_inplace(scores, bitmask.to(scores.device), vocab_size=vocab_size,
                                        indices=rows, backend="torch_native")
        return scores
    masked = scores.float()  # the CPU kernel takes float32 (this is ``scores`` itself when it already is)
    xgr.apply_token_bitmask_inplace(masked, bitmask, vocab_size=vocab_size, indices=rows, backend="cpu")
    return masked.to(scores.dtype)
