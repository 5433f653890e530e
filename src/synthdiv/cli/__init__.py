"""The ``synthdiv`` command line (typer). Each command parses its options and calls one library function.

Errors derived from :class:`synthdiv.errors.SynthdivError` are rendered here, as one line on stderr, exit code 2.
Nothing here imports torch: ``synthdiv --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from synthdiv import __version__
from synthdiv.cli import show as _show
from synthdiv.cli import stages as _stages
from synthdiv.errors import SynthdivError

__all__ = ["app", "main"]

app = typer.Typer(
    name="synthdiv",
    help="Diverse synthetic training images from off-the-shelf text-to-image models (Yu et al., 2023).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"synthdiv {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log warnings and errors only.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    _setup_logging(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


def _setup_logging(level: int) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False, markup=False)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[handler], force=True)
    logging.getLogger("synthdiv").setLevel(level)


_stages.register(app)
app.add_typer(_show.app, name="show")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``synthdiv`` script; returns the exit code instead of raising SystemExit."""
    try:
        app(args=argv, prog_name="synthdiv", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SynthdivError as exc:
        print(f"synthdiv: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("synthdiv: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def _script() -> None:
    sys.exit(main())
