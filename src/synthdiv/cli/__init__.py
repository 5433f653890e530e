"""The ``synthdiv`` command line (typer). Each command parses its options and calls one library function.

Errors derived from :class:`synthdiv.errors.SynthdivError` are rendered here, as one line on stderr, exit code 2.
Nothing here imports torch: ``synthdiv --help`` stays fast.
"""

from __future__ import annotations

import logging
import re
import shlex
import sys
from typing import Annotated

import typer

from synthdiv import __version__
from synthdiv.cli import check as _check
from synthdiv.cli import show as _show
from synthdiv.cli import stages as _stages
from synthdiv.cli import verify as _verify
from synthdiv.errors import SynthdivError
from synthdiv.names import printable

__all__ = ["app", "main", "render_error"]

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
    from synthdiv.logs import setup_logging

    setup_logging(level)  # timestamped; plain unfolded lines and quiet third-party bars when stderr is not a terminal


_stages.register(app)
_check.register(app)
_verify.register(app)
app.add_typer(_show.app, name="show")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``synthdiv`` script; returns the exit code instead of raising SystemExit."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        app(args=argv, prog_name="synthdiv", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SynthdivError as exc:
        print(f"synthdiv: error: {render_error(str(exc), argv)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(_stages.INTERRUPTED, file=sys.stderr)
        return 130
    return 0


_HINT = re.compile(r"`synthdiv ([^`]*)`")
_SHARED = ("-c", "--config", "--set", "--run-dir")


def render_error(message: str, argv: list[str]) -> str:
    """The one line shown for an error: control characters escaped, length bounded, and every hinted command
    (```synthdiv train --redo```) completed with this invocation's ``-c``, ``--set`` and ``--run-dir``, so it runs
    as it is shown."""
    shared: list[str] = []
    for i, arg in enumerate(argv):
        if arg in _SHARED and i + 1 < len(argv):
            shared += [arg, argv[i + 1]]
        elif arg.startswith(tuple(f"{o}=" for o in _SHARED if o.startswith("--"))):
            shared.append(arg)

    def complete(match: re.Match[str]) -> str:
        return f"`{shlex.join(['synthdiv', *shlex.split(match[1]), *shared])}`"

    return printable(_HINT.sub(complete, " ".join(message.split("\n"))), limit=2000)


def _script() -> None:
    sys.exit(main())
