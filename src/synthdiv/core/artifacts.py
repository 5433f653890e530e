"""Reading a Parquet artifact of the run by its format: what every owner's reader (``read_prompts``, ``read_plan``,
``read_scores``) calls, so a missing file, a missing column and a file from another synthdiv read the same everywhere.

The format in the file's metadata (:data:`synthdiv.core.schemas.FORMATS`) says what a missing column means: damage in
a file of the current format, age in a file written before formats were recorded; a newer format is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synthdiv.core.schemas import FORMATS, written_format
from synthdiv.errors import InputError, StageOrderError

__all__ = ["read_table", "check_format"]


def check_format(path: Path | str, metadata: dict[bytes, bytes] | None, kind: str, stage: str) -> int | None:
    """The format ``path`` was written in (None: before formats were recorded).

    Raises:
        InputError: It was written in a newer format than this synthdiv reads.
    """
    version = written_format(metadata, kind)
    if version is not None and version > FORMATS[kind]:
        raise InputError(f"{path}: {kind} format {version}, written by a newer synthdiv (this one reads up to "
                         f"{FORMATS[kind]}); upgrade synthdiv or run `synthdiv {stage} --redo`")
    return version


def read_table(path: Path | str, stage: str, kind: str, columns: Iterable[str] | None = None) -> pa.Table:
    """The artifact at ``path`` (written by ``stage``, of format ``kind``) as a pyarrow Table, only ``columns`` when
    given.

    Raises:
        StageOrderError: The file does not exist: ``stage`` has not written it.
        InputError: It is not Parquet; it is of a newer format; or a column asked for is missing (named as damage in
            a file of the current format, as age in one written before formats were recorded).
    """
    path = Path(path)
    if not path.exists():
        raise StageOrderError(f"{path}: not found; run `synthdiv {stage}` first")
    wanted = list(columns) if columns is not None else None
    try:
        schema = pq.read_schema(path)
        version = check_format(path, schema.metadata, kind, stage)
        missing = [c for c in wanted or () if c not in schema.names]
        if missing:
            why = (f"damaged: {kind} format {version} has it" if version is not None
                   else "written before synthdiv recorded artifact formats")
            raise InputError(f"{path}: no column {missing[0]!r} ({why}); run `synthdiv {stage} --redo`")
        return pq.read_table(path, columns=wanted)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None


