"""Near-duplicate removal: exact duplicates by normalised text, then near-duplicates by CLIP text embedding.

An LLM asked many times for "different scenes" repeats itself ("on a wooden table", "on a wooden table in the
morning"); duplicates waste generation budget and hide how little diversity there is. Removal is greedy and
order-preserving: an item is kept unless it repeats an item kept before it, so earlier (and cached) answers win and
a rerun keeps the same items.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

from synthdiv.stages.prompts.text import text_key

logger = logging.getLogger(__name__)

__all__ = ["dedup_text", "dedup_embeddings"]


def dedup_text(items: Sequence[str], seen: Iterable[str] = ()) -> list[int]:
    """Indices of the items whose :func:`~synthdiv.stages.prompts.text.text_key` is new (not in ``seen``, not
    earlier)."""
    keys = set(seen)
    keep = []
    for i, item in enumerate(items):
        key = text_key(item)
        if key and key not in keys:
            keys.add(key)
            keep.append(i)
    return keep


def dedup_embeddings(embeddings: np.ndarray, threshold: float, kept: np.ndarray | None = None) -> list[int]:
    """Indices of the rows of ``embeddings`` to keep: a row goes when its cosine to a kept row exceeds ``threshold``.

    Args:
        embeddings: ``(n, d)`` L2-normalised candidates, in order of preference.
        threshold: Cosine above which two texts are duplicates.
        kept: ``(k, d)`` L2-normalised rows already kept (earlier batches), compared against but not returned.
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be 2-d, got shape {emb.shape}")
    blocked = np.zeros(len(emb), dtype=bool)
    if kept is not None and len(kept):
        blocked = (emb @ np.asarray(kept, dtype=np.float32).T).max(axis=1) > threshold
    sims = emb @ emb.T
    keep: list[int] = []
    for i in range(len(emb)):
        if blocked[i] or (keep and sims[i, keep].max() > threshold):
            continue
        keep.append(i)
    return keep
