"""Budget arithmetic of the plan stage: images per class, a fair global cap, and the split across prompt kinds.

All functions take and return numpy integer arrays (one entry per class), so that 1,000 or 21,000 classes cost the
same as ten. Budgets follow the paper's scaling setups: a fixed count, a multiple (1x..6x) of the real set, or
"top up to N" for long-tail training where tail classes get the most synthetic images. "The real set" is the one
training will see: :func:`training_real_counts` applies the ``train`` section's low-data / long-tail protocol with
the same seeded function training subsamples by.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from synthdiv.config.prompts import DEFAULT_IMAGES_PER_CLASS, PlanConfig
from synthdiv.data.protocols import RealProtocol, protocol_counts
from synthdiv.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["class_budgets", "cap_fairly", "split_by_kind", "training_real_counts"]


def training_real_counts(train: Any, real_counts: Sequence[int] | np.ndarray, seed: int) -> np.ndarray:
    """Real images per class that the variants training on synthetic images will see, after their protocol.

    Args:
        train: The ``train`` section (:class:`~synthdiv.config.TrainConfig`).
        real_counts: All real images per class.
        seed: The run seed (training subsamples with it too).

    Raises:
        ConfigError: Two such variants subsample the real set differently, so no one plan tops both up.
    """
    protocols = train.synthetic_protocols
    distinct = {tuple(sorted(p.items())) for p in protocols.values()}
    if len(distinct) > 1:
        a, b = list(protocols)[:2]
        raise ConfigError(
            f"train.variants: {a!r} and {b!r} train on synthetic images with different real-set protocols "
            "(low_data / long_tail keys), so plan.top_up_to / plan.multiple_of_real has no single real count to "
            "plan from; give them the same protocol or use one run per protocol"
        )
    real = np.asarray(real_counts, dtype=np.int64)
    if not distinct:
        return real
    protocol = RealProtocol(**dict(distinct.pop()))
    counts = protocol_counts(real, protocol, seed)
    if protocol.active:
        logger.info("plan: budgets from the real set after train's protocol: %d of %d real images",
                    int(counts.sum()), int(real.sum()))
    return counts


def class_budgets(plan: PlanConfig, real_counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Images to plan for each class, before the global cap.

    Args:
        plan: The ``plan`` section; at most one of images_per_class / multiple_of_real / top_up_to is set, and with
            none set every class gets ``DEFAULT_IMAGES_PER_CLASS``.
        real_counts: Real images per class (0 where a class has none).

    Returns:
        int64 budgets: the fixed count; ``round(k * real)`` (half up; 0 for a class with no real images); or
        ``max(0, N - real)``.
    """
    real = np.asarray(real_counts, dtype=np.int64)
    if real.ndim != 1 or (real < 0).any():
        raise ValueError("real_counts must be a 1-d array of non-negative counts")
    if plan.multiple_of_real is not None:
        return np.floor(real * float(plan.multiple_of_real) + 0.5).astype(np.int64)
    if plan.top_up_to is not None:
        return np.maximum(0, int(plan.top_up_to) - real)
    per_class = DEFAULT_IMAGES_PER_CLASS if plan.images_per_class is None else plan.images_per_class
    return np.full(real.shape, int(per_class), dtype=np.int64)


def cap_fairly(budgets: Sequence[int] | np.ndarray, cap: int | None) -> np.ndarray:
    """Scale budgets down to a global cap by water-filling: every class gets ``min(budget, L)``.

    ``L`` is the largest level that fits; the images left over (fewer than the number of classes still above
    ``L``) go one each to those classes in class order. Small classes keep their whole budget, so a long tail is
    never cut before the head. Returns the budgets unchanged when they already fit.
    """
    budgets = np.asarray(budgets, dtype=np.int64)
    if cap is None or int(budgets.sum()) <= cap:
        return budgets.copy()
    cap = int(cap)
    ordered = np.sort(budgets)
    n = len(ordered)
    # total(L) = sum(min(b, L)) is piecewise linear in L; find the segment where it crosses cap.
    prefix = np.concatenate([[0], np.cumsum(ordered)])
    above = n - np.arange(n)  # classes with budget >= ordered[i]
    totals = prefix[:-1] + ordered * above  # total(L = ordered[i])
    i = int(np.searchsorted(totals, cap, side="right"))  # first level whose total exceeds cap
    level = (cap - prefix[i]) // (n - i)
    capped = np.minimum(budgets, level)
    left = cap - int(capped.sum())
    if left:
        extra = np.flatnonzero(budgets > level)[:left]
        capped[extra] += 1
    return capped


def split_by_kind(
    budgets: np.ndarray, available: np.ndarray, proportions: Mapping[str, float], kinds: Sequence[str]
) -> np.ndarray:
    """Images of each kind per class, by the largest-remainder method over the kinds a class has prompts for.

    Args:
        budgets: ``(C,)`` images per class.
        available: ``(C, K)`` prompts of each kind per class; a kind with none gets 0 images and its share goes to
            the others.
        proportions: Kind -> share (need not sum to 1); kinds not named get 0.
        kinds: The K kind names, in column order (ties go to the earlier kind).

    Returns:
        ``(C, K)`` int64 counts whose rows sum to the budgets, except rows with no usable kind, which are 0
        (the caller reports them).
    """
    budgets = np.asarray(budgets, dtype=np.int64)
    weights = np.array([float(proportions.get(k, 0.0)) for k in kinds], dtype=np.float64)
    w = np.where(np.asarray(available) > 0, weights[None, :], 0.0)
    total = w.sum(axis=1, keepdims=True)
    share = w / np.where(total > 0, total, 1.0)  # a row with no usable kind: all weights 0, so all shares 0
    quota = budgets[:, None] * share
    counts = np.floor(quota).astype(np.int64)
    remainder = budgets - counts.sum(axis=1)  # in a row with no usable kind it goes nowhere (w > 0 below)
    order = np.argsort(-(quota - counts), axis=1, kind="stable")  # largest fractional part first
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(len(kinds))[None, :].repeat(len(budgets), 0), axis=1)
    counts += (rank < remainder[:, None]) & (w > 0)
    return counts
