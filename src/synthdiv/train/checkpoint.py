"""Training checkpoints: atomic ``step-NNNNNNNN.pt`` files under ``train/<variant>/checkpoints/``, newest kept.

A checkpoint holds the model (with its auxiliary norms), optimizer, scheduler, EMA, grad scaler and the number of
optimizer steps done. Nothing else is needed to resume exactly: the data order, each sample's augmentation and the
per-step random seeds are functions of (seed, step).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from synthdiv.run import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["checkpoint_path", "latest_checkpoint", "save_checkpoint", "load_checkpoint", "prune_checkpoints"]

_NAME = re.compile(r"^step-(\d{8})\.pt$")


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step-{step:08d}.pt"


def _listed(folder: Path) -> list[tuple[int, Path]]:
    if not Path(folder).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(folder).iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(folder: Path) -> tuple[int, Path] | None:
    """``(step, path)`` of the newest checkpoint in ``folder``, or None."""
    found = _listed(folder)
    return found[-1] if found else None


def save_checkpoint(folder: Path, step: int, state: dict[str, Any]) -> Path:
    """Write ``state`` (with ``step``) atomically as ``step-NNNNNNNN.pt``."""
    path = checkpoint_path(folder, step)
    with atomic_write(path, "wb") as fh:
        torch.save({**state, "step": step}, fh)
    logger.info("checkpoint at step %d: %s", step, path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for _, path in _listed(folder)[:-keep]:
        path.unlink(missing_ok=True)
