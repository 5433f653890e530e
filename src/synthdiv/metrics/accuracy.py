"""Accuracy metrics from predictions: top-1 / top-5, per-class accuracy, long-tail many / medium / few splits,
the most confused class pairs, and bootstrap confidence intervals of an accuracy and of a paired difference.

The long-tail splits follow ImageNet-LT (Liu et al., 2019): classes with more than 100 training images are
many-shot, 20 to 100 medium-shot, fewer than 20 few-shot (thresholds configurable). Counts are those of the real
training set the variant actually used (after the low-data / long-tail protocols).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["accuracy_report", "long_tail_splits", "confused_pairs", "named_confused_pairs", "bootstrap_ci",
           "paired_delta_ci"]


def accuracy_report(topk: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Top-1, top-5 and per-class top-1 accuracy.

    Args:
        topk: ``(N, k)`` predicted class indices, best first (``k >= 1``).
        labels: ``(N,)`` true class indices.
        class_names: Names of all classes, in index order.
    """
    n = len(labels)
    hit1 = topk[:, 0] == labels if n else np.zeros(0, dtype=bool)
    hit5 = (topk[:, :5] == labels[:, None]).any(1) if n else np.zeros(0, dtype=bool)
    per_class: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    for c, name in enumerate(class_names):
        mask = labels == c
        counts[name] = int(mask.sum())
        per_class[name] = float(hit1[mask].mean()) if mask.any() else None
    return {
        "images": n,
        "top1": float(hit1.mean()) if n else None,
        "top5": float(hit5.mean()) if n else None,
        "per_class": per_class,
        "per_class_images": counts,
    }


def long_tail_splits(
    hit1: np.ndarray, labels: np.ndarray, train_counts: Sequence[int], many: int = 100, few: int = 20
) -> dict[str, dict[str, Any]]:
    """Top-1 accuracy over the test images of many-shot (> many), medium and few-shot (< few) classes."""
    counts = np.asarray(train_counts)
    groups = {"many": counts > many, "medium": (counts >= few) & (counts <= many), "few": counts < few}
    out = {}
    for name, classes in groups.items():
        mask = classes[labels] if len(labels) else np.zeros(0, dtype=bool)
        out[name] = {
            "classes": int(classes.sum()),
            "images": int(mask.sum()),
            "top1": float(hit1[mask].mean()) if mask.any() else None,
        }
    return out


def named_confused_pairs(top1: np.ndarray, labels: np.ndarray, names: Sequence[str], k: int = 20
                         ) -> list[dict[str, Any]]:
    """:func:`confused_pairs` with ``true_name`` and ``pred_name``: the ``confused`` list of an evaluate result,
    which the report shows as it is."""
    if not len(labels):
        return []
    return [{**p, "true_name": names[int(p["true"])], "pred_name": names[int(p["pred"])]}
            for p in confused_pairs(top1, labels, k)]


def confused_pairs(top1: np.ndarray, labels: np.ndarray, k: int = 10) -> list[dict[str, int | float]]:
    """The ``k`` most frequent (true class, predicted class) errors, most frequent first.

    Each pair carries ``count`` and ``share``: the fraction of the true class's test images predicted as the other
    class. Ties go to the lower class indices. Built from a sparse confusion count, so it scales to 1,000 classes.
    """
    wrong = top1 != labels
    if not wrong.any():
        return []
    pairs, counts = np.unique(np.stack([labels[wrong], top1[wrong]], 1), axis=0, return_counts=True)
    per_class = np.bincount(labels)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -counts))[:k]
    return [{"true": int(pairs[i, 0]), "pred": int(pairs[i, 1]), "count": int(counts[i]),
             "share": float(counts[i] / per_class[pairs[i, 0]])} for i in order]


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_ci(hits: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy ``mean(hits)`` over test images.

    Resampling N 0/1 values with replacement only changes how many ones are drawn, which is Binomial(N, mean), so
    each replicate is one binomial draw: exactly the nonparametric bootstrap, in O(n_boot) instead of O(n_boot * N).
    """
    n = len(hits)
    if n == 0:
        raise ValueError("bootstrap_ci: no test images")
    rng = np.random.default_rng(seed)
    return _percentiles(rng.binomial(n, float(np.mean(hits)), n_boot) / n, level)


def paired_delta_ci(hits_b: np.ndarray, hits_a: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                    seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(hits_b) - mean(hits_a)`` with both models on the same images.

    The images are resampled together (a paired bootstrap), so the variance the two models share cancels. Each
    image's difference is -1, 0 or +1; a resample is a multinomial draw over those three values (see
    :func:`bootstrap_ci`).
    """
    if len(hits_a) != len(hits_b) or len(hits_a) == 0:
        raise ValueError(f"paired_delta_ci: expected two equal, non-empty hit arrays, got {len(hits_b)} and "
                         f"{len(hits_a)}")
    d = np.asarray(hits_b, dtype=np.int8) - np.asarray(hits_a, dtype=np.int8)
    n = len(d)
    p = np.array([(d == -1).sum(), (d == 0).sum(), (d == 1).sum()], dtype=np.float64) / n
    draws = np.random.default_rng(seed).multinomial(n, p, n_boot)
    return _percentiles((draws[:, 2] - draws[:, 0]) / n, level)
