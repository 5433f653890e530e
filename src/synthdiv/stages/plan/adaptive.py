"""Adaptive budget: spend a global image budget in rounds, giving more images to the classes the model gets wrong and
whose synthetic images the filters keep least.

After a round, per-class validation error ``e_c`` (a short training run, or the real-only model) and the filter keep
rate ``r_c`` (:func:`synthdiv.stages.score.filters.keep_rates`) give each class a need ``w_c = (e_c + eps)^alpha /
max(r_c, floor)^beta``: a class twice as wrong asks for twice the images (alpha = 1), and a class whose images are
kept half as often asks for twice as many to end with as many kept ones (beta = 1). The round's budget is split in
proportion to ``w_c`` within per-class bounds (:func:`allocate`), and :func:`append_round` adds the rows to the plan
after the existing ones: earlier rows, their shards and their image ids never change, and a new row's seed and id
come from the same (class, prompt, repeat) rule as the plan's, with repeat numbers after those already used, so
every image id stays unique and each image is still made exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from synthdiv.core import ids
from synthdiv.core.schemas import PLAN_GENERATOR_FIELD, PLAN_SCHEMA
from synthdiv.stages.plan.mixture import shard_generators

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)

__all__ = ["class_need", "allocate", "append_round", "least_used", "weighted_picks", "prompt_yields"]


def class_need(errors: np.ndarray, keep_rates: np.ndarray, alpha: float = 1.0, beta: float = 1.0,
               eps: float = 1e-3, floor: float = 0.05) -> np.ndarray:
    """``(e + eps)^alpha / max(r, floor)^beta`` per class; a NaN keep rate (no image yet) counts as 1."""
    errors = np.clip(np.asarray(errors, dtype=np.float64), 0, 1)
    rates = np.nan_to_num(np.asarray(keep_rates, dtype=np.float64), nan=1.0)
    return (errors + eps) ** alpha / np.maximum(rates, floor) ** beta


def allocate(total: int, need: np.ndarray, lower: np.ndarray | int = 0, upper: np.ndarray | int | None = None
             ) -> np.ndarray:
    """Integer images per class summing to ``total``, proportional to ``need`` within ``[lower, upper]``.

    The share of class c is ``clip(s * need_c, lower_c, upper_c)`` with the one scale s that makes the shares sum to
    ``total`` (water-filling, found by bisection); the fractions are rounded by largest remainder within the bounds.
    """
    need = np.asarray(need, dtype=np.float64)
    n = len(need)
    lo = np.broadcast_to(np.asarray(lower, dtype=np.int64), (n,)).copy()
    hi = np.full(n, total, dtype=np.int64) if upper is None else np.broadcast_to(np.asarray(upper, np.int64), (n,))
    hi = np.minimum(hi, total)
    if (need < 0).any() or not np.isfinite(need).all():
        raise ValueError("allocate: need must be finite and non-negative")
    if (lo > hi).any() or lo.sum() > total or hi.sum() < total:
        raise ValueError(f"allocate: {total} images cannot be split within the bounds (sum of lower {lo.sum()}, "
                         f"sum of upper {hi.sum()})")
    # a tiny floor lets a class with no need still take images once every other class is at its upper bound
    w = need + 1e-9 * (need.max() if need.max() > 0 else 1.0)
    low, high = 0.0, 1.0
    while np.clip(high * w, lo, hi).sum() < total:
        high *= 2
    for _ in range(200):  # sum(clip(scale * w, lo, hi)) grows with scale: bisect for the total
        mid = (low + high) / 2
        low, high = (mid, high) if np.clip(mid * w, lo, hi).sum() < total else (low, mid)
    share = np.clip(high * w, lo, hi)
    out = np.clip(np.floor(share + 1e-9).astype(np.int64), lo, hi)
    rest = total - int(out.sum())
    order = np.argsort(-(share - out), kind="stable")
    for c in order:
        if rest == 0:
            break
        if out[c] < hi[c]:
            out[c] += 1
            rest -= 1
    return out


def least_used(uses: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """``m`` picks of prompts whose use counts are ``uses``: (prompt index, its repeat number) of each, in the order
    "the least used prompt next, ties in table order", as picking one at a time would give.

    That order is the sort by (repeat, index) of the pairs ``(i, r)`` with ``r >= uses[i]``, so it is computed at
    once: the level ``L`` with fewer than ``m`` pairs below it and at least ``m`` up to it, every pair below ``L``,
    then the first pairs at ``L`` in table order.
    """
    uses = np.asarray(uses, dtype=np.int64)
    if m <= 0 or not len(uses):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)

    def below(level: int) -> int:  # pairs with a repeat number under ``level``
        return int(np.maximum(0, level - uses).sum())

    lo, hi = int(uses.min()), int(uses.min()) + m  # below(lo) == 0 < m <= below(hi)
    while hi - lo > 1:  # the largest L with below(L) < m
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if below(mid) < m else (lo, mid)
    level = lo
    runs = np.maximum(0, level - uses)
    index = np.repeat(np.arange(len(uses)), runs)
    repeat = np.repeat(uses, runs) + np.arange(len(index)) - np.repeat(np.cumsum(runs) - runs, runs)
    at_level = np.flatnonzero(uses <= level)[: m - len(index)]
    index = np.concatenate([index, at_level])
    repeat = np.concatenate([repeat, np.full(len(at_level), level, np.int64)])
    order = np.lexsort((index, repeat))
    return index[order], repeat[order]


def weighted_picks(uses: np.ndarray, weights: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """``m`` picks of prompts with use counts ``uses``, in proportion to ``weights``: (prompt index, its repeat
    number) of each, picking one at a time the prompt with the lowest ``(uses + 1) / weight`` (ties in table order).

    With equal weights this is :func:`least_used`; a prompt of twice the weight ends with about twice the uses. A
    weight of 0 is never picked while another prompt has weight.
    """
    import heapq

    uses = np.asarray(uses, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    if m <= 0 or not len(uses):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if (weights < 0).any() or not np.isfinite(weights).all() or not (weights > 0).any():
        raise ValueError("weighted_picks: weights must be finite, non-negative and not all 0")
    heap = [((u + 1) / w, i) for i, (u, w) in enumerate(zip(uses.tolist(), weights.tolist(), strict=True)) if w > 0]
    heapq.heapify(heap)
    taken = uses.copy()
    index, repeat = np.empty(m, np.int64), np.empty(m, np.int64)
    for k in range(m):
        _, i = heapq.heappop(heap)
        index[k], repeat[k] = i, taken[i]
        taken[i] += 1
        heapq.heappush(heap, ((taken[i] + 1) / weights[i], i))
    return index, repeat


def prompt_yields(prompts: pa.Table, generated: Sequence[str], kept: np.ndarray) -> np.ndarray:
    """Per prompt row: the yield of its source, ``(kept + 1) / (generated + 2)`` over the images of every prompt of
    the same class, kind, context and style (``generated``: the prompt id of each image made; ``kept``: whether the
    learner trains on it). A source not tried yet has 1/2, so it is still explored."""
    import pyarrow.compute as pc

    key = pc.binary_join_element_wise(
        pc.cast(prompts.column("class"), "string"), prompts.column("kind"),
        pc.fill_null(prompts.column("context"), ""), pc.fill_null(prompts.column("style"), ""), "\x1f")
    group_of = dict(zip(prompts.column("prompt_id").to_pylist(), key.to_pylist(), strict=True))
    made: dict[str, int] = {}
    good: dict[str, int] = {}
    for pid, k in zip(generated, np.asarray(kept, dtype=bool).tolist(), strict=True):
        g = group_of.get(pid)
        if g is not None:
            made[g] = made.get(g, 0) + 1
            good[g] = good.get(g, 0) + int(k)
    return np.array([(good.get(g, 0) + 1) / (made.get(g, 0) + 2) for g in key.to_pylist()], dtype=np.float64)


def append_round(plan: pa.Table, prompts: pa.Table, counts: np.ndarray, run_seed: int, gen_id: str,
                 shard_size: int, weights: np.ndarray | None = None,
                 mixture: Sequence[tuple[str, float]] | None = None) -> pa.Table:
    """The rows of a new round: ``counts[c]`` more images of class ``c``, in new shards after the plan's last one.

    Within a class the least-used prompts go first (with ``weights``, one per prompt row, in proportion to them:
    :func:`weighted_picks`), and a prompt's repeat numbers continue after its uses in ``plan``, so seeds and ids
    follow the plan's own rule and never repeat one. Classes are interleaved, so any prefix of the round holds every
    class in proportion. With a ``mixture`` of (generator id, share), the new shards get their generators as the
    plan's did (:func:`~synthdiv.stages.plan.mixture.shard_generators`) and the rows their ``generator`` column.
    """
    import pyarrow as pa
    import pyarrow.compute as pc


    counted = pc.value_counts(plan.column("prompt_id")).flatten()  # in C++: a 7.7M-row plan in well under a second
    used = dict(zip(counted[0].to_pylist(), counted[1].to_pylist(), strict=True))
    p_cls = prompts.column("class").to_numpy()
    p_ids = np.asarray(prompts.column("prompt_id").to_pylist(), dtype=object)
    cls_rows, pid_rows, rep_rows, key_rows = [], [], [], []
    for c in np.flatnonzero(np.asarray(counts) > 0):
        mine = p_ids[p_cls == c]
        if len(mine) == 0:
            raise ValueError(f"append_round: class {c} has no prompts")
        uses = np.array([used.get(p, 0) for p in mine], dtype=np.int64)
        if weights is None:
            pick, repeat = least_used(uses, int(counts[c]))
        else:
            pick, repeat = weighted_picks(uses, np.asarray(weights)[p_cls == c], int(counts[c]))
        k = len(pick)
        cls_rows.append(np.full(k, c, dtype=np.int32))
        pid_rows.append(mine[pick])
        rep_rows.append(repeat)
        key_rows.append((np.arange(k) + 0.5) / k)
    if not cls_rows:
        return PLAN_SCHEMA.empty_table()
    cls, pid, rep = np.concatenate(cls_rows), np.concatenate(pid_rows), np.concatenate(rep_rows)
    order = np.argsort(np.concatenate(key_rows), kind="stable")
    cls, pid, rep = cls[order], pid[order], rep[order]
    seeds = ids.derive_seeds(ids.prompt_keys(run_seed, cls, pid.tolist()), rep)
    first = int(np.max(plan.column("shard").to_numpy())) + 1 if plan.num_rows else 0
    shard = (first + np.arange(len(cls)) // shard_size).astype(np.int32)
    if mixture:
        gens = shard_generators(shard, [share for _, share in mixture])
        keys = np.stack([ids.image_keys(cls, pid.tolist(), g) for g, _ in mixture])[gens, np.arange(len(cls))]
    else:
        keys = ids.image_keys(cls, pid.tolist(), gen_id)
    image = ids.splitmix64(keys ^ ids.splitmix64(seeds.astype(np.uint64)))
    table = pa.table([ids.hex64(image), pa.array(cls, pa.int32()), pa.array(pid.tolist(), pa.string()),
                      pa.array(seeds, pa.int64()), pa.array(shard, pa.int32())], schema=PLAN_SCHEMA)
    if mixture:
        table = table.append_column(PLAN_GENERATOR_FIELD, pa.array([g for g, _ in mixture], pa.string()).take(gens))
    return table
