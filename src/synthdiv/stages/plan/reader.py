"""Reading ``plan.parquet`` by row group: the file opened with its columns checked, each row group's shard range
from its statistics, and the planned images per shard, without decoding more of the plan than the ``shard`` column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthdiv.core.artifacts import read_table
from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import PLAN_SCHEMA
from synthdiv.errors import InputError
from synthdiv.utils.hashing import file_digest

__all__ = ["BATCH_ROWS", "open_checked", "cast_to", "shard_range", "shard_counts", "plan_shard_counts"]

BATCH_ROWS = 1 << 16


def plan_shard_counts(path: Any) -> tuple[np.ndarray, np.ndarray]:
    """(shard numbers, planned images per shard) of a plan, read one row group of its ``shard`` column at a time."""
    return shard_counts(open_checked(path, PLAN_SCHEMA, "plan", ["shard"]))


def open_checked(path: Any, schema: pa.Schema, what: str, columns: list[str] | None = None) -> pq.ParquetFile:
    """``path`` opened as Parquet, with ``columns`` (default: all of ``schema``) present, or a one-line InputError."""
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: cannot read the {what} as Parquet: {str(exc).splitlines()[0]}") from None
    for name in columns or schema.names:
        if name not in pf.schema_arrow.names:
            raise InputError(f"{path}: column {name!r} is missing; expected the {what} schema")
    return pf


def cast_to(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns it shares with ``schema`` cast to the schema's types."""
    for field in schema:
        if field.name in table.column_names and table.schema.field(field.name).type != field.type:
            i = table.column_names.index(field.name)
            table = table.set_column(i, field.name, table.column(field.name).cast(field.type))
    return table


def shard_range(pf: pq.ParquetFile, rg: int) -> tuple[int | None, int | None]:
    """(min, max) shard of a row group from its statistics, or (None, None) where it has none."""
    col = pf.metadata.row_group(rg).column(pf.metadata.schema.names.index("shard"))
    stats = col.statistics
    if stats is None or not stats.has_min_max:
        return None, None
    return int(stats.min), int(stats.max)


def shard_counts(pf: pq.ParquetFile) -> tuple[np.ndarray, np.ndarray]:
    """(shard numbers, rows per shard) of an open plan: a row group of one shard by its statistics, others scanned."""
    shards, counts = [], []
    for rg in range(pf.num_row_groups):
        lo, hi = shard_range(pf, rg)
        if lo is not None and lo == hi:
            shards.append(np.array([lo], np.int64))
            counts.append(np.array([pf.metadata.row_group(rg).num_rows], np.int64))
            continue
        for batch in pf.iter_batches(BATCH_ROWS, row_groups=[rg], columns=["shard"]):
            u, c = np.unique(batch.column("shard").to_numpy(), return_counts=True)
            shards.append(u.astype(np.int64))
            counts.append(c)
    if not shards:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    uniq, inverse = np.unique(np.concatenate(shards), return_inverse=True)
    return uniq, np.bincount(inverse, weights=np.concatenate(counts), minlength=len(uniq)).astype(np.int64)


def plan_rounds(path: Path) -> list[dict[str, Any]]:
    """The recorded adaptive rounds of a plan (round 1 first); ``[]`` for a plan as the plan stage wrote it."""
    raw = _metadata(path).get(ROUNDS_KEY)
    return json.loads(raw) if raw else []


def round_rows(path: Path, names: list[str], top: int = 5) -> list[dict[str, Any]]:
    """One readable row per recorded round: number, images, shards, what drove it, and the ``top`` classes it gave
    most images to (``"name (count)"``), for ``synthdiv show rounds`` and the report."""
    out = []
    for r in plan_rounds(path):
        counts = r.get("counts") or []
        order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))[:top]
        out.append({"round": r["round"], "images": r.get("images", 0), "shards": r.get("shards", ""),
                    "driven_by": f"{r.get('variant', '?')} on {r.get('eval_set', '?')}",
                    "top": ", ".join(f"{names[c] if c < len(names) else c} ({counts[c]})" for c in order
                                     if counts[c])})
    return out


def plan_base_digest(path: Path) -> str:
    """The sha256 of the plan as the plan stage wrote it: recorded in a grown plan, the file's own otherwise (also
    for a file that is not Parquet: the plan check names that damage where it matters, and ``status`` still reads)."""
    try:
        base = _metadata(path).get(BASE_KEY)
    except InputError:
        base = None
    return base.decode() if base else file_digest(path)


def read_plan(run: RunDir, columns: Iterable[str] | None = None) -> pa.Table:
    """``plan.parquet`` (:data:`~synthdiv.core.schemas.PLAN_SCHEMA`), only ``columns`` when given. A generate rank reads
    its own shards' rows by row group instead (:mod:`synthdiv.stages.generate.producer`)."""
    return read_table(run.plan, "plan", "plan", columns)


ROUNDS_KEY = b"synthdiv.rounds"


BASE_KEY = b"synthdiv.base"


def _metadata(path: Path) -> dict[bytes, bytes]:
    import pyarrow.parquet as pq

    try:
        return dict(pq.read_schema(path).metadata or {})
    except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) on a file that is not Parquet
        raise InputError(f"{path}: cannot read the plan as Parquet: {str(exc).splitlines()[0]}") from None
