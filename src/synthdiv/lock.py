"""One writer per run directory: an advisory lock on ``.synthdiv/lock``, held while a stage runs.

A second process that wants to write the same run is refused with one line naming the holder (pid, host, stage).
The ranks of one torchrun or Slurm launch are one writer: they share the lock. The first rank takes it exclusively,
records its launch id in ``.synthdiv/lock.json`` and turns it into a shared lock; a later rank with the same launch
id joins it, any other process is refused. Every decision is taken under ``.synthdiv/lock.gate``, held only for
those few system calls, so no one takes the lock between the first rank's exclusive and shared lock.

The locks are ``flock`` locks: the kernel drops them when their process dies (a SIGKILL leaves no stale lock to
clear by hand), and Linux NFS clients map them onto NFS byte-range locks that every client of the server sees.
Read-only commands (``status``, ``show``) never take the lock. Within one process the lock is re-entrant: ``run``
holds it across all its stages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from synthdiv.errors import InputError, RunLockedError
from synthdiv.run import RunDir, atomic_write_json

__all__ = ["launch_id", "writer_id", "run_lock"]

# lock path -> [fd, depth]: the locks this process holds
_HELD: dict[str, list[int]] = {}


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


def _acquire(folder: Path, stage: str, root: Path) -> int:
    """Take the run's lock (see the module docstring); returns its file descriptor."""
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
                return fd
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "stage": stage, "since": time.time(),
                      "launch": launch}
            atomic_write_json(folder / "lock.json", holder)
            if launch is not None:
                fcntl.flock(fd, fcntl.LOCK_SH)  # let the other ranks of this launch in (under the gate)
            return fd
        except BaseException:
            os.close(fd)
            raise


def _read_launch(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("launch")
    except (OSError, ValueError, AttributeError):
        return None


@contextlib.contextmanager
def run_lock(run: RunDir, stage: str) -> Iterator[None]:
    """Hold the run's writer lock for the block; raises RunLockedError naming the holder when another has it.

    Creates the run directory if needed. A run directory that cannot be written (a file, under a file, on a
    read-only filesystem) raises InputError with one line.
    """
    folder = run.root / ".synthdiv"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        key = str(folder.resolve() / "lock")
        if key in _HELD:
            _HELD[key][1] += 1
        else:
            _HELD[key] = [_acquire(folder, stage, run.root), 1]
    except OSError as exc:
        raise _unusable(run.root, exc) from None
    try:
        yield
    finally:
        _HELD[key][1] -= 1
        if _HELD[key][1] == 0:
            os.close(_HELD.pop(key)[0])
