"""``synthdiv check``: validate a config before spending anything, and print what the run will do."""

from __future__ import annotations

from typing import Annotated

import typer

from synthdiv.cli import _hints
from synthdiv.cli._options import ConfigOpt, RunDirOpt, SetOpt, console, load

__all__ = ["register"]


def check(
    config: ConfigOpt,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    until: Annotated[str | None, typer.Option("--until", help="Check only the stages up to this one.")] = None,
) -> None:
    """Check the config, input paths, models, devices and disk space; print the stages, classes, images and models."""
    from rich.table import Table

    from synthdiv.engine.preflight import check_run, pending_stages

    cfg = load(config, set_, run_dir)
    report = check_run(cfg, pending_stages(cfg, until))
    out = console()
    table = Table(title=f"synthdiv check: {cfg.run_dir}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    for what, value in report.plan:
        table.add_row(what, value)
    out.print(table)
    for finding in report.findings:
        colour = "red" if finding.level == "error" else "yellow"
        out.print(f"[{colour}]{finding.level}[/]: ", end="")
        out.print(_hints.complete(str(finding)), markup=False, highlight=False)
    report.raise_first(prefix="check: ", shown=True)
    out.print(f"ok: {len(report.warnings)} warning(s), no errors", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
