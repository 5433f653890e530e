"""The readers of the prompts package's artifacts, ``prompts.parquet`` and ``plan.parquet``: every other stage reads
them through these (see :func:`synthdiv.utils.io.read_parquet_artifact` for what a missing file or column raises)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from synthdiv.core.rundir import RunDir
from synthdiv.utils.io import read_parquet_artifact

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)

__all__ = ["read_prompts", "read_plan"]


def read_prompts(run: RunDir, columns: Iterable[str] | None = None) -> pa.Table:
    """``prompts.parquet`` (:data:`~synthdiv.core.schemas.PROMPTS_SCHEMA`), only ``columns`` when given."""
    return read_parquet_artifact(run.prompts, "prompts", columns)


def read_plan(run: RunDir, columns: Iterable[str] | None = None) -> pa.Table:
    """``plan.parquet`` (:data:`~synthdiv.core.schemas.PLAN_SCHEMA`), only ``columns`` when given. A generate rank reads
    its own shards' rows by row group instead (:mod:`synthdiv.stages.generate.producer`)."""
    return read_parquet_artifact(run.plan, "plan", columns)
