"""Hints that run as printed: every ```synthdiv <command>``` a line names is completed with this invocation's
``-c`` / ``--set`` / ``--run-dir``, and a stage asked for too early names the first stage there is to run.

Hints are written by the library without knowing the command line (``run `synthdiv generate` to make the rest``).
The CLI completes them wherever they reach the user: error lines (:func:`synthdiv.cli.render_error`), tables and
summaries the commands print (:func:`complete`), and log records (:class:`HintFilter`, on the log handlers).
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig

__all__ = ["HINT", "SHARED", "shared_from_argv", "remember", "forget", "complete", "set_apart", "HintFilter",
           "order_problem", "stage_hint"]

HINT = re.compile(r"`synthdiv ([^`]*)`")
SHARED = ("-c", "--config", "--set", "--run-dir")

_current: list[str] = []  # the shared options of the command being run (set when its config loads)


def shared_from_argv(argv: Sequence[str]) -> list[str]:
    """The ``-c`` / ``--config`` / ``--set`` / ``--run-dir`` options of a command line, as given."""
    shared: list[str] = []
    for i, arg in enumerate(argv):
        if arg in SHARED and i + 1 < len(argv):
            shared += [arg, argv[i + 1]]
        elif arg.startswith(tuple(f"{o}=" for o in SHARED if o.startswith("--"))):
            shared.append(arg)
    return shared


def remember(config: Path | str, overrides: Sequence[str] | None, run_dir: Path | str | None) -> None:
    """Record the shared options of the command being run, for :func:`complete` and :class:`HintFilter`."""
    _current[:] = ["-c", str(config)]
    for item in overrides or ():
        _current.extend(["--set", item])
    if run_dir is not None:
        _current.extend(["--run-dir", str(run_dir)])


def forget() -> None:
    """Forget the recorded options (a new command starts)."""
    _current.clear()


def complete(text: str, shared: Sequence[str] | None = None) -> str:
    """``text`` with every ```synthdiv ...``` hint followed by ``shared`` (default: the recorded options)."""
    extra = list(_current if shared is None else shared)
    if not extra:
        return text
    return HINT.sub(lambda m: f"`{shlex.join(['synthdiv', *shlex.split(m[1]), *extra])}`", text)


def set_apart(text: str) -> tuple[str, list[str]]:
    """``text`` with each hint replaced by "the command below", and the completed hints: a table cell folds a long
    command across lines, so a table shows its commands under it, each on a line of its own."""
    commands = [complete(m[0]) for m in HINT.finditer(text)]
    return HINT.sub("the command below", text), commands


class HintFilter(logging.Filter):
    """Completes the hints in every log record a handler writes (see :func:`complete`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _current and "`synthdiv " in str(record.msg):
            record.msg, record.args = complete(record.getMessage()), None
        return True


def stage_hint(cfg: RunConfig, stage: str) -> str:
    """The command that makes ``stage``'s outputs from what the run holds now: ```synthdiv <stage>``` when its
    inputs are there, else ```synthdiv run --until <stage>``` (naming the first stage that has to run)."""
    start = _first_to_run(cfg, stage)
    if start == stage:
        return f"`synthdiv {stage}`"
    return f"`synthdiv run --until {stage}` (from stage {start} on; a finished stage is skipped)"


def order_problem(cfg: RunConfig, stage: str) -> str | None:
    """Why ``stage`` cannot run yet (an input is missing) and the one command that gets there, or None."""
    from synthdiv.core.pipeline import STAGE_NAMES, get_spec, producer_of
    from synthdiv.core.rundir import RunDir

    run = RunDir(cfg.run_dir)
    missing = [i for i in get_spec(stage).inputs if not getattr(run, i).exists()]
    if not missing:
        return None
    before = producer_of(missing[0])
    need = f"stage {stage!r} needs {getattr(run, missing[0]).name} from stage {before!r}"
    if before not in STAGE_NAMES or _first_to_run(cfg, before) == before:
        return f"{need}: run `synthdiv {before}` first"
    return f"{need}, whose inputs are missing too: run {stage_hint(cfg, stage)}"


def _first_to_run(cfg: RunConfig, stage: str) -> str:
    """The earliest stage on ``stage``'s input chain whose own inputs are all there."""
    from synthdiv.core.pipeline import STAGE_NAMES, get_spec, producer_of
    from synthdiv.core.rundir import RunDir

    run = RunDir(cfg.run_dir)
    while True:
        missing = [i for i in get_spec(stage).inputs if not getattr(run, i).exists()]
        if not missing or producer_of(missing[0]) not in STAGE_NAMES:
            return stage
        stage = producer_of(missing[0])
