"""Subsampling protocols of the real set: low-data (a fraction or N images per class) and long-tail (Pareto).

Both are seeded and depend only on (seed, labels), so every rank and every resume picks the same images. The
long-tail profile follows ImageNet-LT (Liu et al., 2019): class sizes drawn from a Pareto distribution with shape
``alpha`` and rescaled to ``[min_count, max_count]``, assigned to classes in a seeded random order.
"""

from __future__ import annotations

import logging

import numpy as np

from synthdiv.data.sources import SampleSet

logger = logging.getLogger(__name__)

__all__ = ["low_data", "long_tail", "pareto_profile"]


def _per_class(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(num_classes + 1))
    return [order[bounds[c] : bounds[c + 1]] for c in range(num_classes)]


def _take_per_class(samples: SampleSet, counts: np.ndarray, seed: int) -> SampleSet:
    rng = np.random.default_rng(seed)
    keep = []
    for c, idx in enumerate(_per_class(samples.labels, len(counts))):
        n = min(int(counts[c]), len(idx))
        if n:
            keep.append(np.sort(rng.choice(idx, size=n, replace=False)))
    return samples.take(np.sort(np.concatenate(keep)) if keep else np.array([], dtype=np.int64))


def low_data(samples: SampleSet, num_classes: int, keep: float, seed: int) -> SampleSet:
    """Keep a fraction (``keep < 1``, at least one image) or ``int(keep)`` images of each class, seeded."""
    have = samples.class_counts(num_classes)
    counts = np.maximum(1, np.round(have * keep)).astype(np.int64) if keep < 1 else np.full(num_classes, int(keep))
    counts = np.minimum(counts, have)
    out = _take_per_class(samples, counts, seed)
    logger.info("low-data protocol: kept %d of %d real images", len(out), len(samples))
    return out


def pareto_profile(num_classes: int, alpha: float, max_count: int, min_count: int, seed: int) -> np.ndarray:
    """Images per class of a Pareto long-tail profile, in a seeded random class order."""
    rng = np.random.default_rng(seed)
    draws = np.sort(rng.pareto(alpha, size=num_classes) + 1.0)[::-1]
    lo, hi = draws.min(), draws.max()
    scaled = (draws - lo) / (hi - lo) if hi > lo else np.ones(num_classes)
    counts = np.round(min_count + scaled * (max_count - min_count)).astype(np.int64)
    counts[0] = max_count
    return counts[rng.permutation(num_classes).argsort()]


def long_tail(
    samples: SampleSet, num_classes: int, alpha: float, seed: int, max_count: int | None = None, min_count: int = 5
) -> SampleSet:
    """Subsample ``samples`` to a Pareto long-tail profile (ImageNet-LT style), seeded."""
    have = samples.class_counts(num_classes)
    max_count = int(max_count or have.max())
    min_count = min(min_count, max_count)
    counts = np.minimum(pareto_profile(num_classes, alpha, max_count, min_count, seed), have)
    out = _take_per_class(samples, counts, seed + 1)
    logger.info("long-tail protocol: kept %d of %d real images (max %d, min %d per class)",
                len(out), len(samples), int(counts.max()), int(counts.min()))
    return out
