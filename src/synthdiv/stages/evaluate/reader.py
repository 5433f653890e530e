"""What later stages read of the evaluate stage: one set's results (``eval/<variant>/<set>.json``) and
predictions (``.npz``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from synthdiv.utils.io import NPY_DAMAGE


def read_result(path: Any) -> dict[str, Any] | None:
    """One ``eval/<variant>/<set>.json`` as written by :func:`evaluate_variant`, or None when it is absent,
    unreadable or not a JSON object."""
    from pathlib import Path

    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return report if isinstance(report, dict) else None


def read_predictions(path: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(topk (N, k), labels (N,))`` of one ``eval/<variant>/<set>.npz``, or None when it is absent or unreadable
    (results written before predictions were kept, or a damaged file: integer arrays of those shapes or nothing)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            topk, labels = np.asarray(data["topk"]), np.asarray(data["labels"])
    except (*NPY_DAMAGE, AttributeError):  # absent, not an npz, a member cut short or of another shape
        return None
    if (topk.ndim != 2 or labels.ndim != 1 or len(topk) != len(labels) or (len(topk) and topk.shape[1] == 0)
            or topk.dtype.kind not in "iu" or labels.dtype.kind not in "iu"):
        return None
    return topk, labels
