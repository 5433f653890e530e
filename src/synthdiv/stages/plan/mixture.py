"""A mixture of generators (``models.mixture``): which generator makes each shard.

Shard ``s`` goes to the generator furthest below its share of the shards ``0..s`` (smooth weighted round robin; ties
to the earlier generator), so every prefix of the plan, and of an adaptive round appended after it, holds each
generator in proportion, and a shard's generator depends only on its number and the shares. A shard is made by one
generator, so a rank loads only the generators its shards need; each image's id names its own generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["shard_generators"]


def shard_generators(shards: Sequence[int] | np.ndarray, shares: Sequence[float]) -> np.ndarray:
    """The index into ``shares`` of the generator of each shard number in ``shards``."""
    shards = np.asarray(shards, dtype=np.int64)
    shares = np.asarray(shares, dtype=np.float64)
    if not len(shares) or (shares <= 0).any():
        raise ValueError("shard_generators: shares must be positive")
    shares = shares / shares.sum()
    n = int(shards.max()) + 1 if len(shards) else 0
    order = np.empty(n, dtype=np.int64)
    given = np.zeros(len(shares))
    for s in range(n):
        g = int(np.argmax(shares * (s + 1) - given))
        order[s] = g
        given[g] += 1
    return order[shards]
