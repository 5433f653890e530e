"""Logging set up for people and for clusters: rich on a terminal, plain timestamped lines in a file.

On a terminal, messages go through rich with the time of day. When stderr is a file or a pipe (Slurm, nohup, a CI
log) every record is one line ``2026-11-27T14:03:12 INFO synthdiv.engine.runner: ...``, never folded at 80 columns, with
control characters escaped; third-party progress bars (tqdm in diffusers and transformers, huggingface_hub downloads)
are turned off through their environment switches, so that they neither flood the log nor import anything here.
Long loops report through :mod:`synthdiv.utils.progress`, which prints a progress line every few seconds in that case.
"""

from __future__ import annotations

import logging
import os
import sys

from synthdiv.utils.names import printable

__all__ = ["setup_logging", "is_terminal", "PlainFormatter", "TIME_FORMAT"]

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
_QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}


def is_terminal(stream: object = None) -> bool:
    """Whether ``stream`` (default: stderr) is an interactive terminal (rich's answer: it honours FORCE_TERMINAL)."""
    from rich.console import Console

    return Console(file=stream or sys.stderr).is_terminal  # type: ignore[arg-type]


class PlainFormatter(logging.Formatter):
    """``<ISO time> <LEVEL> <logger>: <message>``, the message on one line with control characters escaped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt=TIME_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name

        record.message = printable(record.message, keep="\t")
        return super().formatMessage(record)


def setup_logging(level: int = logging.INFO, stream: object = None) -> None:
    """Send synthdiv's log (at ``level``) and other libraries' warnings to ``stream`` (default: stderr)."""
    stream = stream or sys.stderr
    if is_terminal(stream):
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(
            console=Console(file=stream), show_path=False, show_time=True, omit_repeated_times=False, markup=False,
            log_time_format="%H:%M:%S",
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        for key, value in _QUIET_ENV.items():
            os.environ.setdefault(key, value)
        handler = logging.StreamHandler(stream)  # type: ignore[arg-type]
        handler.setFormatter(PlainFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("synthdiv").setLevel(level)
