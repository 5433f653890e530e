"""Synthetic images: the generate stage's shards, selected through the manifest (or the score stage's filter view).

The manifest names every image of a complete shard (``image_id``, ``class``, ``shard``); the filter view keeps
the images that pass the score filter. Only shards that the selection names are indexed; an image the manifest
names but its shard lacks is skipped with a count, never fatal.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from synthdiv.data.sources import SampleSet, index_tar
from synthdiv.errors import InputError
from synthdiv.run import RunDir

logger = logging.getLogger(__name__)

__all__ = ["selected_manifest", "synthetic_samples", "shard_path"]


def shard_path(shards: Path, shard: int) -> Path:
    """The tar file of shard number ``shard`` (``shard-NNNNNN.tar``)."""
    return Path(shards) / f"shard-{shard:06d}.tar"


def selected_manifest(cfg: Any, run: RunDir) -> Any:
    """The manifest rows training may use, as a pyarrow Table (``image_id``, ``class``, ``shard``, ...).

    The score filter's view (``synthdiv.generate.filter.filtered_manifest``: rows of complete shards that pass
    ``score.min_similarity`` / ``score.keep_quantile``), minus images the generator flagged degenerate.
    """
    try:
        from synthdiv.generate.filter import filtered_manifest
    except ModuleNotFoundError as exc:
        if exc.name not in ("synthdiv.generate", "synthdiv.generate.filter"):
            raise
        filtered_manifest = None
    if filtered_manifest is not None:
        table = filtered_manifest(cfg, run)
    elif not run.manifest.exists():
        raise InputError(f"{run.manifest}: no manifest; run `synthdiv generate` or set train.synthetic_fraction: 0")
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(run.manifest)
    if "degenerate" in table.column_names:  # kept in the manifest for the report; never trained on
        import pyarrow.compute as pc

        table = table.filter(pc.invert(pc.fill_null(table.column("degenerate"), False)))
    return table


def synthetic_samples(cfg: Any, run: RunDir, num_classes: int, shards_dir: Path | None = None) -> SampleSet:
    """The synthetic training images of the run, as byte ranges in its shards.

    Args:
        cfg: The run config (passed to the filter view).
        run: The run directory.
        num_classes: Number of classes (a label outside 0..N-1 is an error in the manifest).
        shards_dir: Read shards from here instead of the run's ``shards/``.
    """
    table = selected_manifest(cfg, run)
    shards_dir = Path(shards_dir) if shards_dir is not None else run.shards
    ids = table.column("image_id").to_pylist()
    labels = np.asarray(table.column("class").to_numpy(zero_copy_only=False), dtype=np.int64)
    shard_no = np.asarray(table.column("shard").to_numpy(zero_copy_only=False), dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise InputError(f"{run.manifest}: class {int(labels.max())} outside 0..{num_classes - 1}")
    rows = []
    missing = 0
    for shard in np.unique(shard_no):
        path = shard_path(shards_dir, int(shard))
        if not path.exists():
            n = int((shard_no == shard).sum())
            logger.warning("%s: shard missing; its %d images are skipped", path, n)
            missing += n
            continue
        try:
            members = {m.key.rsplit("/", 1)[-1]: m for m in index_tar(path)}
        except InputError as exc:  # a damaged shard costs its images, never the run
            n = int((shard_no == shard).sum())
            logger.warning("%s; its %d images are skipped", exc, n)
            missing += n
            continue
        for i in np.flatnonzero(shard_no == shard):
            m = members.get(ids[i])
            if m is None:
                missing += 1
                continue
            rows.append((str(path), m.offset, m.size, int(labels[i]), ids[i]))
    if missing:
        logger.warning("synthetic data: %d images named by the manifest were not found in their shards", missing)
    rows.sort(key=lambda r: r[4])  # a stable order, whatever the shard layout
    return SampleSet.from_rows(rows)
