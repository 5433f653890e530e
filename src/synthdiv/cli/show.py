"""``synthdiv show ...``: readable views of a run's artifacts (disambiguation, prompts, samples, adaptive rounds,
what each gain cost)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from synthdiv.cli._options import ConfigOpt, RunDirOpt, SetOpt, console, load

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig

__all__ = ["app"]

app = typer.Typer(help="Show a run's artifacts.", no_args_is_help=True, rich_markup_mode=None)


def _require(cfg: RunConfig, artifact: str, then: str = "") -> None:
    """Refuse in one line when the run lacks ``artifact`` (a RunDir attribute), naming the one command that makes
    it from what the run holds (:func:`synthdiv.cli._hints.stage_hint`)."""
    from synthdiv.cli._hints import stage_hint
    from synthdiv.core.pipeline import producer_of
    from synthdiv.core.rundir import RunDir
    from synthdiv.errors import StageOrderError

    path = getattr(RunDir(cfg.run_dir), artifact)
    if not path.exists():
        raise StageOrderError(f"{path}: not found; to make it, run {stage_hint(cfg, producer_of(artifact))}{then}")


ClassOpt = Annotated[str | None, typer.Option("--class", help="Only this class (name or wnid).")]
ClipOpt = Annotated[bool, typer.Option("--clip", help="Add the mean pairwise CLIP text distance (loads models.clip).")]


@app.command("disambiguation")
def disambiguation(config: ConfigOpt, set_: SetOpt = None, run_dir: RunDirOpt = None) -> None:
    """Table of class, original name, why it was ambiguous, chosen description, runner-up, margin and scores."""
    from synthdiv.stages.disambiguate.table import disambiguation_table

    cfg = load(config, set_, run_dir)
    _require(cfg, "resolved")
    console().print(disambiguation_table(cfg))


@app.command("prompts")
def prompts(
    config: ConfigOpt,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    class_: ClassOpt = None,
    clip: ClipOpt = False,
) -> None:
    """Per class: counts by kind, distinct-word ratio, sample prompts (and with --clip the CLIP text distance)."""
    from synthdiv.stages.prompts.diversity import diversity_report

    cfg = load(config, set_, run_dir)
    _require(cfg, "prompts")
    console().print(diversity_report(cfg, class_, clip=clip))


@app.command("rounds")
def rounds(config: ConfigOpt, set_: SetOpt = None, run_dir: RunDirOpt = None) -> None:
    """The adaptive rounds in the plan: images, shards, what drove each, and the classes it gave most images to."""
    from rich.table import Table

    from synthdiv.core.rundir import RunDir
    from synthdiv.stages.classes.reader import read_classes
    from synthdiv.stages.plan.reader import round_rows

    cfg = load(config, set_, run_dir)
    _require(cfg, "plan", then=", then `synthdiv adapt` for rounds")
    run = RunDir(cfg.run_dir)
    rows = round_rows(run.plan, [c["name"] for c in read_classes(run.classes)])
    table = Table(title=f"adaptive rounds of {run.root}" if rows else "no adaptive rounds in the plan")
    for column in ("round", "images", "shards", "driven by", "given most"):
        table.add_column(column, justify="right" if column in ("round", "images", "shards") else "left")
    for r in rows:
        table.add_row(str(r["round"]), f"{r['images']:,}", str(r["shards"]), r["driven_by"], r["top"])
    console().print(table)


@app.command("cost")
def cost(config: ConfigOpt, set_: SetOpt = None, run_dir: RunDirOpt = None) -> None:
    """What each variant's accuracy gain cost: synthetic images, device-hours of generation (measured), and the
    top-1 gain over the real-only baseline per 1,000 images and per device-hour, with intervals."""
    from rich.table import Table

    from synthdiv.core.rundir import RunDir
    from synthdiv.stages.report.cost import cost_section
    from synthdiv.stages.report.results import load_results

    cfg = load(config, set_, run_dir)
    _require(cfg, "eval")
    run = RunDir(cfg.run_dir)
    section = cost_section(cfg, run, load_results(run))
    title = (f"gain over {section['baseline']} on {section['main_set']}, in accuracy points" if section["rows"]
             else "no evaluated variant trained on synthetic images against a real-only baseline")
    table = Table(title=title)
    columns = (("model", "variant"), ("images", "images"), ("made", "generated"), ("device", "device"),
               ("device-h", "hours"),
               ("gain", "delta"), ("interval", "delta_ci"), ("per 1k img", "per_k"), ("interval", "per_k_ci"),
               ("per device-h", "per_hour"), ("interval", "per_hour_ci"))
    for header, _ in columns:
        table.add_column(header, justify="left" if header in ("model", "device") else "right")
    for row in section["rows"]:
        table.add_row(*(row[key] for _, key in columns))
    console().print(table)
    if section["llm_requests"]:
        tokens = f" ({section['llm_tokens']} generated tokens)" if section["llm_tokens"] else ""
        console().print(f"LLM requests of disambiguate and prompts: {section['llm_requests']}{tokens}")
    if section["rounds"]:
        rounds = Table(title="adaptive rounds: class-mean top-1 on the round's set, in points")
        columns = (("round", "round"), ("measured on", "measured_on"), ("made", "generated"), ("kept", "kept"),
                   ("device-h", "hours"), ("before", "before"), ("after", "after"), ("gain", "gain"),
                   ("per 1k kept", "per_k"), ("per device-h", "per_hour"))
        for header, _ in columns:
            rounds.add_column(header, justify="left" if header == "measured on" else "right")
        for row in section["rounds"]:
            rounds.add_row(*(row[key] for _, key in columns))
        console().print(rounds)


@app.command("samples")
def samples(
    config: ConfigOpt,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    class_: ClassOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="PNG to write (default: in the run dir).")] = None,
) -> None:
    """Write a contact sheet PNG of generated images."""
    from synthdiv.stages.generate.contact_sheet import contact_sheet

    cfg = load(config, set_, run_dir)
    _require(cfg, "manifest")
    path = contact_sheet(cfg, class_, out)
    typer.echo(str(path))
