"""One writer per run directory: an advisory lock on ``.synthdiv/lock``, held while a stage runs.

A second process that wants to write the same run is refused with one line naming the holder (pid, host, stage).
The ranks of one torchrun or Slurm launch are one writer: they share the lock. The first rank takes it exclusively,
records its launch id in ``.synthdiv/lock.json`` and turns it into a shared lock; a later rank with the same launch
id joins it, any other process is refused. Every decision is taken under ``.synthdiv/lock.gate``, held only for
those few system calls, so no one takes the lock between the first rank's exclusive and shared lock.

The locks are ``flock`` locks: the kernel drops them when their process dies (a SIGKILL leaves no stale lock to
clear by hand), and Linux NFS clients map them onto NFS byte-range locks that every client of the server sees.
Read-only commands (``status``, ``show``) never take the lock. Within one process the lock is re-entrant: ``run``
holds it across all its stages, and the holder's record names the stage it is in now (a second writer is told
``stage generate`` while ``run`` generates, not the stage it started with).

Every writer takes the lock first (each stage, ``adapt``, ``verify --repair``), so the lock is also where the rules of
every write are kept: a run whose folders are links is refused before anything is written
(:meth:`synthdiv.core.rundir.RunDir.refuse_links`), and a write that finds the disk full (ENOSPC, EDQUOT) while the lock
is held ends as one line naming the file, the space left and the command that resumes (:class:`DiskFullError`), as
generate's did, whichever stage wrote (a train checkpoint, the report, an evaluation).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from synthdiv.core.rundir import RunDir
from synthdiv.errors import InputError, RunLockedError, SynthdivError
from synthdiv.utils.io import atomic_write_json, disk_full_cause, disk_full_error

__all__ = ["launch_id", "writer_id", "run_lock"]



@dataclass
class _Held:
    """A lock this process holds: its file descriptor, the stages it was taken for (innermost last), and whether
    this process wrote the holder's record (a later rank of a launch joins without writing it)."""

    fd: int
    stages: list[str] = field(default_factory=list)
    recorded: bool = False


# lock path -> the locks this process holds
_HELD: dict[str, _Held] = {}


def launch_id(environ: Mapping[str, str] | None = None) -> str | None:
    """The id the ranks of one multi-process launch share, or None for a lone process.

    torchrun gives every rank the same ``TORCHELASTIC_RUN_ID`` and rendezvous address (two live launches cannot
    share a master address and port); Slurm gives every task of a job step the same job and step ids.
    """
    env = os.environ if environ is None else environ
    if env.get("WORLD_SIZE", "1") not in ("", "0", "1") and "RANK" in env:
        parts = (env.get("TORCHELASTIC_RUN_ID", ""), env.get("MASTER_ADDR", ""), env.get("MASTER_PORT", ""))
        return "torchrun:" + ":".join(parts)
    if env.get("SLURM_NTASKS", "1") not in ("", "0", "1") and "SLURM_JOB_ID" in env:
        return f"slurm:{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', '')}"
    return None


def writer_id() -> str:
    """This writer: its launch id when it is one rank of a launch, else its own host and pid."""
    return launch_id() or f"process:{socket.gethostname()}:{os.getpid()}"


def _unusable(root: Path, exc: OSError) -> InputError:
    return InputError(f"run_dir {root}: cannot write the run here ({exc.strerror or exc}); expected a writable folder")


@contextlib.contextmanager
def _gate(folder: Path) -> Iterator[None]:
    fd = os.open(folder / "lock.gate", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _holder_text(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder["since"])))
        text = f"pid {int(holder['pid'])} on {holder['host']} (stage {holder['stage']}, since {since}"
        return text + (f", launch {holder['launch']})" if holder.get("launch") else ")")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its pid and host were not recorded)"


def _acquire(folder: Path, stage: str, root: Path) -> _Held:
    """Take the run's lock (see the module docstring)."""
    launch = launch_id()
    with _gate(folder):
        fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                recorded = _read_launch(folder / "lock.json")
                if launch is None or recorded != launch:
                    raise RunLockedError(
                        f"run_dir {root} is being written by {_holder_text(folder / 'lock.json')}; one writer per "
                        "run: wait for it to finish (`synthdiv status` reads the run meanwhile)"
                    ) from None
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a rank of the launch that holds it
                return _Held(fd, [stage])
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "stage": stage, "since": time.time(),
                      "launch": launch}
            atomic_write_json(folder / "lock.json", holder)
            if launch is not None:
                fcntl.flock(fd, fcntl.LOCK_SH)  # let the other ranks of this launch in (under the gate)
            return _Held(fd, [stage], recorded=True)
        except BaseException:
            os.close(fd)
            raise


def _read_launch(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("launch")
    except (OSError, ValueError, AttributeError):
        return None


def _record_stage(folder: Path, stage: str) -> None:
    """Name ``stage`` in the holder's record, keeping the rest (pid, host, since, launch)."""
    path = folder / "lock.json"
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(holder, dict) and holder.get("stage") != stage:
            atomic_write_json(path, {**holder, "stage": stage})
    except (OSError, ValueError):  # the record only informs a refused writer: it never stops the holder's work
        pass


@contextlib.contextmanager
def run_lock(run: RunDir, stage: str) -> Iterator[None]:
    """Hold the run's writer lock for the block; raises RunLockedError naming the holder when another has it.

    Creates the run directory if needed. A run directory that cannot be written (a file, under a file, on a
    read-only filesystem) raises InputError with one line, and so does one whose folders are links (nothing is
    written then). Taken again in the same process for another stage, the holder's record names that stage
    until the inner block ends. A full disk in the block raises DiskFullError (one line) instead of the OSError.
    """
    folder = run.root / ".synthdiv"
    try:
        key = str(folder.resolve() / "lock")
        if key in _HELD:
            held = _HELD[key]
            if held.recorded and held.stages[-1] != stage:
                _record_stage(folder, stage)
            held.stages.append(stage)
        else:
            run.refuse_links()
            folder.mkdir(parents=True, exist_ok=True)
            _HELD[key] = _acquire(folder, stage, run.root)
    except OSError as exc:
        raise _unusable(run.root, exc) from None
    try:
        yield
    except Exception as exc:
        full = None if isinstance(exc, SynthdivError) else disk_full_cause(exc)
        if full is None:
            raise
        folder = Path(full.filename).parent if full.filename else run.root
        raise disk_full_error(full, folder, f"what was complete is kept: free some space and rerun `synthdiv {stage}` "
                                            "to resume") from None
    finally:
        held = _HELD[key]
        held.stages.pop()
        if not held.stages:
            os.close(_HELD.pop(key).fd)
        elif held.recorded and held.stages[-1] != stage:
            _record_stage(folder, held.stages[-1])
