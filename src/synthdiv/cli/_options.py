"""Options shared by every command, as ``Annotated`` aliases, and the one place that turns them into a config.

Every command resolves its run directory here (:func:`load`): an empty ``--run-dir`` and a run directory that is a
file (or lies under one) are refused in one line before any command reads or writes the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig

__all__ = ["ConfigOpt", "SetOpt", "RunDirOpt", "RedoFlag", "load", "check_run_dir", "console"]

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="The run config (YAML).", exists=False, dir_okay=False)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value: section.key=value (repeatable).", metavar="KEY=VALUE"),
]
RunDirOpt = Annotated[  # a str, not a Path: Path("") would read an empty value as "." (the current folder)
    str | None, typer.Option("--run-dir", help="Write the run here instead of the config's run_dir.")
]
RedoFlag = Annotated[bool, typer.Option("--redo", help="Replace this stage's outputs even if its config changed.")]


def load(config: Path, overrides: list[str] | None, run_dir: str | None) -> RunConfig:
    """Load and validate the config named on the command line, and check its run directory is a folder or can be
    one. The options are recorded so that the hints this command prints run as printed (:mod:`synthdiv.cli._hints`).

    Raises:
        ConfigError: The config is invalid, or ``--run-dir`` is empty.
        InputError: The run directory is a file, or lies under one.
    """
    from synthdiv.cli import _hints
    from synthdiv.config.loader import load_config
    from synthdiv.errors import ConfigError

    _hints.remember(config, overrides, run_dir)
    if run_dir is not None and not str(run_dir).strip():
        raise ConfigError("--run-dir: empty; expected a folder path ('.' for the current folder)")
    cfg = load_config(config, overrides or [], run_dir)
    check_run_dir(cfg.run_dir)
    return cfg


def check_run_dir(root: Path) -> None:
    """Refuse a run directory that is not a folder and cannot become one (it, or a folder above it, is a file)."""
    from synthdiv.errors import InputError

    blocker = next((p for p in (root, *root.parents) if p.exists() or p.is_symlink()), None)
    if blocker is not None and not blocker.is_dir():
        what = "it" if blocker == root else str(blocker)
        raise InputError(f"run_dir {root}: cannot write the run here ({what} is not a folder); expected a folder")


def console(**kwargs: Any) -> Any:
    """A rich Console that escapes control characters in the text it is given (a class name, an LLM answer or a
    state file could hold ``\\x1b[...``): only rich's own styling reaches the terminal raw. Written to a file or a
    pipe, lines are not folded at 80 columns."""
    from rich.console import Console

    from synthdiv.utils.names import printable

    class _SafeConsole(Console):
        def render_str(self, text: str, **kwargs: Any) -> Any:
            return super().render_str(printable(text, keep="\n\t"), **kwargs)

    out = _SafeConsole(**kwargs)
    if "width" not in kwargs and not out.is_terminal:
        out.width = 400  # a file or a pipe: no folding at 80 columns (a table takes only the width it needs)
    return out
