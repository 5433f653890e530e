"""The one reader of ``classes.resolved.jsonl``, the disambiguate stage's artifact: every class with its description.

The same checks as ``classes.jsonl`` (:func:`synthdiv.stages.classes.stage.read_classes`) plus a non-empty ``description``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from synthdiv.core.schemas import CLASS_FIELDS
from synthdiv.stages.classes.reader import read_classes

logger = logging.getLogger(__name__)

__all__ = ["read_resolved"]


def read_resolved(path: Path | str) -> list[dict[str, Any]]:
    """The rows of ``classes.resolved.jsonl``, checked; a problem is one InputError naming the file and line."""
    return read_classes(path, (*CLASS_FIELDS, "description"), ("name", "description"), stage="disambiguate")
