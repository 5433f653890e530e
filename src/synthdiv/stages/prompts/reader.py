"""The readers of the prompts package's artifacts, ``prompts.parquet`` and ``plan.parquet``: every other stage reads
them through these (see :func:`synthdiv.core.artifacts.read_table` for what a missing file or column raises)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pyarrow.compute as pc

from synthdiv.core.artifacts import read_table
from synthdiv.core.rundir import RunDir

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)

__all__ = ["read_prompts"]


def read_prompts(run: RunDir, columns: Iterable[str] | None = None) -> pa.Table:
    """``prompts.parquet`` (:data:`~synthdiv.core.schemas.PROMPTS_SCHEMA`), only ``columns`` when given."""
    return read_table(run.prompts, "prompts", "prompts", columns)


def prompt_kinds(run: RunDir, prompt_ids: pa.ChunkedArray) -> list[str]:
    """The prompt kind (base / context / style) of each image, ``unknown`` where prompts.parquet lacks its prompt."""
    if not run.prompts.exists():
        return ["unknown"] * len(prompt_ids)

    prompts = read_prompts(run, ["prompt_id", "kind"])
    idx = pc.index_in(prompt_ids, value_set=prompts.column("prompt_id"))
    return pc.fill_null(pc.take(prompts.column("kind"), idx), "unknown").to_pylist()
