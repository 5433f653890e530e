"""The plan's contract, checked before the generate stage writes anything (the engine's ``check`` hook).

``plan.parquet`` may be hand-edited or come from another tool, and a bad row would be written as a bad shard: a
duplicated ``image_id`` once made a manifest of 81 rows naming 80 images and a tar holding one member twice. The
check reads the plan one batch at a time and refuses, in one line naming the file, the column and the row:
a missing column, a value that does not convert to :data:`~synthdiv.core.schemas.PLAN_SCHEMA`'s type, a null, a negative
class or shard, and an ``image_id`` that appears twice. Memory: 8 bytes per row (a hash of each id), freed at the end.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthdiv.core.schemas import PLAN_SCHEMA
from synthdiv.errors import InputError

if TYPE_CHECKING:
    from pathlib import Path

    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["check_plan", "check_plan_file"]

_BATCH_ROWS = 1 << 16


def check_plan(cfg: RunConfig, run: RunDir) -> None:
    """The generate stage's check hook: :func:`check_plan_file` on the run's plan."""
    check_plan_file(run.plan)


def check_plan_file(path: Path) -> int:
    """Check ``path`` against the plan contract; returns its number of rows.

    Raises:
        InputError: The first problem found, naming the file, the column and the row (0-based, in file order).
    """
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: cannot read the plan as Parquet: {str(exc).splitlines()[0]}") from None
    missing = [f.name for f in PLAN_SCHEMA if f.name not in pf.schema_arrow.names]
    if missing:
        raise InputError(f"{path}: column {missing[0]!r} is missing; expected the plan columns "
                         f"{', '.join(PLAN_SCHEMA.names)}")
    hashes, start = [], 0
    try:
        batches = pf.iter_batches(_BATCH_ROWS, columns=PLAN_SCHEMA.names)
        for batch in batches:
            _check_batch(path, batch, start)
            ids = batch.column("image_id").to_pylist()
            hashes.append(np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids)))
            start += batch.num_rows
    except pa.ArrowException as exc:
        raise InputError(f"{path}: cannot read the plan: {str(exc).splitlines()[0]}") from None
    if hashes:
        _check_unique(path, pf, np.concatenate(hashes))
    return start


def _check_batch(path: Path, batch: pa.RecordBatch, start: int) -> None:
    for field in PLAN_SCHEMA:
        col = batch.column(field.name)
        if col.null_count:
            row = start + int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{path}: row {row}: {field.name} is null; every plan row needs one")
        if col.type != field.type:
            try:
                col = col.cast(field.type)
            except pa.ArrowException:
                raise InputError(f"{path}: column {field.name!r} is {col.type}, expected {field.type}") from None
        if field.name in ("class", "shard"):
            values = col.to_numpy()
            if len(values) and values.min() < 0:
                row = start + int(np.flatnonzero(values < 0)[0])
                raise InputError(f"{path}: row {row}: {field.name} {int(values.min())} is negative")


def _check_unique(path: Path, pf: pq.ParquetFile, hashes: np.ndarray) -> None:
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    same = np.flatnonzero(ordered[1:] == ordered[:-1])
    if not len(same):
        return
    # equal hashes: compare the ids themselves (a 64-bit collision is possible, if unlikely)
    suspects = set(ordered[same].tolist())
    del order, ordered
    first_row: dict[str, int] = {}
    start = 0
    for batch in pf.iter_batches(_BATCH_ROWS, columns=["image_id"]):
        ids = batch.column("image_id").to_pylist()
        for i in np.flatnonzero(np.isin(hashes[start : start + len(ids)], list(suspects))).tolist():
            key = ids[i]
            if key in first_row:
                raise InputError(f"{path}: image_id {key!r} is in row {first_row[key]} and row {start + i}; "
                                 "each planned image needs its own id")
            first_row[key] = start + i
        start += len(ids)
