"""The one reader of ``classes.jsonl`` (the classes stage's artifact) and the checks every later stage relies on.

Each line is a JSON object with the :data:`~synthdiv.core.schemas.CLASS_FIELDS`; line i+1 holds class index i; ``name``
is a non-empty string; ``real_images`` a non-negative integer. A problem is one :class:`~synthdiv.errors.InputError`
naming the file, the line and what was expected. The disambiguate stage's ``classes.resolved.jsonl`` is read by the
same function with its own fields (:func:`synthdiv.stages.disambiguate.read_resolved`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthdiv.core.schemas import CLASS_FIELDS
from synthdiv.errors import InputError
from synthdiv.utils.io import json_lines

logger = logging.getLogger(__name__)

__all__ = ["read_classes", "class_real_files"]


def read_classes(
    path: Path | str, fields: Sequence[str] = CLASS_FIELDS, strings: Sequence[str] = ("name",), stage: str = "classes"
) -> list[dict[str, Any]]:
    """The rows of a class artifact, checked (see the module docstring).

    Args:
        path: ``classes.jsonl`` (or ``classes.resolved.jsonl``).
        fields: Fields every row must have.
        strings: Fields that must be non-empty strings.
        stage: The stage that writes the file (named in the hint when it is missing or empty).

    Raises:
        InputError: The file is missing, empty, or a line breaks the contract.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: not found; run `synthdiv {stage}` first")
    rows = []
    for lineno, row in json_lines(path):
        _check_row(path, lineno, row, len(rows), fields, strings)
        rows.append(row)
    if not rows:
        raise InputError(f"{path}: no classes; run `synthdiv {stage} --redo` with a class list that has some")
    return rows


def _check_row(
    path: Path, lineno: int, row: Any, index: int, fields: Sequence[str], strings: Sequence[str]
) -> None:
    missing = [f for f in fields if not isinstance(row, dict) or f not in row]
    if missing:
        raise InputError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}; expected {tuple(fields)}")
    if row["index"] != index:
        raise InputError(f"{path}:{lineno}: expected index {index}, got {row['index']!r}")
    for key in strings:
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise InputError(f"{path}:{lineno}: expected a non-empty string '{key}', got {row.get(key)!r}")
    count = row.get("real_images")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        raise InputError(f"{path}:{lineno}: expected a non-negative integer real_images, got {count!r}")


def class_real_files(real_dir: str | None, extensions: Sequence[str]) -> list[str]:
    """Image files under ``real_dir`` (recursively), as sorted POSIX paths relative to it; [] when there is none."""
    if not real_dir or not Path(real_dir).is_dir():
        return []
    root = Path(real_dir)
    exts = {e.lower() for e in extensions}
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in exts and p.is_file())
