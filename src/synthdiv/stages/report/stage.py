"""The report stage: ``report/index.html``, one self-contained page (images inlined) that opens from disk.

It reads as results first: accuracy per variant and test set with the real+syn minus real delta and bootstrap
intervals, top-5, long-tail splits, the classes that gained and lost most and the most confused pairs; training and
validation curves by epoch; sample grids per class and prompt kind; CLIP scores, filter keep rates and image-level
diversity and fidelity per class and kind. Then the run's provenance (config, versions, models, seeds, cache use),
the disambiguation table and the prompts. A banner says so when random embedded models made the images.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from synthdiv.config.loader import dump_config
from synthdiv.core.schemas import PROMPT_KINDS
from synthdiv.stages.report import collect, cost, quality, results, samples
from synthdiv.stages.report.plots import curves_png
from synthdiv.stages.train.reader import read_data_info
from synthdiv.utils.io import atomic_write_text
from synthdiv.utils.names import printable

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["build", "build_report", "render_report"]


def build(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """Stage implementation: write ``report/index.html`` and return what it holds."""
    html, context = render_report(cfg, run)
    atomic_write_text(run.report / "index.html", html)
    logger.info("report: %s (%.0f kB)", run.report / "index.html", len(html.encode()) / 1e3)
    return {
        "path": str(run.report / "index.html"),
        "classes_shown": len(context["disambiguation"]),
        "sample_images": sum(len(k["images"]) for c in context["samples"]["classes"] for k in c["kinds"]),
        "plots": len(context["scores"].get("plots", [])) + len(context["train_plots"]),
        "bytes": len(html.encode()),
    }


def render_report(cfg: RunConfig, run: RunDir) -> tuple[str, dict[str, Any]]:
    """The report's HTML and the data it was made from."""
    import jinja2

    evals = results.load_results(run)
    baseline = results.pick_baseline(cfg, sorted(evals))
    context = {
        "title": run.root.name,
        "run_dir": str(run.root),
        "generated_at": collect.now(),
        "versions": collect.versions(),
        "warnings": collect.warnings_for(cfg),
        "stages": collect.stages_section(cfg),
        "models": collect.models_section(cfg),
        "seed": cfg.seed,
        "cache": _cache_note(run),
        "results": results.results_section(cfg, evals),
        "cost": cost.cost_section(cfg, run, evals),
        "disambiguation": collect.disambiguation_section(run),
        "disambiguation_summary": collect.disambiguation_summary(run),
        "prompts": collect.prompts_section(run),
        "prompt_kinds": PROMPT_KINDS,
        "rounds": collect.rounds_section(run),
        "samples": samples.sample_grids(cfg, run, results.grid_order(evals, baseline)),
        "scores": quality.score_tables(cfg, run),
        "score_note": _score_note(cfg),
        "quality": quality.quality_tables(cfg, run),
        "train_plots": _train_plots(run),
        "config_text": dump_config(cfg),
    }
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("synthdiv.stages.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        finalize=_visible,
    )
    return env.get_template("index.html.j2").render(**context), context


def _visible(value: Any) -> Any:
    """Every printed string with its control characters escaped (``\\x1b``), never raw in the page (autoescape
    then escapes the HTML)."""
    import markupsafe

    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return printable(value, keep="\n\t")
    return value


def _cache_note(run: RunDir) -> str:
    hits = misses = 0
    for stage in ("disambiguate", "prompts"):
        state = run.read_state(stage)
        summary = (state.summary or {}) if state else {}
        hits += int(summary.get("llm_cache_hits", 0) or 0)
        misses += int(summary.get("llm_cache_misses", 0) or 0)
    return f"{hits} hits, {misses} misses" if hits or misses else ""


def _score_note(cfg: RunConfig) -> str:
    notes = []
    if cfg.score.min_similarity is not None:
        notes.append(f"score filter: similarity >= {cfg.score.min_similarity:g}")
    if cfg.score.keep_quantile is not None:
        notes.append(f"score filter: the top {cfg.score.keep_quantile:.0%} of each class")
    for name in cfg.train.variant_names():
        if filters := cfg.train.variant(name).filters:
            notes.append(f"{name} trains on the images kept by {' and '.join(filters)}")
    if not notes:
        return "No filter: training uses every generated image."
    return "Filters are views; no image is deleted. " + "; ".join(notes) + "."


def _epoch_length(run: RunDir, variant: str) -> int | None:
    value = (read_data_info(run, variant) or {}).get("steps_per_epoch")
    return int(value) if isinstance(value, int) and value > 0 else None


def _train_plots(run: RunDir) -> list[str]:
    """Training loss, validation top-1 and validation loss of every variant against epochs (each row's ``epoch``:
    steps done / steps per epoch, the same for training and validation rows), so arms with different step counts
    line up; a run written before rows had an epoch takes its epoch length from ``data.json``, else steps."""
    series = collect.metrics_series(run)
    if not series:
        return []
    xs: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    by_epoch = True
    for variant, rows in series.items():
        rows = [r for r in rows if isinstance(r.get("step"), int | float)]
        if all(isinstance(r.get("epoch"), int | float) for r in rows):
            xs[variant] = [(r["epoch"], r) for r in rows]
            continue
        spe = _epoch_length(run, variant)
        by_epoch &= spe is not None
        xs[variant] = [(r["step"] / spe if spe else r["step"], r) for r in rows]
    plots = []
    for metric, split, title, scale in (("loss", None, "Training loss", 1), ("val_top1", "val", "Validation top-1",
                                        100), ("val_loss", "val", "Validation loss", 1)):
        lines = {}
        for variant, pts in xs.items():
            got = [(x, r[metric] * scale) for x, r in pts
                   if r.get("split") == split and isinstance(r.get(metric), int | float)]
            if got:
                lines[variant] = ([p[0] for p in got], [p[1] for p in got])
        if lines:
            ylabel = "top-1 (%)" if metric == "val_top1" else "cross-entropy"
            plots.append(collect.data_uri(curves_png(lines, title, "epoch" if by_epoch else "step", ylabel)))
    return plots


build_report = build  # the name callers used in synthdiv 0.1
