"""Near-duplicates in CLIP image-embedding space, by blocked exact search.

Rows are L2-normalised, so a dot product is a cosine. The similarity matrix of a class (7.7k images at 6x ImageNet)
is computed ``block_size`` rows at a time and never held whole: each block gives the nearest neighbour of its rows
and the pairs above the threshold, which are joined into groups by union-find. One representative per group (its
first image) is kept by the ``dedup`` filter. The same blocked search against the real images of the class is the
memorization check (ALIA's nearest-neighbour check against the training set).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthdiv.utils.devices import resolve_device

logger = logging.getLogger(__name__)

__all__ = ["Neighbours", "nearest_within", "nearest_in", "duplicate_groups"]


@dataclass
class Neighbours:
    """The nearest neighbour of each query row: its index (-1 when there is none) and cosine (NaN then)."""

    index: np.ndarray
    cosine: np.ndarray


def _tensor(x: np.ndarray, device: str) -> Any:
    import torch

    dtype = torch.float16 if device.startswith("cuda") else torch.float32  # CPU half matmul is slow
    return torch.as_tensor(np.asarray(x)).to(device=device, dtype=dtype)


def _search(query: np.ndarray, ref: np.ndarray, block: int, device: str, threshold: float | None,
            self_search: bool) -> tuple[Neighbours, np.ndarray]:
    """Blocked nearest neighbour of each query row in ``ref``; with ``threshold``, also the pairs (i, j) at or above
    it (i < j when ``self_search``, which also ignores each row's match with itself)."""
    import torch

    n = len(query)
    index = np.full(n, -1, dtype=np.int64)
    cosine = np.full(n, np.nan, dtype=np.float32)
    pairs: list[np.ndarray] = []
    if n == 0 or len(ref) == 0 or (self_search and n < 2):
        return Neighbours(index, cosine), np.zeros((0, 2), dtype=np.int64)
    refs = _tensor(ref, device)
    with torch.inference_mode():
        for start in range(0, n, block):
            q = _tensor(query[start : start + block], device)
            sims = (q @ refs.T).float()
            if self_search:
                rows = torch.arange(len(q), device=sims.device)
                sims[rows, rows + start] = float("-inf")
            best, arg = sims.max(dim=1)
            index[start : start + len(q)] = arg.cpu().numpy()
            cosine[start : start + len(q)] = best.cpu().numpy()
            if threshold is not None:
                hit = torch.nonzero(sims >= threshold).cpu().numpy()
                hit[:, 0] += start
                pairs.append(hit[hit[:, 0] < hit[:, 1]] if self_search else hit)
    found = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)
    return Neighbours(index, cosine), found


def nearest_within(emb: np.ndarray, threshold: float, block_size: int = 4096,
                   device: str = "cpu") -> tuple[Neighbours, np.ndarray]:
    """The nearest other row of each row of ``emb`` and the duplicate group of each row (see
    :func:`duplicate_groups`)."""
    device = resolve_device(device, "score.duplicates.device")
    nn, pairs = _search(emb, emb, block_size, device, threshold, self_search=True)
    return nn, duplicate_groups(len(emb), pairs)


def nearest_in(query: np.ndarray, ref: np.ndarray, block_size: int = 4096, device: str = "cpu") -> Neighbours:
    """The nearest row of ``ref`` for each row of ``query``."""
    nn, _ = _search(query, ref, block_size, resolve_device(device, "score.duplicates.device"), None, self_search=False)
    return nn


def duplicate_groups(n: int, pairs: np.ndarray) -> np.ndarray:
    """The group of each of ``n`` items joined by ``pairs`` (connected components), named by its smallest member:
    ``group[i] == i`` for a representative (and for an item with no duplicate)."""
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(n)], dtype=np.int64)
