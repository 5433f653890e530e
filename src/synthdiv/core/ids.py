"""Stable identifiers: prompt ids, per-image seeds and image ids, computed column-wise.

A prompt id is a short sha256 of (class, kind, text). Per-image seeds and image ids are needed for millions of rows,
so they are built from one 64-bit blake2b key per *prompt* (a Python loop over prompts only) mixed with the repeat
number or the seed by SplitMix64 on numpy ``uint64`` arrays. Everything here is pure arithmetic: the same inputs give
the same ids on every machine, which is what lets any worker name the same images.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)

__all__ = ["prompt_id", "splitmix64", "prompt_keys", "derive_seeds", "image_keys", "hex64", "seeded_uniform"]

_SEED_MASK = np.uint64(0x7FFF_FFFF_FFFF_FFFF)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def prompt_id(class_index: int, kind: str, text: str) -> str:
    """16 hex characters of sha256 over (class, kind, text)."""
    return hashlib.sha256(f"{int(class_index)}\0{kind}\0{text}".encode()).hexdigest()[:16]


def _key64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser on a ``uint64`` array (wrapping arithmetic); a bijection with good avalanche."""
    z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def prompt_keys(run_seed: int, classes: Sequence[int], prompt_ids: Sequence[str]) -> np.ndarray:
    """One ``uint64`` seed key per prompt, from (run seed, class, prompt_id)."""
    return np.fromiter(
        (_key64(f"seed\0{int(run_seed)}\0{int(c)}\0{p}") for c, p in zip(classes, prompt_ids, strict=True)),
        dtype=np.uint64,  # no count=: it would stop before zip sees that the lengths differ
    )


def derive_seeds(keys: np.ndarray, repeats: np.ndarray) -> np.ndarray:
    """Non-negative int64 seeds from a prompt's seed key and the repeat number (0 for its first use)."""
    mixed = splitmix64(np.asarray(keys, dtype=np.uint64) ^ splitmix64(np.asarray(repeats, dtype=np.uint64)))
    return (mixed & _SEED_MASK).astype(np.int64)


def seeded_uniform(seeds: np.ndarray, stream: str) -> np.ndarray:
    """One float64 in [0, 1) per image seed, from a named stream: the same seed and stream give the same value on
    every machine and every resume, and distinct streams (guidance, interval, ...) are independent of each other."""
    mixed = splitmix64(np.asarray(seeds, dtype=np.int64).astype(np.uint64) ^ np.uint64(_key64(f"stream\0{stream}")))
    return (mixed >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))  # the top 53 bits: exact in a float64


def image_keys(classes: Sequence[int], prompt_ids: Sequence[str], generator_id: str) -> np.ndarray:
    """One ``uint64`` image key per prompt, from (class, prompt_id, generator id); the seed is mixed in later."""
    return np.fromiter(
        (_key64(f"image\0{int(c)}\0{p}\0{generator_id}") for c, p in zip(classes, prompt_ids, strict=True)),
        dtype=np.uint64,
    )


def hex64(values: np.ndarray) -> pa.Array:
    """A pyarrow string array of 16 lowercase hex digits per ``uint64`` (built from buffers, no Python strings)."""
    import pyarrow as pa

    n = len(values)
    if n * 16 >= 2**31:  # before any copy: the int32 offsets of one string array end at 16 * n
        raise ValueError(f"hex64: {n} values exceed one string array; pass chunks")
    values = np.ascontiguousarray(values, dtype=np.uint64)
    raw = values.astype(">u8").view(np.uint8).reshape(n, 8)
    out = np.empty((n, 16), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    offsets = np.arange(0, 16 * n + 1, 16, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out))
