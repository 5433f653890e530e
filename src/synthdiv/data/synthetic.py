"""Synthetic images as samples: manifest rows (a selection of them) -> byte ranges in the generate stage's shards.

The manifest names every image of a complete shard (``image_id``, ``class``, ``shard``); the filter view keeps
the images that pass the score filter. Only shards that the selection names are indexed; an image the manifest
names but its shard lacks is skipped with a count, never fatal.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.core.rundir import RunDir, shard_name
from synthdiv.data.sources import SampleSet, index_tar
from synthdiv.errors import InputError

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

__all__ = ["manifest_samples", "shard_path"]


def shard_path(shards: Path, shard: int) -> Path:
    """The tar file of shard number ``shard`` (``shard-NNNNNN.tar``)."""
    return Path(shards) / f"{shard_name(shard)}.tar"


def manifest_samples(table: Any, run: RunDir, num_classes: int, shards_dir: Path | None = None) -> SampleSet:
    """The images that the manifest rows ``table`` name, as byte ranges in their shards, in ``image_id`` order.

    Args:
        table: Manifest rows (a pyarrow Table with at least ``image_id``, ``class`` and ``shard``).
        run: The run directory (named in errors; its ``shards/`` unless ``shards_dir``).
        num_classes: Number of classes (a label outside 0..N-1 is an error in the manifest).
        shards_dir: Read shards from here instead of the run's ``shards/``.
    """
    import pyarrow.compute as pc

    table = table.take(pc.sort_indices(table, sort_keys=[("image_id", "ascending")]))  # whatever the shard layout
    shards_dir = Path(shards_dir) if shards_dir is not None else run.shards
    labels = _int_column(table, "class")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise InputError(f"{run.manifest}: class {int(labels.max())} outside 0..{num_classes - 1}")
    shard_no = _int_column(table, "shard")
    shards, which = np.unique(shard_no, return_inverse=True)
    paths = np.array([str(shard_path(shards_dir, int(s))) for s in shards], dtype=object)
    present = np.array([Path(p).is_file() for p in paths], dtype=bool)
    per_shard = np.bincount(which, minlength=len(shards))
    for i in np.flatnonzero(~present):
        logger.warning("%s: shard missing; its %d images are skipped", paths[i], per_shard[i])
    offsets, sizes = _int_column(table, "offset", -1), _int_column(table, "size", -1)
    unknown = np.flatnonzero(present[which] & (offsets < 0))
    if len(unknown):
        found = _index_shards(paths, which, table.column("image_id"), unknown)
        offsets[unknown], sizes[unknown] = found[:, 0], found[:, 1]
    keep = present[which] & (offsets >= 0)
    missing = len(keep) - int(keep.sum())
    if missing:
        logger.warning("synthetic data: %d images named by the manifest were not found in their shards", missing)
    idx = np.flatnonzero(keep)
    ids = table.column("image_id").take(idx).to_numpy(zero_copy_only=False)
    return SampleSet(paths=paths[which[idx]], offsets=offsets[idx], sizes=sizes[idx], labels=labels[idx],
                     keys=np.asarray(ids, dtype=object))


def _int_column(table: Any, name: str, missing: int | None = None) -> np.ndarray:
    """A column as an int64 numpy array (a copy); nulls, or the whole column if absent, become ``missing``."""
    if name not in table.column_names:
        return np.full(table.num_rows, missing, dtype=np.int64)
    col = table.column(name)
    if missing is not None:
        import pyarrow.compute as pc

        col = pc.fill_null(col, missing)
    return np.array(col.to_numpy(zero_copy_only=False), dtype=np.int64)


def _index_shards(paths: np.ndarray, which: np.ndarray, image_ids: Any, rows: np.ndarray) -> np.ndarray:
    """``(offset, size)`` of each row in ``rows`` found by indexing its shard; ``(-1, -1)`` where not found."""
    out = np.full((len(rows), 2), -1, dtype=np.int64)
    ids = image_ids.take(rows).to_pylist()
    order = np.argsort(which[rows], kind="stable")  # one pass per shard, not one scan of all rows per shard
    bounds = np.flatnonzero(np.diff(which[rows][order])) + 1
    for group in np.split(order, bounds):
        path = paths[which[rows[group[0]]]]
        try:
            members = {m.key.rsplit("/", 1)[-1]: m for m in index_tar(path)}
        except InputError as exc:  # a damaged shard costs its images, never the run
            logger.warning("%s; its %d images are skipped", exc, len(group))
            continue
        for g in group:
            m = members.get(ids[g])
            if m is not None:
                out[g] = (m.offset, m.size)
    return out
