"""Adaptive rounds recorded in the plan: ``plan.parquet`` grows by appended rows, and its schema metadata says how.

The plan stage writes round 0 and no metadata. Each adaptive round (:mod:`synthdiv.engine.adapt`) rewrites the file with
the earlier row groups unchanged and the round's rows after them, in new shards, and records two keys:

- ``synthdiv.rounds``: one JSON record per round after the first (its images, shards, per-class counts and what
  drove them);
- ``synthdiv.base``: the sha256 of the plan as the plan stage wrote it.

The generate stage fingerprints the plan by that base digest (:func:`plan_base_digest`), so a plan that only grew
keeps generate's shards, and generate makes only the new ones.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from synthdiv.errors import InputError
from synthdiv.stages.plan.reader import BASE_KEY, ROUNDS_KEY, plan_base_digest, plan_rounds
from synthdiv.utils.io import atomic_write

if TYPE_CHECKING:
    import pyarrow as pa

    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["grow_plan"]


def grow_plan(run: RunDir, rows: pa.Table, record: dict[str, Any]) -> None:
    """Append ``rows`` (in new shards after the plan's last) to ``plan.parquet`` and record the round, atomically.

    The earlier row groups are copied as they are, so their rows, shards and image ids never change; the new rows
    go one row group per shard.

    Raises:
        InputError: A new image id is already in the plan, or a new shard is not after the plan's last one.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = run.plan
    base, rounds = plan_base_digest(path), plan_rounds(path)
    pf = pq.ParquetFile(path)
    schema = pf.schema_arrow
    old = pf.read(columns=["image_id", "shard"])
    new_ids = rows.column("image_id")
    if pc.any(pc.is_in(new_ids, value_set=old.column("image_id"))).as_py() or \
            pc.count_distinct(new_ids).as_py() != len(new_ids):
        raise InputError(f"{path}: round {len(rounds) + 1} would plan an image id twice; the plan is left as it was")
    last = pc.max(old.column("shard")).as_py() if old.num_rows else -1
    first = pc.min(rows.column("shard")).as_py() if rows.num_rows else None
    if first is not None and first <= last:
        raise InputError(f"{path}: round {len(rounds) + 1} starts at shard {first}, not after the plan's last shard "
                         f"{last}")
    for field in schema:  # an image-to-image plan's source columns: null for the round's text-to-image rows
        if field.name not in rows.column_names:
            rows = rows.append_column(field, pa.nulls(rows.num_rows, field.type))
    rows = rows.select(schema.names).cast(schema.remove_metadata())
    meta = {**(schema.metadata or {}), BASE_KEY: base.encode(), ROUNDS_KEY: json.dumps([*rounds, record]).encode()}
    shard = rows.column("shard").to_numpy()
    cuts = [0, *(np.flatnonzero(np.diff(shard)) + 1).tolist(), len(shard)]
    with atomic_write(path, "wb") as fh, pq.ParquetWriter(fh, schema.with_metadata(meta), compression="zstd") as w:
        for rg in range(pf.num_row_groups):
            w.write_table(pf.read_row_group(rg), row_group_size=max(1, pf.metadata.row_group(rg).num_rows))
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            w.write_table(rows.slice(lo, hi - lo), row_group_size=max(1, hi - lo))
    logger.info("plan round %d: %d images in %d new shards appended to %s", len(rounds) + 1, rows.num_rows,
                len(cuts) - 1, path.name)
