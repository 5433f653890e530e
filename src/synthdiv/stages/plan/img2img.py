"""Which planned images start from a real image (image-to-image, SDEdit-style), from which one and at what strength.

``plan.img2img.share`` of each class's rows become image-to-image rows. The rule is seeded and spread evenly:

* row ``r`` of a class (its ``r``-th row in plan order) is an img2img row when ``floor((r + 1) * share)`` exceeds
  ``floor(r * share)``, so img2img rows are spread through the class's rows (and so over its prompt kinds);
* the class's real images (every image file under its ``real_dir``) are put in a seeded order (a hash of the run seed,
  the class and the file's relative path, so the order is the same on every machine and with any numpy);
* the ``i``-th img2img row of a class uses image ``i mod n`` of that order, so each real image is used once before
  any is used twice, and strength ``strengths[(i + i div n) mod L]``, so repeated uses of an image get other
  strengths.

Classes without real images keep text-to-image rows only. The image id of an img2img row mixes the source and the
strength into the text-to-image id (:func:`source_keys`), so ids stay stable and distinct; text-to-image ids and a
plan without img2img rows are unchanged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from synthdiv.core import ids

logger = logging.getLogger(__name__)

__all__ = ["SourcePlan", "assign_sources", "source_keys"]


@dataclass(frozen=True)
class SourcePlan:
    """Img2img assignment of a plan's rows.

    Attributes:
        code: int64 per row: index into ``paths``/``strengths``/``keys``, or -1 for a text-to-image row.
        paths: Source image of each (source, strength) pair, relative to its class's ``real_dir``.
        strengths: float32 strength of each pair.
        keys: uint64 id key of each pair, mixed into the row's image id.
    """

    code: np.ndarray
    paths: list[str]
    strengths: np.ndarray
    keys: np.ndarray

    @property
    def rows(self) -> int:
        return int((self.code >= 0).sum())


def _seeded_order(files: Sequence[str], run_seed: int, cls: int) -> list[str]:
    def key(name: str) -> bytes:
        return hashlib.blake2b(f"img2img-order\0{int(run_seed)}\0{int(cls)}\0{name}".encode(), digest_size=8).digest()

    return sorted(files, key=lambda f: (key(f), f))


def source_keys(paths: Sequence[str], strengths: Sequence[float]) -> np.ndarray:
    """One ``uint64`` id key per (source, strength): mixed into an img2img row's image id."""
    raw = np.fromiter(
        (int.from_bytes(hashlib.blake2b(f"img2img\0{p}\0{float(s):.6g}".encode(), digest_size=8).digest(), "little")
         for p, s in zip(paths, strengths, strict=True)),
        dtype=np.uint64, count=len(paths),
    )
    return ids.splitmix64(raw)


def assign_sources(
    cls: np.ndarray, real_files: Sequence[Sequence[str]], share: float, strengths: Sequence[float], run_seed: int
) -> SourcePlan:
    """Img2img rows of a laid-out plan (rows in plan order, ``cls`` their classes); see the module docstring.

    Args:
        cls: Class index per row, in plan order.
        real_files: Per class, its real images relative to its ``real_dir`` (:func:`class_real_files`).
        share: Fraction of each class's rows made image-to-image.
        strengths: The strengths to spread over the img2img rows.
        run_seed: The run seed (orders each class's real images).
    """
    cls = np.asarray(cls, dtype=np.int64)
    n_rows, n_cls = len(cls), len(real_files)
    code = np.full(n_rows, -1, dtype=np.int64)
    if share <= 0 or n_rows == 0:
        return SourcePlan(code, [], np.zeros(0, np.float32), np.zeros(0, np.uint64))
    order = np.argsort(cls, kind="stable")
    counts = np.bincount(cls, minlength=n_cls)
    starts = np.cumsum(counts) - counts
    rank = np.empty(n_rows, dtype=np.int64)
    rank[order] = np.arange(n_rows, dtype=np.int64) - np.repeat(starts, counts)
    # integer arithmetic on a fixed-point share, so the rule does not depend on float rounding
    scale = 1 << 20
    s = int(round(share * scale))
    before = rank * s // scale
    chosen = ((rank + 1) * s // scale) > before
    n_real = np.array([len(f) for f in real_files], dtype=np.int64)
    chosen &= n_real[cls] > 0
    paths: list[str] = []
    strength_list: list[float] = []
    offset = np.zeros(n_cls, dtype=np.int64)  # first pair index of each class
    n_str = len(strengths)
    for c in np.flatnonzero(n_real > 0).tolist():
        offset[c] = len(paths)
        for name in _seeded_order(real_files[c], run_seed, c):
            for st in strengths:
                paths.append(name)
                strength_list.append(float(st))
    i = before[chosen]  # the row's number among its class's img2img rows
    c_rows = cls[chosen]
    n = n_real[c_rows]
    image = i % n
    strength = (i + i // n) % n_str
    code[chosen] = offset[c_rows] + image * n_str + strength
    used = np.unique(code[chosen])
    keep = np.full(len(paths), -1, dtype=np.int64)  # compact the pair table to the pairs used
    keep[used] = np.arange(len(used))
    code[chosen] = keep[code[chosen]]
    paths = [paths[k] for k in used.tolist()]
    strength_arr = np.asarray([strength_list[k] for k in used.tolist()], dtype=np.float32)
    skipped = int((n_real == 0).sum())
    if skipped:
        logger.info("plan.img2img: %d classes have no real images; their rows stay text-to-image", skipped)
    return SourcePlan(code, paths, strength_arr, source_keys(paths, strength_arr.tolist()))
