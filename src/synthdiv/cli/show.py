"""``synthdiv show ...``: readable views of a run's artifacts (disambiguation, prompts, samples, adaptive rounds)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthdiv.cli._options import ConfigOpt, RunDirOpt, SetOpt, console, load

__all__ = ["app"]

app = typer.Typer(help="Show a run's artifacts.", no_args_is_help=True, rich_markup_mode=None)

ClassOpt = Annotated[str | None, typer.Option("--class", help="Only this class (name or wnid).")]
ClipOpt = Annotated[bool, typer.Option("--clip", help="Add the mean pairwise CLIP text distance (loads models.clip).")]


@app.command("disambiguation")
def disambiguation(config: ConfigOpt, set_: SetOpt = None, run_dir: RunDirOpt = None) -> None:
    """Table of class, original name, why it was ambiguous, chosen description, runner-up, margin and scores."""
    from synthdiv.disambiguate import disambiguation_table

    console().print(disambiguation_table(load(config, set_, run_dir)))


@app.command("prompts")
def prompts(
    config: ConfigOpt,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    class_: ClassOpt = None,
    clip: ClipOpt = False,
) -> None:
    """Per class: counts by kind, distinct-word ratio, sample prompts (and with --clip the CLIP text distance)."""
    from synthdiv.prompts.diversity import diversity_report

    cfg = load(config, set_, run_dir)
    console().print(diversity_report(cfg, class_, clip=clip))


@app.command("rounds")
def rounds(config: ConfigOpt, set_: SetOpt = None, run_dir: RunDirOpt = None) -> None:
    """The adaptive rounds in the plan: images, shards, what drove each, and the classes it gave most images to."""
    from rich.table import Table

    from synthdiv.catalog.reader import read_classes
    from synthdiv.errors import InputError
    from synthdiv.prompts.rounds import round_rows
    from synthdiv.run import RunDir

    run = RunDir(load(config, set_, run_dir).run_dir)
    if not run.plan.exists():
        raise InputError(f"{run.plan}: not found; run `synthdiv plan` (and `synthdiv adapt` for rounds) first")
    rows = round_rows(run.plan, [c["name"] for c in read_classes(run.classes)])
    table = Table(title=f"adaptive rounds of {run.root}" if rows else "no adaptive rounds in the plan")
    for column in ("round", "images", "shards", "driven by", "given most"):
        table.add_column(column, justify="right" if column in ("round", "images", "shards") else "left")
    for r in rows:
        table.add_row(str(r["round"]), f"{r['images']:,}", str(r["shards"]), r["driven_by"], r["top"])
    console().print(table)


@app.command("samples")
def samples(
    config: ConfigOpt,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    class_: ClassOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="PNG to write (default: in the run dir).")] = None,
) -> None:
    """Write a contact sheet PNG of generated images."""
    from synthdiv.generate.samples import contact_sheet

    cfg = load(config, set_, run_dir)
    path = contact_sheet(cfg, class_, out)
    typer.echo(str(path))
