"""Subsampling protocols of the real set: low-data (a fraction or N images per class) and long-tail (Pareto).

Both are seeded and depend only on (seed, per-class counts), so every rank and every resume picks the same images.
The long-tail profile follows ImageNet-LT (Liu et al., 2019): class sizes drawn from a Pareto distribution with
shape ``alpha`` and rescaled to ``[min_count, max_count]``, assigned to classes in a seeded random order.

:func:`protocol_counts` is the one place that decides how many real images of each class a protocol keeps: the
plan stage tops synthetic images up from its result (:mod:`synthdiv.stages.plan.budget`) and training subsamples to it
(:func:`apply_protocol`), so the two cannot disagree. Only numpy is imported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from synthdiv.data.sources import SampleSet

if TYPE_CHECKING:
    from synthdiv.config.train import TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["RealProtocol", "protocol_counts", "apply_protocol", "low_data", "long_tail", "pareto_profile"]


@dataclass(frozen=True)
class RealProtocol:
    """How the real set is subsampled before training (the ``train`` keys of the same names).

    Attributes:
        low_data: Keep this fraction (< 1, at least one image) or this many (>= 1) images per class; None: all.
        long_tail: Then subsample to a Pareto long-tail profile.
        long_tail_alpha: Pareto shape.
        long_tail_max: Images of the largest class (None: the largest count after low-data).
        long_tail_min: Images of the smallest class.
    """

    low_data: float | None = None
    long_tail: bool = False
    long_tail_alpha: float = 6.0
    long_tail_max: int | None = None
    long_tail_min: int = 5

    @classmethod
    def from_train(cls, tcfg: TrainConfig) -> RealProtocol:
        """The protocol of a (flat, one-variant) ``train`` section."""
        return cls(**{name: getattr(tcfg, name) for name in cls.__dataclass_fields__})

    @property
    def active(self) -> bool:
        return self.low_data is not None or self.long_tail


def pareto_profile(num_classes: int, alpha: float, max_count: int, min_count: int, seed: int) -> np.ndarray:
    """Images per class of a Pareto long-tail profile, in a seeded random class order."""
    rng = np.random.default_rng(seed)
    draws = np.sort(rng.pareto(alpha, size=num_classes) + 1.0)[::-1]
    lo, hi = draws.min(), draws.max()
    scaled = (draws - lo) / (hi - lo) if hi > lo else np.ones(num_classes)
    counts = np.round(min_count + scaled * (max_count - min_count)).astype(np.int64)
    counts[0] = max_count
    return counts[rng.permutation(num_classes).argsort()]


def protocol_counts(have: np.ndarray | list[int], protocol: RealProtocol, seed: int) -> np.ndarray:
    """Real images per class that ``protocol`` keeps of ``have`` (the full per-class counts), seeded.

    Low-data first (a fraction or N per class), then the long-tail profile, each capped by what a class has.
    """
    counts = np.asarray(have, dtype=np.int64).copy()
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError("have must be a 1-d array of non-negative counts")
    if protocol.low_data is not None:
        keep = protocol.low_data
        wanted = np.maximum(1, np.round(counts * keep)) if keep < 1 else np.full(len(counts), int(keep))
        counts = np.minimum(wanted.astype(np.int64), counts)
    if protocol.long_tail and len(counts):
        max_count = int(protocol.long_tail_max or counts.max())
        min_count = min(protocol.long_tail_min, max_count)
        profile = pareto_profile(len(counts), protocol.long_tail_alpha, max_count, min_count, seed)
        counts = np.minimum(profile, counts)
    return counts


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


def apply_protocol(samples: SampleSet, num_classes: int, protocol: RealProtocol, seed: int) -> SampleSet:
    """``samples`` subsampled to :func:`protocol_counts` of their class counts (which images: seeded too)."""
    if not protocol.active:
        return samples
    have = samples.class_counts(num_classes)
    counts = protocol_counts(have, protocol, seed)
    out = _take_per_class(samples, counts, seed + 1)
    logger.info("real-set protocol (low_data %s, long_tail %s): kept %d of %d real images (%d to %d per class)",
                protocol.low_data, protocol.long_tail, len(out), len(samples), int(counts.max(initial=0)),
                int(counts.min()) if len(counts) else 0)
    return out


def low_data(samples: SampleSet, num_classes: int, keep: float, seed: int) -> SampleSet:
    """Keep a fraction (``keep < 1``, at least one image) or ``int(keep)`` images of each class, seeded."""
    return apply_protocol(samples, num_classes, RealProtocol(low_data=keep), seed)


def long_tail(
    samples: SampleSet, num_classes: int, alpha: float, seed: int, max_count: int | None = None, min_count: int = 5
) -> SampleSet:
    """Subsample ``samples`` to a Pareto long-tail profile (ImageNet-LT style), seeded."""
    protocol = RealProtocol(long_tail=True, long_tail_alpha=alpha, long_tail_max=max_count, long_tail_min=min_count)
    return apply_protocol(samples, num_classes, protocol, seed)
