"""Commands that run stages: ``run``, one command per stage, ``status`` and ``estimate``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

import typer

from synthdiv.cli import _hints
from synthdiv.cli._options import ConfigOpt, RedoFlag, RunDirOpt, SetOpt, console, load
from synthdiv.core.pipeline import STAGES

__all__ = ["register"]

INTERRUPTED = "synthdiv: interrupted; rerun to resume"
STATUS_COLUMNS = 100  # ``status`` wraps its detail lines to fit, on a terminal and in a log alike


def _interruptible(command: Callable[..., None]) -> Callable[..., None]:
    """Ctrl-C in a stage: say how to go on and exit 130 (typer would exit 130 without a word)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt:
            typer.echo(INTERRUPTED, err=True)
            raise typer.Exit(130) from None

    return wrapper


def _stage_command(name: str, help_text: str):  # noqa: ANN202 - a typer command factory
    @_interruptible
    def command(config: ConfigOpt, set_: SetOpt = None, run_dir: RunDirOpt = None, redo: RedoFlag = False) -> None:
        from synthdiv.engine.runner import run_stage
        from synthdiv.errors import StageOrderError

        cfg = load(config, set_, run_dir)
        problem = _hints.order_problem(cfg, name)  # the engine would name only the stage just before this one
        if problem is not None:
            raise StageOrderError(problem)
        run_stage(cfg, name, redo=redo)

    command.__name__ = f"{name}_command"
    command.__doc__ = help_text
    return command


@_interruptible
def run(
    config: ConfigOpt,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    redo: Annotated[
        list[str] | None, typer.Option("--redo", help="Redo this stage (repeatable); later stages follow.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Stop after this stage.")] = None,
) -> None:
    """Run every stage in order; finished stages with unchanged inputs are skipped."""
    from synthdiv.engine.runner import run_all

    cfg = load(config, set_, run_dir)
    run_all(cfg, redo=redo or (), stop_after=until)


@_interruptible
def adapt(config: ConfigOpt, set_: SetOpt = None, run_dir: RunDirOpt = None) -> None:
    """Spend the adaptive budget in rounds: more images for the classes the model gets wrong and the filters keep
    least (the adapt section); each round runs the stages that are not up to date."""
    from synthdiv.engine.adapt import adapt_run

    cfg = load(config, set_, run_dir)
    done = adapt_run(cfg)
    console().print(f"adapt: {done['rounds']} round(s) in the plan ({done['added_now']} added now), "
                    f"{done['images_added']:,} images added in all, driven by variant {done['variant']!r}")


def status(config: ConfigOpt, set_: SetOpt = None, run_dir: RunDirOpt = None) -> None:
    """Print each stage's state: not started, partial (with counts), done, stale."""
    from rich.table import Table

    from synthdiv.core.status import stage_status

    cfg = load(config, set_, run_dir)
    out = console()
    out.width = min(out.width, STATUS_COLUMNS)
    table = Table(title=f"run {cfg.run_dir}", title_justify="left")
    table.add_column("stage", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("detail", overflow="fold")  # a long path breaks across lines rather than losing its end
    colours = {"done": "green", "partial": "yellow", "stale": "red"}
    commands: list[str] = []
    for row in stage_status(cfg):
        detail, hinted = _hints.set_apart(row.detail)  # a command folded in a cell would not run as printed
        commands += [f"{row.stage}: {command}" for command in hinted]
        table.add_row(row.stage, f"[{colours.get(row.state, 'white')}]{row.state}[/]", detail)
    out.print(table)
    for line in commands:
        out.print(line, soft_wrap=True, markup=False, highlight=False)


def estimate(
    config: ConfigOpt,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    images_per_second: Annotated[
        float | None,
        typer.Option(
            "--images-per-second", help="Generation img/s of one device (estimate.device) to assume (else measured)."
        ),
    ] = None,
) -> None:
    """Print the run's budget, remaining and total: images, disk, LLM calls and tokens, generation and training time."""
    from synthdiv.engine.estimate import estimate as budget

    cfg = load(config, set_, run_dir)
    console().print(budget(cfg, images_per_second))


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    for spec in STAGES:
        app.command(spec.name, help=spec.help)(_stage_command(spec.name, spec.help))
    app.command("adapt")(adapt)
    app.command("status")(status)
    app.command("estimate")(estimate)
