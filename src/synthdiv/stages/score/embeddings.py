"""The CLIP image embeddings the score stage computes, kept so that near-duplicates and metrics never recompute them.

- ``cache/embeddings/<clip hash>/shard-NNNNNN.npz``: one shard's embeddings (float32), valid while the tar is
  unchanged (its size and mtime) and its image ids are the same; the score stage re-embeds only what is missing.
- ``embeddings/synthetic.npy`` (float16, rows sorted by class, then manifest order) with ``synthetic.parquet``
  (``image_id``, ``class``, ``kind``): every scored image, so one class is one contiguous slice (memory-mapped).
- ``embeddings/real.npy`` (float16) with ``real.parquet`` (``key``, ``class``): a sample of the real images of each
  class (``score.real_per_class``), for the memorization check and fidelity.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthdiv.errors import InputError
from synthdiv.utils.io import NPY_DAMAGE, TMP_MARK, atomic_write, fsync_path, write_parquet_atomic

if TYPE_CHECKING:
    from synthdiv.core.rundir import RunDir

__all__ = [
    "EmbeddingSet",
    "tar_key",
    "load_shard_cache",
    "save_shard_cache",
    "write_synthetic",
    "write_real",
    "load_synthetic",
    "load_real",
]


@dataclass
class EmbeddingSet:
    """Embeddings sorted by class: ``emb[starts[c]:starts[c + 1]]`` are the rows of class ``c``."""

    ids: np.ndarray  # image_id (synthetic) or key (real), object array
    labels: np.ndarray
    kinds: np.ndarray  # prompt kind per row (synthetic), else empty strings
    emb: np.ndarray  # (n, d) float16, memory-mapped

    def rows(self, cls: int) -> slice:
        lo, hi = np.searchsorted(self.labels, [cls, cls + 1])
        return slice(int(lo), int(hi))


def tar_key(path: Path | str) -> str:
    """What a per-shard cache entry is valid for: the tar's size and modification time (a rewritten shard differs)."""
    st = Path(path).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def load_shard_cache(path: Path, key: str, ids: list[str]) -> np.ndarray | None:
    """A shard's cached embeddings, if they were computed from this very tar for these images (None: a miss, also
    for a damaged cache file, which is then computed again)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key or z["ids"].tolist() != ids:
                return None
            emb = np.asarray(z["emb"])
    except NPY_DAMAGE:
        return None
    return emb if emb.ndim == 2 and emb.dtype.kind == "f" else None  # (the texts' cache keys all rows by one id)


def save_shard_cache(path: Path, key: str, ids: list[str], emb: np.ndarray) -> None:
    with atomic_write(path) as fh:
        np.savez(fh, key=np.array(key), ids=np.array(ids, dtype=str), emb=emb.astype(np.float32))


@contextlib.contextmanager
def _npy_atomic(path: Path, shape: tuple[int, int]) -> Iterator[np.ndarray]:
    """A float16 memory-mapped ``.npy`` written under a temporary name and renamed into place when filled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
        yield mm
        mm.flush()
        del mm
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_synthetic(run: RunDir, ids: list[str], labels: np.ndarray, kinds: list[str], dim: int,
                    parts: Iterator[tuple[np.ndarray, np.ndarray]]) -> None:
    """Write ``embeddings/synthetic.*`` in class order; ``parts`` yields ``(manifest rows, embeddings)`` per shard."""
    order = np.argsort(labels, kind="stable")
    where = np.empty(len(order), dtype=np.int64)
    where[order] = np.arange(len(order))
    folder = run.embeddings
    with _npy_atomic(folder / "synthetic.npy", (len(ids), dim)) as mm:
        for rows, emb in parts:
            mm[where[rows]] = emb
    write_parquet_atomic(pa.table({"image_id": pa.array(ids).take(order), "class": pa.array(labels[order], pa.int32()),
                                   "kind": pa.array(kinds).take(order)}), folder / "synthetic.parquet")


def write_real(run: RunDir, keys: list[str], labels: np.ndarray, emb: np.ndarray) -> None:
    """Write ``embeddings/real.*`` in class order."""
    order = np.argsort(labels, kind="stable")
    folder = run.embeddings
    with _npy_atomic(folder / "real.npy", (len(keys), emb.shape[1] if emb.ndim == 2 else 0)) as mm:
        if len(keys):
            mm[:] = emb[order]
    write_parquet_atomic(pa.table({"key": pa.array(keys, pa.string()).take(order),
                                   "class": pa.array(labels[order], pa.int32())}), folder / "real.parquet")


def _load(run: RunDir, name: str, id_col: str, with_kind: bool) -> EmbeddingSet:
    """``embeddings/<name>.*`` checked: a damaged or mismatched pair is one InputError naming the file."""
    folder = run.embeddings
    npy, table_path = folder / f"{name}.npy", folder / f"{name}.parquet"
    if not npy.exists() or not table_path.exists():
        raise InputError(f"{npy}: not found; run `synthdiv score` (or `synthdiv score --redo`)")
    redo = "run `synthdiv score --redo`"
    try:
        table = pq.read_table(table_path, columns=[id_col, "class", *(["kind"] if with_kind else [])])
        ids = np.asarray(table.column(id_col).to_pylist(), dtype=object)
        labels = table.column("class").to_numpy(zero_copy_only=False).astype(np.int64)
        kinds = (np.asarray(table.column("kind").to_pylist(), dtype=object) if with_kind
                 else np.full(table.num_rows, "", dtype=object))
    except (pa.ArrowException, OSError, KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{table_path}: not a readable embeddings table ({_first_line(exc)}); {redo}") from None
    try:
        emb = np.load(npy, mmap_mode="r", allow_pickle=False)
    except NPY_DAMAGE as exc:
        raise InputError(f"{npy}: not a readable embeddings array ({_first_line(exc)}); {redo}") from None
    if emb.ndim != 2 or len(emb) != len(ids):
        raise InputError(f"{npy}: {emb.shape} embeddings for {len(ids)} rows of {table_path.name}; {redo}")
    if len(labels) and (np.any(np.diff(labels) < 0) or labels.min() < 0):
        raise InputError(f"{table_path}: classes not in order; {redo}")
    return EmbeddingSet(ids, labels, kinds, emb)


def _first_line(exc: BaseException) -> str:
    return ((str(exc).splitlines() or [""])[0] or type(exc).__name__)[:160]


def load_synthetic(run: RunDir) -> EmbeddingSet:
    """Every scored synthetic image's embedding, sorted by class."""
    return _load(run, "synthetic", "image_id", with_kind=True)


def load_real(run: RunDir) -> EmbeddingSet | None:
    """The real images' embeddings, sorted by class; None when the score stage embedded none."""
    if not (run.embeddings / "real.parquet").exists():
        return None
    return _load(run, "real", "key", with_kind=False)

