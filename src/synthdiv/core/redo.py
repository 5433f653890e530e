"""``--redo`` without loss: a stage's old outputs are moved aside, and deleted only once the new stage is done.

``set_aside`` renames the outputs and the state file of a stage into ``.synthdiv/redo/<stage>/`` (a rename inside
the run directory: instant, even for a folder of shards). If the new stage fails before it writes a file (a refused
input, a bad plan), ``restore`` puts them back as they were; once it is done, ``drop`` deletes them. A redo stopped
part-way keeps its partial outputs (a rerun resumes them) and the old ones stay aside until it is done.

The ranks of one launch all pass ``--redo``: the first sets the old outputs aside and writes its writer id into
the folder; the others see that id and join the redo instead of setting aside their peers' new outputs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from synthdiv.core.lock import launch_id, writer_id
from synthdiv.core.rundir import RunDir
from synthdiv.utils.io import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [ "set_aside", "restore", "drop", "has_files"]

_STATE = "state.json"
_WRITER = "writer"


def has_files(path: Path) -> bool:
    """Whether ``path`` is a file or a folder holding at least one file (stops at the first)."""
    if path.is_file():
        return True
    return path.is_dir() and any(p.is_file() for p in path.rglob("*"))


def set_aside(run: RunDir, stage: str, outputs: Sequence[str]) -> bool:
    """Move the stage's outputs and state aside for a redo; returns False when a peer rank already did.

    When an earlier redo never finished, what is aside is the last finished stage: it stays, and the unfinished
    redo's partial outputs are deleted instead.
    """
    folder = run.aside(stage)
    me = writer_id()
    if folder.exists():
        with contextlib.suppress(OSError):
            if launch_id() is not None and (folder / _WRITER).read_text(encoding="utf-8") == me:
                return False
        state = run.read_state(stage)
        if state is not None and state.status == "done":  # left over by a redo that finished: not needed
            _rmtree(folder)
        else:
            for out in outputs:
                _remove(getattr(run, out))
            run.clear_state(stage)
            atomic_write_text(folder / _WRITER, me)
            return True
    present = [o for o in outputs if getattr(run, o).exists()]
    if not present and not run.state_path(stage).exists():
        return False
    folder.mkdir(parents=True)
    atomic_write_text(folder / _WRITER, me)
    if run.state_path(stage).exists():
        os.replace(run.state_path(stage), folder / _STATE)
    for out in present:
        os.replace(getattr(run, out), folder / out)
    logger.info("redo %s: its earlier outputs are kept in %s until the new ones are done", stage, folder)
    return True


def restore(run: RunDir, stage: str, outputs: Sequence[str]) -> None:
    """Put back what :func:`set_aside` moved (after a redo that failed before writing anything)."""
    folder = run.aside(stage)
    if not folder.exists():
        return
    for out in outputs:
        if (folder / out).exists():
            _remove(getattr(run, out))
            os.replace(folder / out, getattr(run, out))
    if (folder / _STATE).exists():
        os.replace(folder / _STATE, run.state_path(stage))
    _rmtree(folder)
    logger.info("redo %s failed before writing anything: its earlier outputs are back", stage)


def drop(run: RunDir, stage: str) -> None:
    """Delete what was set aside, now that the new stage is done."""
    folder = run.aside(stage)
    if folder.exists():
        _rmtree(folder)


def _rmtree(folder: Path) -> None:
    shutil.rmtree(folder)
    with contextlib.suppress(OSError):  # the redo/ folder too, once no stage has anything aside
        folder.parent.rmdir()


def _remove(path: Path) -> None:
    """Delete an output: a folder with what it holds, a file, or a link (the link only, never what it points to)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
