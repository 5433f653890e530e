"""Accuracy metrics from predictions: top-1 / top-5, per-class accuracy, and long-tail many / medium / few splits.

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

__all__ = ["accuracy_report", "long_tail_splits"]


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
