"""Options shared by every command, as ``Annotated`` aliases, and the one place that turns them into a config."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from synthdiv.config import RunConfig

__all__ = ["ConfigOpt", "SetOpt", "RunDirOpt", "RedoFlag", "load", "console"]

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="The run config (YAML).", exists=False, dir_okay=False)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value: section.key=value (repeatable).", metavar="KEY=VALUE"),
]
RunDirOpt = Annotated[
    Path | None, typer.Option("--run-dir", help="Write the run here instead of the config's run_dir.")
]
RedoFlag = Annotated[bool, typer.Option("--redo", help="Replace this stage's outputs even if its config changed.")]


def load(config: Path, overrides: list[str] | None, run_dir: Path | None) -> RunConfig:
    """Load and validate the config named on the command line (raises ConfigError on any problem)."""
    from synthdiv.config import load_config

    return load_config(config, overrides or [], run_dir)


def console(**kwargs: Any) -> Any:
    """A rich Console that escapes control characters in the text it is given (a class name, an LLM answer or a
    state file could hold ``\\x1b[...``): only rich's own styling reaches the terminal raw. Written to a file or a
    pipe, lines are not folded at 80 columns."""
    from rich.console import Console

    from synthdiv.names import printable

    class _SafeConsole(Console):
        def render_str(self, text: str, **kwargs: Any) -> Any:
            return super().render_str(printable(text, keep="\n\t"), **kwargs)

    out = _SafeConsole(**kwargs)
    if "width" not in kwargs and not out.is_terminal:
        out.width = 400  # a file or a pipe: no folding at 80 columns (a table takes only the width it needs)
    return out
