"""Filters as views: which manifest rows training uses. Nothing is ever deleted from the shards.

``score.min_similarity`` keeps images at least that similar to their class text; ``score.keep_quantile`` keeps the
top fraction of each class. ``train.filters`` names more filters, built in (``clip-top1``, ``clip-prob``, ``dedup``,
``memorized``, ``classifier``) or defined under ``filters:`` (see :mod:`synthdiv.config.score`); an image is kept
when it passes every one. Each selection is recorded with its parameters and per-class counts in
``filters/<names>.json``. With no scores or no filter, every manifest row is kept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from synthdiv.config.score import BUILTIN_FILTERS
from synthdiv.errors import ConfigError

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig

logger = logging.getLogger(__name__)

__all__ = ["keep_mask", "cross_class_mask", "duplicate_mask", "classifier_mask",
           "keep_rates", "resolve_filters"]


def keep_mask(
    similarity: np.ndarray, labels: np.ndarray, min_similarity: float | None, keep_quantile: float | None
) -> np.ndarray:
    """Boolean mask of kept images; NaN similarity (an image not scored) is never kept by a filter.

    ``keep_quantile`` keeps the ``ceil(q * n)`` most similar of the ``n`` scored images of each class (ties at the
    cut are all kept).
    """
    keep = ~np.isnan(similarity)
    if min_similarity is not None:
        keep &= similarity >= min_similarity
    if keep_quantile is not None:
        for cls in np.unique(labels):
            scored = np.sort(similarity[(labels == cls) & ~np.isnan(similarity)])[::-1]
            if len(scored):
                cut = scored[max(1, math.ceil(keep_quantile * len(scored) - 1e-9)) - 1]
                keep[labels == cls] &= similarity[labels == cls] >= cut
    return keep


def cross_class_mask(prob: np.ndarray, rank: np.ndarray, num_classes: int, top_k: int | None,
                     min_prob: float | str | None, combine: str = "and") -> np.ndarray:
    """Keep an image when its class is among CLIP's ``top_k`` of all classes (``rank < top_k``) and/or its softmax
    probability is at least ``min_prob`` (``"auto"``: ``1 / num_classes``). Unscored images (NaN) are dropped."""
    tests = []
    if top_k is not None:
        tests.append(rank < top_k)
    if min_prob is not None:
        tests.append(prob >= (1.0 / num_classes if min_prob == "auto" else float(min_prob)))
    keep = np.logical_and.reduce(tests) if combine == "and" else np.logical_or.reduce(tests)
    return keep & ~np.isnan(prob)


def duplicate_mask(image_ids: np.ndarray, dup_of: np.ndarray, memorized: np.ndarray, within: bool,
                   real: bool) -> np.ndarray:
    """Keep the representative of each near-duplicate group (``within``) and/or drop memorized images (``real``);
    an image without duplicate columns (not scored) is dropped."""
    keep = np.array([d is not None for d in dup_of], dtype=bool)
    if within:
        keep &= dup_of == image_ids
    if real:
        keep &= ~memorized
    return keep


def classifier_mask(mislabeled: np.ndarray, easy: np.ndarray, drop: Sequence[str]) -> np.ndarray:
    """Drop the images the real-data classifier marks; ``mislabeled`` / ``easy`` are null (None) when not scored."""
    keep = np.array([m is not None for m in mislabeled], dtype=bool)
    if "mislabeled" in drop:
        keep &= np.array([not m for m in mislabeled], dtype=bool)
    if "easy" in drop:
        keep &= np.array([not e for e in easy], dtype=bool)
    return keep


def resolve_filters(cfg: RunConfig, names: Sequence[str]) -> dict[str, Any]:
    """The spec of each filter name: a definition under ``filters:``, else a built-in one."""
    specs = {}
    for name in names:
        spec = cfg.filters.get(name, BUILTIN_FILTERS.get(name))
        if spec is None:
            known = sorted({*BUILTIN_FILTERS, *cfg.filters})
            raise ConfigError(f"train.filters: unknown filter {name!r}; expected one of: {', '.join(known)}")
        specs[name] = spec
    return specs


def keep_rates(labels: np.ndarray, masks: dict[str, np.ndarray], num_classes: int | None = None) -> pa.Table:
    """Per class: images, images kept by each filter (``kept_<name>``), kept by all, and the keep rate."""
    n = int(num_classes if num_classes is not None else (labels.max() + 1 if len(labels) else 0))
    total = np.bincount(labels, minlength=n)
    cols: dict[str, Any] = {"class": np.arange(n, dtype=np.int32), "images": total}
    keep = np.ones(len(labels), dtype=bool)
    for name, mask in masks.items():
        cols[f"kept_{name}"] = np.bincount(labels[mask], minlength=n)
        keep &= mask
    cols["kept"] = np.bincount(labels[keep], minlength=n)
    cols["keep_rate"] = pa.array(cols["kept"] / np.maximum(total, 1), mask=total == 0)
    return pa.table(cols)


