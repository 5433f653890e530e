"""Per-row seeded sampling for batched ``transformers`` generation.

``generate(do_sample=True)`` draws every row of a batch from one global random stream, so a sample depends on what
else was in its batch. :class:`SeededSampler` is a logits processor that draws each row's next token from the row's
own ``torch.Generator`` (temperature, top-k and top-p applied first) and returns logits where only that token is
finite; greedy decoding then takes it. A sample thus depends on its prompt and its seed only (up to the float
rounding of padded batches), whichever requests it was batched with and whatever the batch size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["SeededSampler", "row_seed"]


def row_seed(seed: int, sample: int) -> int:
    """The generator seed of sample ``sample`` of a request made with ``seed`` (non-negative, < 2**63)."""
    return (seed * 1_000_003 + sample) % (2**63)


class SeededSampler:
    """A ``LogitsProcessor`` sampling row ``i`` with a generator seeded by ``seeds[i]``.

    Args:
        seeds: One seed per batch row.
        temperature: Softmax temperature (> 0).
        top_k: Keep only the k most likely tokens (None or 0: all).
        top_p: Keep the smallest set of tokens whose probability reaches top_p (None or 1: all).
        device: Device of the logits.
    """

    def __init__(
        self, seeds: Sequence[int], temperature: float, top_k: int | None, top_p: float | None, device: Any
    ) -> None:
        import torch

        self.temperature = float(temperature)
        self.top_k = top_k or 0
        self.top_p = top_p if top_p is not None else 1.0
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        logits = scores.float() / self.temperature
        if self.top_k and self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
            cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
            drop_sorted = (cum - torch.softmax(sorted_logits, dim=-1)) >= self.top_p  # keep the token crossing top_p
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            logits = logits.masked_fill(drop, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        out = torch.full_like(scores, float("-inf"))
        for row, gen in enumerate(self.generators):
            token = torch.multinomial(probs[row], 1, generator=gen)
            out[row, token] = 0.0
        return out
