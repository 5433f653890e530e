"""The ``synthdiv`` command line (typer). Each command parses its options and calls one library function.

Errors derived from :class:`synthdiv.errors.SynthdivError` are rendered here, as one line on stderr, exit code 2.
Every ```synthdiv ...``` hint the user sees (errors, tables, log lines) is completed with the invocation's ``-c`` /
``--set`` / ``--run-dir`` (:mod:`synthdiv.cli._hints`). Nothing here imports torch: ``synthdiv --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from synthdiv import __version__
from synthdiv.cli import _hints
from synthdiv.cli import check as _check
from synthdiv.cli import publish as _publish
from synthdiv.cli import show as _show
from synthdiv.cli import stages as _stages
from synthdiv.cli import verify as _verify
from synthdiv.errors import SynthdivError
from synthdiv.utils.names import printable

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
    from synthdiv.utils.logs import setup_logging

    setup_logging(level)  # timestamped; plain unfolded lines and quiet third-party bars when stderr is not a terminal
    for handler in logging.getLogger().handlers:
        handler.addFilter(_hints.HintFilter())  # hints in log lines name this invocation's -c / --set / --run-dir


_stages.register(app)
_check.register(app)
_verify.register(app)
_publish.register(app)
app.add_typer(_show.app, name="show")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``synthdiv`` script; returns the exit code instead of raising SystemExit."""
    argv = sys.argv[1:] if argv is None else list(argv)
    _hints.forget()
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
    finally:
        _hints.forget()
    return 0


def render_error(message: str, argv: list[str]) -> str:
    """The one line shown for an error: control characters escaped, length bounded, and every hinted command
    (```synthdiv train --redo```) completed with this invocation's ``-c``, ``--set`` and ``--run-dir``, so it runs
    as it is shown."""
    completed = _hints.complete(" ".join(message.split("\n")), _hints.shared_from_argv(argv))
    return printable(completed, limit=2000)


def _script() -> None:
    sys.exit(main())
