"""The report stage: ``report/index.html``, one self-contained page (images inlined) that opens from disk.

It shows the run's provenance (config, versions, models, seeds, cache use), the disambiguation table, prompts by
class and kind with diversity figures, a contact sheet of generated images per class, CLIP score histograms,
training curves and the accuracy table. A banner says so when random embedded models made the images.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from synthdiv.names import printable
from synthdiv.report import collect
from synthdiv.report.plots import curves_png, histogram_png
from synthdiv.run import atomic_write_text

if TYPE_CHECKING:
    from synthdiv.config import RunConfig
    from synthdiv.run import RunDir

logger = logging.getLogger(__name__)

__all__ = ["build_report", "render_report"]


def build_report(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """Stage implementation: write ``report/index.html`` and return what it holds."""
    html, context = render_report(cfg, run)
    atomic_write_text(run.report / "index.html", html)
    logger.info("report: %s", run.report / "index.html")
    return {
        "path": str(run.report / "index.html"),
        "classes_shown": len(context["disambiguation"]),
        "sample_sheets": len(context["samples"]),
        "plots": len(context["score_plots"]) + len(context["train_plots"]),
    }


def render_report(cfg: RunConfig, run: RunDir) -> tuple[str, dict[str, Any]]:
    """The report's HTML and the data it was made from."""
    import jinja2

    from synthdiv.config import dump_config

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
        "disambiguation": collect.disambiguation_section(run),
        "disambiguation_summary": collect.disambiguation_summary(run),
        "prompts": collect.prompts_section(run),
        "samples": _samples(cfg, run),
        "score_plots": _score_plots(cfg, run),
        "score_note": _score_note(cfg),
        "train_plots": _train_plots(run),
        "accuracy": collect.accuracy_section(run),
        "config_text": dump_config(cfg),
    }
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("synthdiv.report", "templates"),
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


def _samples(cfg: RunConfig, run: RunDir) -> list[dict[str, Any]]:
    """The contact sheet (one row per class) written next to the page and inlined into it."""
    if not run.manifest.exists() or cfg.report.samples_per_class == 0:
        return []
    from synthdiv.generate.samples import contact_sheet

    path = contact_sheet(cfg, None, out=run.report / "samples.png")
    from PIL import Image

    with Image.open(path) as img:
        width = img.width
    return [{"class_name": "every class", "count": cfg.report.samples_per_class, "width": width,
             "src": collect.data_uri(path.read_bytes())}]


def _score_plots(cfg: RunConfig, run: RunDir) -> list[str]:
    if not run.scores.exists():
        return []
    import pyarrow.parquet as pq

    scores = pq.read_table(run.scores, columns=["similarity", "margin"])
    sim = scores.column("similarity").to_numpy(zero_copy_only=False)
    margin = scores.column("margin").to_numpy(zero_copy_only=False)
    return [
        collect.data_uri(histogram_png({"all images": sim}, "CLIP similarity to the class description", "cosine",
                                       threshold=cfg.score.min_similarity)),
        collect.data_uri(histogram_png({"all images": margin}, "Margin to the best other class", "cosine difference",
                                       threshold=0.0, threshold_label="own class is best")),
    ]


def _score_note(cfg: RunConfig) -> str:
    if cfg.score.min_similarity is not None:
        return f"Filter: similarity >= {cfg.score.min_similarity:g} (a view; no image is deleted)."
    if cfg.score.keep_quantile is not None:
        return f"Filter: the top {cfg.score.keep_quantile:.0%} of each class (a view; no image is deleted)."
    return "No filter: training uses every generated image."


def _train_plots(run: RunDir) -> list[str]:
    series = collect.metrics_series(run)
    if not series:
        return []
    plots = []
    for metric, title in (("loss", "Training loss"), ("top1", "Validation top-1")):
        lines = {}
        for variant, rows in series.items():
            pts = [(r.get("step", i), r[metric]) for i, r in enumerate(rows) if isinstance(r.get(metric), int | float)]
            if pts:
                lines[variant] = ([p[0] for p in pts], [p[1] for p in pts])
        if lines:
            plots.append(collect.data_uri(curves_png(lines, title, "step", metric)))
    return plots
