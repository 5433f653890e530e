"""The dataset card, ``README.md``: the Hugging Face YAML header (license, task, size, the WebDataset config that the
Hub viewer and ``datasets.load_dataset(folder)`` read) and a body a reader needs (method, classes and how each
ambiguous name was settled, images per class and prompt kind, scores, filters, accuracy, limits, how to re-create).
Rendered from ``templates/card.md.j2`` with jinja2."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import yaml

from synthdiv.core.schemas import PROMPT_KINDS
from synthdiv.publish.tally import Tally
from synthdiv.stages.report.results import load_results
from synthdiv.utils.humanize import human_bytes

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

__all__ = ["render_card", "card_header", "size_category", "table_cell"]

_TEMPLATES = Path(__file__).parent / "templates"
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))


def size_category(images: int) -> str:
    """The Hub's ``size_categories`` value for ``images`` rows."""
    return next((label for bound, label in _SIZES if images < bound), "100M<n<1B")


def table_cell(value: Any) -> str:
    """``value`` as one cell of a Markdown table: a ``|`` would end the cell and a line break the row."""
    return " ".join(str(value).splitlines()).replace("|", "\\|")


def card_header(cfg: RunConfig, name: str, images: int) -> dict[str, Any]:
    """The YAML header: what the Hub reads (license, task, size, tags, the WebDataset files)."""
    p = cfg.publish
    header: dict[str, Any] = {"license": p.license}
    if p.license == "other":
        header["license_name"] = p.license_name or "generator-and-llm-terms"
        if p.license_link:
            header["license_link"] = p.license_link
    header |= {"pretty_name": name, "task_categories": ["image-classification"],
               "size_categories": [size_category(images)], "tags": ["synthetic", "synthdiv", "webdataset"],
               "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.tar"}]}]}
    return header


def _license_text(cfg: RunConfig) -> str:
    p = cfg.publish
    stated = [f"generator: {p.generator_license}" if p.generator_license else "generator: not stated",
              f"LLM: {p.llm_license}" if p.llm_license else "LLM: not stated"]
    text = f"License: `{p.license}`" + (f" ({p.license_name})" if p.license_name else "") + ". "
    text += "The images fall under the terms of the model that generated them and the prompts under those of the LLM "
    text += f"that wrote them ({'; '.join(stated)}). "
    if p.license == "other":
        text += ("No license was stated in the config's `publish.license`; check the generator's and the LLM's "
                 "licenses before redistributing or training on these images.")
    return text


def _settled(row: dict[str, Any]) -> str:
    if row.get("ambiguity"):
        why = "; ".join(row["ambiguity"].get("reasons") or row["ambiguity"].get("kinds") or [])
        return f"ambiguous ({why}); {row.get('chosen_by') or row.get('status') or 'settled'}"
    return row.get("chosen_by") or ("not ambiguous" if row.get("status") in (None, "ok") else str(row["status"]))


def _results(run: RunDir) -> list[dict[str, Any]]:
    rows = []
    for variant, sets in load_results(run).items():
        for name, result in sets.items():
            report = result.report
            pct = lambda v: f"{100 * v:.1f}" if isinstance(v, int | float) else ""  # noqa: E731
            rows.append({"variant": variant, "set": name, "top1": pct(report.get("top1")),
                         "top5": pct(report.get("top5")), "images": report.get("images", "")})
    return rows


def render_card(cfg: RunConfig, run: RunDir, name: str, classes: list[dict[str, Any]], tally: Tally,
                filters: dict[str, str], view_text: str, limits: list[str]) -> str:
    """The card's Markdown (header and body), from the run and what the metadata counted."""
    kinds = [k for k in PROMPT_KINDS if any(kk == k for _, kk in tally.per_class_kind)]
    kinds += sorted({k for _, k in tally.per_class_kind} - set(kinds))
    per_class = {c["index"]: sum(n for (label, _), n in tally.per_class_kind.items() if label == c["index"])
                 for c in classes}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=False, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["cell"] = table_cell
    header = yaml.safe_dump(card_header(cfg, name, tally.images), sort_keys=False, allow_unicode=True).strip()
    context = {
        "header": header, "name": name, "images": tally.images, "marked": tally.marked, "shards": tally.shards,
        "bytes_text": human_bytes(tally.bytes), "view_text": view_text, "load_path": name,
        "description": cfg.publish.description or f"{tally.images} synthetic images of {len(classes)} classes.",
        "generators": tally.generators.most_common(),
        "classes": [{**c, "settled": _settled(c), "images": per_class.get(c["index"], 0),
                     "description": c.get("description", c.get("name"))} for c in classes],
        "kinds": kinds,
        "kind_rows": [{"name": c["name"], "counts": [tally.per_class_kind.get((c["index"], k), 0) for k in kinds]}
                      for c in classes],
        "scores": tally.score_rows(),
        "filters": [{"name": n, "kept": tally.flags.get(f"keep_{n}", 0), "definition": d} for n, d in filters.items()],
        "train_view": tally.flags.get("in_train_view", 0),
        "results": _results(run), "license_text": _license_text(cfg), "limits": limits,
        "version": metadata.version("synthdiv"),
    }
    return env.get_template("card.md.j2").render(**context)
