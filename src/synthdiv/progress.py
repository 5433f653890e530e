"""Progress of long loops: a rich bar on a terminal, a log line every N seconds elsewhere, and a heartbeat file.

:class:`Progress` takes the calls of ``rich.progress.Progress`` that synthdiv's loops use (``add_task``, ``advance``,
``update``, a ``with`` block). On a terminal it drives a rich bar. When stderr is a file or a pipe (Slurm, nohup) it
logs ``generate: 1,204/8,000 (15%), 11.8/s, ETA 9.6 min`` every ``SYNTHDIV_PROGRESS_SECONDS`` (default 30) seconds,
also while nothing advances (a sign of life), and a last line when the loop ends. While a stage runs
(:func:`heartbeat`), every process also keeps ``.synthdiv/progress/<stage>.<rank>.json`` up to date (atomic
rewrites): ``synthdiv status`` reads it to show a running stage's rate, ETA and when it last made progress.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthdiv.devices import dist_env
from synthdiv.errors import ConfigError
from synthdiv.units import human_duration

logger = logging.getLogger("synthdiv.progress")

__all__ = ["Progress", "heartbeat", "read_heartbeats", "progress_seconds", "rank"]

INTERVAL_ENV = "SYNTHDIV_PROGRESS_SECONDS"
_BEAT_SECONDS = 5.0  # heartbeat file rewrites at most this often
_beat: dict[str, Any] = {}  # {"path": Path, "stage": str} while a stage runs in this process


def progress_seconds() -> float:
    """Seconds between progress lines in a log (``SYNTHDIV_PROGRESS_SECONDS``, default 30)."""
    try:
        return max(0.05, float(os.environ.get(INTERVAL_ENV, "30")))
    except ValueError:
        return 30.0


def rank() -> int:
    """This process's rank in a torchrun / Slurm launch (0 for a lone process), from :func:`dist_env`.

    A malformed launch environment reads as rank 0: progress reporting must never stop the work; the stages that
    split work by rank report that environment themselves.
    """
    try:
        return dist_env().rank
    except ConfigError:
        return 0


@dataclass
class _Task:
    description: str
    total: float | None
    done: float = 0.0
    started: float = field(default_factory=time.monotonic)
    first_done: float | None = None  # count and time of the first advance: the rate leaves out model loading
    first_at: float | None = None
    last_progress: float = field(default_factory=time.time)

    def rate(self) -> float | None:
        if self.first_at is None or self.first_done is None:
            return None
        elapsed = time.monotonic() - self.first_at
        return (self.done - self.first_done) / elapsed if elapsed > 0 and self.done > self.first_done else None

    def line(self) -> str:
        total = f"/{self.total:,.0f}" if self.total else ""
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        rate = self.rate()
        text = f"{self.description}: {self.done:,.0f}{total}{pct}"
        text += f", {rate:.3g}/s" if rate else ", rate not known yet"
        if rate and self.total:
            text += f", ETA {human_duration(max(0.0, self.total - self.done) / rate)}"
        idle = time.time() - self.last_progress
        if idle >= 2 * progress_seconds():
            text += f", no progress for {human_duration(idle)}"
        return text

    def to_json(self) -> dict[str, Any]:
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate and self.total else None
        return {"description": self.description, "done": self.done, "total": self.total, "rate": rate,
                "eta_seconds": eta, "last_progress": self.last_progress}


class Progress:
    """A progress display with rich's ``Progress`` calls; see the module docstring.

    Args:
        columns: rich columns (used on a terminal only).
        transient: Remove the rich bar when done (terminal only).
        console: The rich console (terminal only); default stderr.
        interval: Seconds between log lines (default :func:`progress_seconds`).
        kwargs: Other rich ``Progress`` arguments.
    """

    def __init__(self, *columns: Any, transient: bool = False, console: Any = None, interval: float | None = None,
                 **kwargs: Any) -> None:
        from synthdiv.logs import is_terminal

        self._bar = None
        if is_terminal(getattr(console, "file", None)):
            from rich.console import Console
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(*columns, transient=transient, console=console or Console(stderr=True), **kwargs)
        self.interval = interval or progress_seconds()
        self._tasks: dict[int, _Task] = {}
        self._rich_ids: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._beat_lock = threading.Lock()  # serialises heartbeat writes (the ticker thread and the worker)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_beat = 0.0

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.__enter__()
        self._thread = threading.Thread(target=self._tick, name="synthdiv-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.__exit__(*exc)
        with self._lock:
            tasks = list(self._tasks.values())
        for task in tasks:
            elapsed = time.monotonic() - task.started
            rate = task.rate()
            logger.info("%s: %s%s in %s%s", task.description, f"{task.done:,.0f}",
                        f"/{task.total:,.0f}" if task.total else "", human_duration(elapsed),
                        f" ({rate:.3g}/s)" if rate else "")
        self._beat(force=True)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **kwargs: Any) -> int:
        with self._lock:
            task_id = len(self._tasks)
            self._tasks[task_id] = _Task(description, total, float(completed))
        if self._bar is not None:
            self._rich_ids[task_id] = self._bar.add_task(description, total=total, completed=completed, **kwargs)
        return task_id

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: int, *, completed: float | None = None, total: float | None = None,
               advance: float | None = None, description: str | None = None, **kwargs: Any) -> None:
        with self._lock:
            task = self._tasks[task_id]
            before = task.done
            if total is not None:
                task.total = total
            if description is not None:
                task.description = description
            if completed is not None:
                task.done = float(completed)
            if advance:
                task.done += advance
            if task.done != before:
                if task.first_at is None:
                    task.first_done, task.first_at = before, time.monotonic()
                task.last_progress = time.time()
        if self._bar is not None:
            self._bar.update(self._rich_ids[task_id], completed=completed, total=total, advance=advance,
                             description=description, **kwargs)
        if time.monotonic() - self._last_beat >= _BEAT_SECONDS:
            self._beat()

    def _tick(self) -> None:
        while not self._stop.wait(min(self.interval, _BEAT_SECONDS)):
            now = time.monotonic()
            if self._bar is None and now - getattr(self, "_last_line", 0.0) >= self.interval - 1e-3:
                self._last_line = now
                with self._lock:
                    lines = [t.line() for t in self._tasks.values() if not t.total or t.done < t.total]
                for line in lines:
                    logger.info("%s", line)
            self._beat()

    def _beat(self, force: bool = False) -> None:
        """Rewrite this process's heartbeat file (when a stage runs), at most every few seconds."""
        path = _beat.get("path")
        from synthdiv.run import atomic_write_json

        # one writer at a time, each with the counts of its own moment: the ticker thread and the worker never
        # rename an older snapshot over a newer one
        with self._beat_lock:
            now = time.monotonic()
            if path is None or (not force and now - self._last_beat < _BEAT_SECONDS):
                return
            self._last_beat = now
            with self._lock:
                tasks = [t.to_json() for t in self._tasks.values()]
            with contextlib.suppress(OSError):  # a full or read-only disk must not stop the work
                atomic_write_json(path, {"stage": _beat["stage"], "rank": rank(), "host": socket.gethostname(),
                                         "pid": os.getpid(), "updated": time.time(), "tasks": tasks})


def _folder(root: Path) -> Path:
    return Path(root) / ".synthdiv" / "progress"


@contextlib.contextmanager
def heartbeat(root: Path, stage: str) -> Iterator[None]:
    """While the block runs, :class:`Progress` keeps ``<root>/.synthdiv/progress/<stage>.<rank>.json`` current."""
    path = _folder(root) / f"{stage}.{rank()}.json"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a file of an earlier attempt is not this one's progress
    previous = dict(_beat)
    _beat.update(path=path, stage=stage)
    try:
        yield
    finally:
        _beat.clear()
        _beat.update(previous)


def read_heartbeats(root: Path, stage: str, since: float = 0.0) -> list[dict[str, Any]]:
    """The heartbeat files of ``stage`` (one per rank) written after ``since`` (a time.time())."""
    out = []
    for path in sorted(_folder(root).glob(f"{stage}.*.json")):
        try:
            beat = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(beat, dict) and float(beat.get("updated", 0)) >= since:
            out.append(beat)
    return out
