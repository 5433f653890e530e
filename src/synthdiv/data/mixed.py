"""The mixed loader: every batch is a real block followed by a synthetic block, in a seeded, resumable order.

Block sizes come from the global batch and ``synthetic_fraction`` (``n_syn = round(B * f)``, ``n_real = B - n_syn``).
An epoch is one pass over the real set (over the synthetic set when the batch is all synthetic); the synthetic
stream runs on across epochs as an endless chain of seeded permutations. The indices of optimizer step ``s`` are a
pure function of ``(seed, s)``, so a resumed run starts at step ``s`` and sees exactly the batches it would have
seen; under DDP and gradient accumulation each rank and micro-step takes its own slice of both blocks, so the union
over ranks and micro-steps is the same global batch for any world size.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthdiv.data.images import ImageDataset, collate_blocks
from synthdiv.data.sources import SampleSet
from synthdiv.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["BatchPlan", "block_sizes", "make_loader"]

REAL, SYNTHETIC = 0, 1


def block_sizes(batch_size: int, synthetic_fraction: float) -> tuple[int, int]:
    """``(n_real, n_syn)`` of a global batch."""
    n_syn = int(round(batch_size * synthetic_fraction))
    return batch_size - n_syn, n_syn


class _Stream:
    """Seeded permutations of ``n`` items, chained: position ``p`` is item ``perm_{p // n}[p % n]``."""

    def __init__(self, n: int, seed: int, salt: int) -> None:
        self.n, self.seed, self.salt = n, seed, salt
        self._cache: dict[int, np.ndarray] = {}

    def perm(self, k: int) -> np.ndarray:
        if k not in self._cache:
            if len(self._cache) > 4:
                self._cache.clear()
            self._cache[k] = np.random.default_rng([self.seed, self.salt, k]).permutation(self.n)
        return self._cache[k]

    def take(self, start: int, count: int) -> np.ndarray:
        out = np.empty(count, dtype=np.int64)
        for j in range(count):
            p = start + j
            out[j] = self.perm(p // self.n)[p % self.n]
        return out


@dataclass
class BatchPlan:
    """Which samples make up each (optimizer step, micro-step, rank) of a training run.

    Attributes:
        n_real_total: Size of the real set.
        n_syn_total: Size of the synthetic set.
        batch_size: The global batch of one optimizer step.
        synthetic_fraction: Share of the global batch that is synthetic.
        seed: Seed of the order and of each sample's augmentation.
        world_size: Number of ranks.
        rank: This rank.
        accum_steps: Micro-steps per optimizer step.
    """

    n_real_total: int
    n_syn_total: int
    batch_size: int
    synthetic_fraction: float
    seed: int
    world_size: int = 1
    rank: int = 0
    accum_steps: int = 1

    def __post_init__(self) -> None:
        self.n_real, self.n_syn = block_sizes(self.batch_size, self.synthetic_fraction)
        if self.n_real and not self.n_real_total:
            raise ConfigError("train.synthetic_fraction < 1 but no real images were found (classes.jsonl has no "
                              "real_dir, or train.real_root is empty): set train.real_root or synthetic_fraction: 1")
        if self.n_syn and not self.n_syn_total:
            raise ConfigError("train.synthetic_fraction > 0 but no synthetic images were found (none generated, or "
                              "the score filter kept none): run `synthdiv generate` or set synthetic_fraction: 0")
        pieces = self.world_size * self.accum_steps
        for what, n in (("real", self.n_real), ("synthetic", self.n_syn)):
            if n % pieces:
                raise ConfigError(
                    f"train.batch_size: {self.batch_size} at synthetic_fraction {self.synthetic_fraction} gives a "
                    f"{what} block of {n}, which does not split into world_size x accum_steps = {pieces} equal parts"
                )
        self._real = _Stream(self.n_real_total, self.seed, 1)
        self._syn = _Stream(self.n_syn_total, self.seed, 2)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one pass over the real set (the synthetic set when there is no real block)."""
        if self.n_real:
            return max(1, self.n_real_total // self.n_real)
        return max(1, self.n_syn_total // self.n_syn)

    def global_keys(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the real and synthetic blocks of optimizer step ``step`` (all ranks, all micro-steps)."""
        if self.n_real and self.n_real_total < self.n_real:  # fewer real images than a block: wrap, as synthetic does
            real = self._real.take(step * self.n_real, self.n_real)
        elif self.n_real:
            spe = self.steps_per_epoch
            epoch, pos = divmod(step, spe)
            real = self._real.perm(epoch)[pos * self.n_real : (pos + 1) * self.n_real]
        else:
            real = np.empty(0, dtype=np.int64)
        syn = self._syn.take(step * self.n_syn, self.n_syn) if self.n_syn else np.empty(0, dtype=np.int64)
        return real, syn

    def keys(self, step: int, micro: int) -> list[tuple[int, int, int]]:
        """``(source, index, seed)`` keys of this rank's micro-batch ``micro`` of step ``step``: real block first."""
        real, syn = self.global_keys(step)
        piece = self.rank * self.accum_steps + micro
        pieces = self.world_size * self.accum_steps
        out = []
        for source, block, n in ((REAL, real, self.n_real), (SYNTHETIC, syn, self.n_syn)):
            size = n // pieces
            for j in range(piece * size, (piece + 1) * size):
                out.append((source, int(block[j]), self._sample_seed(step, source, j)))
        return out

    def _sample_seed(self, step: int, source: int, j: int) -> int:
        return (((self.seed * 1_000_003 + step) * 7919 + source) * 65_537 + j) % (1 << 62)

    def batches(self, start_step: int, total_steps: int) -> Iterator[list[tuple[int, int, int]]]:
        """The key lists of every micro-batch from ``start_step`` up to ``total_steps``."""
        for step in range(start_step, total_steps):
            for micro in range(self.accum_steps):
                yield self.keys(step, micro)


class _PlanSampler:
    """A batch sampler that replays a :class:`BatchPlan` from a given step (DataLoader ``batch_sampler``)."""

    def __init__(self, plan: BatchPlan, start_step: int, total_steps: int) -> None:
        self.plan, self.start_step, self.total_steps = plan, start_step, total_steps

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        return self.plan.batches(self.start_step, self.total_steps)

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.plan.accum_steps


def make_loader(
    real: SampleSet,
    synthetic: SampleSet,
    plan: BatchPlan,
    transform: Any,
    start_step: int,
    total_steps: int,
    num_workers: int = 2,
    pin_memory: bool = False,
    max_pixels: int | None = None,
) -> Any:
    """A torch DataLoader yielding the collated micro-batches of steps ``start_step .. total_steps - 1``.

    Each batch is ``{"images", "labels", "domain", "index", "n_real", "corrupt", "unreadable"}`` (see
    :func:`collate_blocks`);
    ``max_pixels`` is the decoder policy's pixel bound (:func:`synthdiv.utils.decode.max_pixels_of` the config).
    """
    import torch.utils.data

    dataset = ImageDataset([real, synthetic], transform, max_pixels)
    return torch.utils.data.DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_sampler=_PlanSampler(plan, start_step, total_steps),
        collate_fn=collate_blocks,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if num_workers else None,
    )
