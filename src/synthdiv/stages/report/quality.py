"""What the synthetic images are worth, for the report: CLIP scores and filter keep rates per class and prompt kind,
and the image-level diversity and fidelity metrics of ``quality.json``.

Per-class tables list the classes CLIP doubts most first and are cut at ``report.max_rows`` (the page says so);
per-kind tables cover every image. Artifacts are read through :func:`synthdiv.stages.report.collect.artifact` (damage is
one line naming the file); a ``quality.json`` or ``filters/*.json`` that cannot be read is left out with a warning.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.core.schemas import PROMPT_KINDS
from synthdiv.errors import SynthdivError
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.prompts.reader import prompt_kinds
from synthdiv.stages.report.collect import artifact, class_names, data_uri
from synthdiv.stages.report.plots import histogram_png
from synthdiv.stages.score.reader import filter_masks, read_scores

if TYPE_CHECKING:
    import pyarrow as pa

    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["score_tables", "quality_tables", "image_kinds", "kind_order", "filter_names"]

QUALITY_KEYS = ("vendi", "mean_distance", "frechet", "kid", "precision", "recall")


def kind_order(kinds: Any) -> list[str]:
    """The prompt kinds of ``kinds`` in PROMPT_KINDS order, then any others by name."""
    return sorted({str(k) for k in kinds}, key=lambda k: (PROMPT_KINDS.index(k) if k in PROMPT_KINDS else 99, k))


def image_kinds(run: RunDir, manifest: pa.Table) -> np.ndarray:
    """The prompt kind of each manifest row (``unknown`` when its prompt is not in prompts.parquet)."""
    with artifact(run.prompts, "prompts"):
        return np.array(prompt_kinds(run, manifest.column("prompt_id")), dtype=object)


def filter_names(cfg: RunConfig, run: RunDir) -> list[str]:
    """Every filter a variant trains with or a ``filters/*.json`` record names, in first-seen order."""
    names = [n for v in cfg.train.variant_names() for n in cfg.train.variant(v).filters]
    for path in sorted((run.root / "filters").glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            found = record.get("filters") or {}
            if not isinstance(found, dict) or not all(isinstance(n, str) for n in found):
                raise ValueError("'filters' is not a mapping of names")
            names += list(found)
        except (OSError, ValueError, AttributeError, RecursionError):
            logger.warning("report: cannot read %s; its filters are left out", path)
    return list(dict.fromkeys(names))


def _masks(cfg: RunConfig, run: RunDir, manifest: pa.Table) -> dict[str, np.ndarray]:
    names = filter_names(cfg, run)
    try:
        with artifact(run.scores, "score"):
            return filter_masks(cfg, run, manifest, names)
    except SynthdivError:
        masks = {}
        for name in names:  # one unusable filter (its scores missing or damaged) leaves the others shown
            try:
                with artifact(run.scores, "score"):
                    masks.update(filter_masks(cfg, run, manifest, [name]))
            except SynthdivError as exc:
                logger.warning("report: filter %s: %s", name, exc)
        return masks


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    return float(values.mean()) if len(values) else None


def _f(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.0f}%"


def _group(sel: np.ndarray, cols: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {"images": int(sel.sum())}
    if "similarity" in cols:
        out["similarity"] = _f(_mean(cols["similarity"][sel]))
        out["top1"] = _pct(_mean((cols["class_rank"][sel] == 0).astype(float)) if "class_rank" in cols else None)
    out["prob"] = _f(_mean(cols["prob"][sel])) if "prob" in cols else ""
    out["keep"] = [_pct(_mean(m[sel].astype(float))) for m in masks.values()]
    return out


def score_tables(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """CLIP score and keep-rate tables per prompt kind and per class, and per-kind histograms (as PNG data URIs)."""
    if not run.scores.exists() or not run.manifest.exists():
        return {}

    with artifact(run.manifest, "generate"):
        manifest = read_manifest(run)
        labels = manifest.column("class").to_numpy()
        ids = manifest.column("image_id").to_pylist()
    if manifest.num_rows == 0:
        return {}
    cols: dict[str, np.ndarray] = {}
    with artifact(run.scores, "score"):
        scores = read_scores(run)
        pos = {k: i for i, k in enumerate(scores.column("image_id").to_pylist())}
        idx = np.array([pos.get(k, -1) for k in ids], dtype=np.int64)
        for name in ("similarity", "prob", "class_rank"):
            if name in scores.column_names:
                col = scores.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
                cols[name] = np.where(idx >= 0, col[np.maximum(idx, 0)], np.nan) if len(col) else np.full(
                    len(idx), np.nan)
    kinds = image_kinds(run, manifest)
    masks = _masks(cfg, run, manifest)
    names = class_names(run)
    kind_rows = [{"kind": k, **_group(kinds == k, cols, masks)} for k in kind_order(kinds)]
    gens = np.asarray(manifest.column("generator_id").to_pylist() if "generator_id" in manifest.column_names
                      else [None] * manifest.num_rows, dtype=object)
    generator_rows = [{"generator": g, **_group(gens == g, cols, masks)} for g in sorted(set(gens.tolist()))]
    order_by = cols.get("prob", cols.get("similarity"))
    classes = [int(c) for c in np.unique(labels)]
    if order_by is not None:  # the classes CLIP doubts most first
        means = {c: _mean(order_by[labels == c]) for c in classes}
        classes.sort(key=lambda c: (means[c] if means[c] is not None else np.inf, c))
    class_rows = []
    for c in classes[: cfg.report.max_rows]:
        sel = labels == c
        row = {"name": names.get(c, str(c)), **_group(sel, cols, masks)}
        row["by_kind"] = [_f(_mean(order_by[sel & (kinds == k)])) if order_by is not None else ""
                          for k in kind_order(kinds)]
        class_rows.append(row)
    return {"filters": list(masks), "kinds": kind_rows, "kind_names": kind_order(kinds), "classes": class_rows,
            "generators": generator_rows if len(generator_rows) > 1 else [],  # a mixture: rows per generator
            "by_kind_metric": "prob" if "prob" in cols else "similarity",
            "cut": _cut_note(len(class_rows), len(classes), "mean CLIP probability" if "prob" in cols else
                             "mean CLIP similarity"),
            "plots": _histograms(cfg, cols, kinds, len(names))}


def _cut_note(shown: int, total: int, by: str) -> str:
    return f"lowest {by} first; showing {shown} of {total} classes" + (
        " (the rest are in scores.parquet and quality.json)" if shown < total else "")


def _histograms(cfg: RunConfig, cols: dict[str, np.ndarray], kinds: np.ndarray, num_classes: int) -> list[str]:
    plots = []
    order = kind_order(kinds)
    if "similarity" in cols:
        sim = {k: cols["similarity"][(kinds == k) & ~np.isnan(cols["similarity"])] for k in order}
        plots.append(data_uri(histogram_png(sim, "CLIP similarity to the class text, by kind",
                                            "cosine", threshold=cfg.score.min_similarity)))
    if "prob" in cols:
        prob = {k: cols["prob"][(kinds == k) & ~np.isnan(cols["prob"])] for k in order}
        plots.append(data_uri(histogram_png(prob, "CLIP own-class probability, by kind", "probability",
                                            threshold=1 / num_classes if num_classes else None,
                                            threshold_label="1/C")))
    return plots


def quality_tables(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """``quality.json`` per prompt kind (mean over classes) and per class (its ``all`` group, cut at max_rows)."""
    path = run.root / "quality.json"
    if not path.exists():
        return {}
    q = _read_quality(path)
    if q is None:
        return {}
    per_class = q["classes"]
    names = class_names(run)
    keys = [k for k in QUALITY_KEYS if any(k in (e.get("all") or {}) for e in per_class.values())]
    groups = kind_order(g for e in per_class.values() for g in e if isinstance(e[g], dict) and g != "all")
    kind_rows = []
    for g in ["all", *groups]:
        vals = {k: [e[g][k] for e in per_class.values() if isinstance(e.get(g), dict) and e[g].get(k) is not None]
                for k in keys}
        n = sum(int(e[g].get("images") or 0) for e in per_class.values() if isinstance(e.get(g), dict))
        means = [_f(float(np.mean(v))) if v else "" for v in vals.values()]
        kind_rows.append({"kind": g, "images": n, "cells": means})
    order = sorted(per_class, key=lambda c: ((per_class[c].get("all") or {}).get("vendi") or np.inf, int(c)))
    class_rows = [{"name": names.get(int(c), c), "images": (per_class[c].get("all") or {}).get("images", ""),
                   "duplicates": per_class[c].get("duplicates", ""), "memorized": per_class[c].get("memorized", ""),
                   "cells": [_f((per_class[c].get("all") or {}).get(k)) for k in keys]}
                  for c in order[: cfg.report.max_rows]]
    return {"metrics": keys, "kinds": kind_rows, "classes": class_rows, "model": q.get("model", ""),
            "cut": f"lowest Vendi score (least diverse) first; showing {len(class_rows)} of {len(per_class)} classes"}


def _read_quality(path: Any) -> dict[str, Any] | None:
    """``quality.json`` as the score stage writes it, or None (with a warning) when it cannot be read or its shape is
    not that: ``{"classes": {class: {"duplicates": n, "memorized": n, "all" | <kind>: {metric: number}}}}``."""
    try:
        q = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(q, dict) or not isinstance(q.get("classes") or {}, dict):
            raise ValueError("not a mapping with a 'classes' mapping")
        q["classes"] = q.get("classes") or {}
        for cls, entry in q["classes"].items():
            _check_class(cls, entry)
    except (OSError, ValueError, RecursionError) as exc:
        logger.warning("report: cannot read %s (%s); its tables are left out", path, str(exc).splitlines()[0]
                       if str(exc) else type(exc).__name__)
        return None
    return q


def _check_class(cls: str, entry: Any) -> None:
    """Raise ValueError where one class's entry of ``quality.json`` is not of the shape the score stage writes."""

    def number(v: Any) -> bool:
        return v is None or (isinstance(v, int | float) and not isinstance(v, bool))

    int(cls)
    if not isinstance(entry, dict):
        raise ValueError(f"class {cls} is not a mapping")
    for key, group in entry.items():
        if key in ("duplicates", "memorized"):
            if not number(group):
                raise ValueError(f"class {cls}: {key} is not a number")
        elif not isinstance(group, dict) or not all(number(group.get(k)) for k in (*QUALITY_KEYS, "images")):
            raise ValueError(f"class {cls}: {key} is not a mapping of metrics")
