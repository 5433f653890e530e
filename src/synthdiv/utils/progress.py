"""Progress of long loops: a rich bar on a terminal, a log line every N seconds elsewhere, and a heartbeat file.

:class:`Progress` takes the calls of ``rich.progress.Progress`` that synthdiv's loops use (``add_task``, ``advance``,
``update``, a ``with`` block). On a terminal it drives a rich bar. When stderr is a file or a pipe (Slurm, nohup) it
logs ``generate: 1,204/8,000 (15%), 11.8/s, ETA 9.6 min`` every ``SYNTHDIV_PROGRESS_SECONDS`` (default 30) seconds,
also while nothing advances (a sign of life), and a last line when the loop ends. While a stage runs
(:func:`heartbeat`), every process also keeps ``.synthdiv/progress/<stage>.<rank>.json`` up to date (atomic
rewrites): ``synthdiv status`` reads it to show a running stage's rate, ETA and when it last made progress.

Rates are real rates: measured over elapsed time (:class:`_Meter`), never over the instant of one advance, and
written as people read them (``9.2/min``, ``52 tokens/s``; :func:`synthdiv.utils.humanize.human_rate`). A task can carry
counters beside its count (requests answered, tokens generated) and be *busy* ("generating") while its count
cannot move; :mod:`synthdiv.models.llm.progress` shows LLM batches that way.
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

from synthdiv.errors import ConfigError
from synthdiv.utils.devices import dist_env
from synthdiv.utils.humanize import human_duration, human_rate
from synthdiv.utils.io import atomic_write_json
from synthdiv.utils.logs import is_terminal

logger = logging.getLogger("synthdiv.progress")  # the channel of progress lines, whichever module writes them

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
class _Meter:
    """A count and its rates. The current rate (progress lines, ETA) runs from the first advance on (model loading
    is left out) and leaves out the items of that first advance, whose time is not known; until a second advance it
    is the mean rate. The mean rate is the work done over the whole time since the start: the last line's, so that
    ``10/10 in 65 s`` reads ``(9.2/min)`` even when the 10 arrived together."""

    done: float = 0.0
    total: float | None = None
    started: float = field(default_factory=time.monotonic)
    first_done: float | None = None  # the count and time just after the first advance
    first_at: float | None = None
    initial: float = field(init=False)  # the count at the start (a resumed loop's work done earlier)

    def __post_init__(self) -> None:
        self.initial = self.done

    def set(self, value: float) -> bool:
        """Set the count; returns whether it changed."""
        if value == self.done:
            return False
        self.done = value
        if self.first_at is None:
            self.first_done, self.first_at = value, time.monotonic()
        return True

    def rate(self) -> float | None:
        now = time.monotonic()
        if self.first_at is not None and self.first_done is not None and self.done > self.first_done:
            return (self.done - self.first_done) / (now - self.first_at) if now > self.first_at else None
        return self.mean_rate()

    def mean_rate(self) -> float | None:
        elapsed, work = time.monotonic() - self.started, self.done - self.initial
        return work / elapsed if work > 0 and elapsed > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {"done": self.done, "total": self.total, "rate": self.rate()}


@dataclass
class _Task:
    description: str
    meter: _Meter
    unit: str = ""  # what the count counts, for its rate ("img/s"); "" reads "/s"
    counters: dict[str, _Meter] = field(default_factory=dict)  # e.g. requests answered, tokens generated
    last_progress: float = field(default_factory=time.time)
    busy: str | None = None  # what it is waiting on ("generating"): not idle, though the count does not move
    busy_since: float | None = None  # time.time()

    @property
    def done(self) -> float:
        return self.meter.done

    @property
    def total(self) -> float | None:
        return self.meter.total

    def rate(self) -> float | None:
        return self.meter.rate()

    def counts_text(self) -> str:
        """``"4/10 requests, 2,345 tokens at 52 tokens/s"``: the counters, each with its total or else its rate."""
        parts = []
        for name, m in self.counters.items():
            text = f"{m.done:,.0f}" + (f"/{m.total:,.0f}" if m.total else "") + f" {name}"
            rate = None if m.total else m.rate()
            parts.append(text + (f" at {human_rate(rate, name)}" if rate else ""))
        return ", ".join(parts)

    def state_text(self) -> str:
        """``"generating for 65 s"`` while busy, ``"no progress for 65 s"`` when idle for two log intervals."""
        now = time.time()
        if self.busy is not None and self.busy_since is not None:
            return f"{self.busy} for {human_duration(now - self.busy_since)}" if now - self.busy_since >= 1 else ""
        idle = now - self.last_progress
        return f"no progress for {human_duration(idle)}" if idle >= 2 * progress_seconds() else ""

    def line(self) -> str:
        total = f"/{self.total:,.0f}" if self.total else ""
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        rate = self.rate()
        text = f"{self.description}: {self.done:,.0f}{total}{pct}"
        text += f", {human_rate(rate, self.unit)}" if rate else ", rate not known yet"
        if rate and self.total:
            text += f", ETA {human_duration(max(0.0, self.total - self.done) / rate)}"
        return "; ".join(p for p in (text, self.counts_text(), self.state_text()) if p)

    def final_line(self) -> str:
        """``"LLM candidates: 10/10 in 65 s (9.2/min); 10/10 requests, 2,345 tokens at 36 tokens/s"``."""
        rate = self.meter.mean_rate()
        text = (f"{self.description}: {self.done:,.0f}" + (f"/{self.total:,.0f}" if self.total else "")
                + f" in {human_duration(time.monotonic() - self.meter.started)}"
                + (f" ({human_rate(rate, self.unit)})" if rate else ""))
        return "; ".join(p for p in (text, self.counts_text()) if p)

    def to_json(self) -> dict[str, Any]:
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate and self.total else None
        return {"description": self.description, "done": self.done, "total": self.total, "rate": rate,
                "unit": self.unit, "eta_seconds": eta, "last_progress": self.last_progress,
                "counters": {name: m.to_json() for name, m in self.counters.items()}, "busy": self.busy,
                "busy_since": self.busy_since}


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
            logger.info("%s", task.final_line())
        self._beat(force=True)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, unit: str = "",
                 **kwargs: Any) -> int:
        """A new task; ``unit`` names what it counts in its rate (``"img"``: ``"12.3 img/s"``)."""
        with self._lock:
            task_id = len(self._tasks)
            self._tasks[task_id] = _Task(description, _Meter(float(completed), total), unit)
        if self._bar is not None:
            self._rich_ids[task_id] = self._bar.add_task(description, total=total, completed=completed, **kwargs)
        return task_id

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: int, *, completed: float | None = None, total: float | None = None,
               advance: float | None = None, description: str | None = None, **kwargs: Any) -> None:
        with self._lock:
            task = self._tasks[task_id]
            if total is not None:
                task.meter.total = total
            if description is not None:
                task.description = description
            value = float(completed) if completed is not None else task.done
            if task.meter.set(value + (advance or 0)):
                task.last_progress = time.time()
            shown = self._shown(task) if description is not None else None
        if self._bar is not None:
            self._bar.update(self._rich_ids[task_id], completed=completed, total=total, advance=advance,
                             description=shown, **kwargs)
        if time.monotonic() - self._last_beat >= _BEAT_SECONDS:
            self._beat()

    def count(self, task_id: int, name: str, advance: float = 0, *, completed: float | None = None,
              total: float | None = None) -> None:
        """Move the task's counter ``name`` (requests answered, tokens generated), shown after its own count with
        its total or else its rate; a counter that moves is progress."""
        with self._lock:
            task = self._tasks[task_id]
            meter = task.counters.get(name)
            if meter is None:  # its time runs from the task's start, so a first count gets a real rate
                meter = task.counters[name] = _Meter(started=task.meter.started)
            if total is not None:
                meter.total = total
            value = float(completed) if completed is not None else meter.done
            if meter.set(value + advance):
                task.last_progress = time.time()
            shown = self._shown(task)
        self._show(task_id, shown)

    def busy(self, task_id: int, what: str | None) -> None:
        """Mark the task as waiting on ``what`` (``"generating"``) though its count does not move, so the log says
        so instead of "no progress"; None ends it."""
        with self._lock:
            task = self._tasks[task_id]
            if what != task.busy:
                task.busy, task.busy_since = what, (time.time() if what is not None else None)
            shown = self._shown(task)
        self._show(task_id, shown)

    @staticmethod
    def _shown(task: _Task) -> str:
        """The task's description on the rich bar: with its counters."""
        counts = task.counts_text()
        return f"{task.description} ({counts})" if counts else task.description

    def _show(self, task_id: int, shown: str) -> None:
        if self._bar is not None:
            self._bar.update(self._rich_ids[task_id], description=shown)
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
