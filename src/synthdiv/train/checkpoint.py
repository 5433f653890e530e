"""Training checkpoints: atomic ``step-NNNNNNNN.pt`` files under ``train/<variant>/checkpoints/``, newest kept.

A checkpoint holds the model (with its auxiliary norms), optimizer, scheduler, EMA, grad scaler and the number of
optimizer steps done. Nothing else is needed to resume exactly: the data order, each sample's augmentation and the
per-step random seeds are functions of (seed, step).

Run directories are shared and copied between people and clusters, so a checkpoint is data, never code: it holds
only tensors and plain types (checked when it is saved) and is read with ``torch.load(weights_only=True)``, which
refuses any other object instead of unpickling it. A file that asks for such an object stops the resume with an
error naming it; a damaged file (a truncated copy, a full disk) is skipped for the newest readable one before it.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from synthdiv.errors import InputError
from synthdiv.run import atomic_write

logger = logging.getLogger(__name__)

__all__ = [
    "checkpoint_path",
    "save_checkpoint",
    "load_checkpoint",
    "load_latest_checkpoint",
    "prune_checkpoints",
    "CorruptCheckpointError",
]

_NAME = re.compile(r"^step-(\d{8})\.pt$")
_PLAIN = (torch.Tensor, int, float, bool, str, bytes, type(None))


class CorruptCheckpointError(Exception):
    """A checkpoint file that cannot be read as one (truncated, garbage, the wrong content)."""


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step-{step:08d}.pt"


def _listed(folder: Path) -> list[tuple[int, Path]]:
    if not Path(folder).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(folder).iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def _check_plain(obj: Any, where: str = "state") -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            _check_plain(key, f"{where} key")
            _check_plain(value, f"{where}[{key!r}]")
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"checkpoint {where}: {type(obj).__name__} is not a tensor or a plain type")


def save_checkpoint(folder: Path, step: int, state: dict[str, Any]) -> Path:
    """Write ``state`` (with ``step``) atomically as ``step-NNNNNNNN.pt``.

    Raises:
        TypeError: ``state`` holds something other than tensors, numbers, strings, None, dicts, lists and tuples
            (it could not be loaded with ``weights_only=True``).
    """
    state = {**state, "step": step}
    _check_plain(state)
    path = checkpoint_path(folder, step)
    with atomic_write(path, "wb") as fh:
        torch.save(state, fh)
    logger.info("checkpoint at step %d: %s", step, path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint without running any code from it.

    Raises:
        InputError: The file asks to build a Python object other than tensors and plain types (a crafted or foreign
            file): it is refused, not unpickled.
        CorruptCheckpointError: The file is not a readable checkpoint.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = re.search(r"[Uu]nsupported (?:global: )?GLOBAL (\S+)", str(exc))
        if unsafe:
            raise InputError(
                f"{path}: refused: it asks to load {unsafe.group(1).rstrip('.,')}, not only tensors and plain types; "
                "a checkpoint is never unpickled (delete the file if you did not make it)"
            ) from None
        raise CorruptCheckpointError(_first_line(exc)) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CorruptCheckpointError(_first_line(exc)) from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CorruptCheckpointError("not a synthdiv checkpoint (no step number)")
    return state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def load_latest_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The newest readable checkpoint in ``folder`` (None when there is none).

    A damaged newer checkpoint is skipped with a warning that names it and says why; it is left in place, to be
    replaced when training reaches its step again.
    """
    skipped = False
    for step, path in reversed(_listed(folder)):
        try:
            state = load_checkpoint(path)
        except CorruptCheckpointError as exc:
            logger.warning("checkpoint %s is unreadable (%s): trying the one before it", path.name, exc)
            skipped = True
            continue
        if state["step"] != step:
            logger.warning("checkpoint %s holds step %d: trying the one before it", path.name, state["step"])
            skipped = True
            continue
        if skipped:
            logger.warning("resuming from %s, the newest readable checkpoint", path.name)
        return state
    if skipped:
        logger.warning("no readable checkpoint in %s: training starts again from step 0", folder)
    return None


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for _, path in _listed(folder)[:-keep]:
        path.unlink(missing_ok=True)
