"""The results of a run for the report: accuracy with its real+syn minus real delta and bootstrap intervals, top-5,
long-tail splits, the classes that gained and lost most, and the most confused class pairs.

Everything comes from ``eval/<variant>/<set>.json`` and, where the evaluate stage kept them, the predictions in
``eval/<variant>/<set>.npz`` (without them the intervals and confusions read from the JSON, or stay blank). A result
that cannot be read, or whose fields are not of the types the evaluate stage writes, is left out with a warning (as
a set that was not evaluated); damaged predictions leave its intervals blank.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.metrics.accuracy import bootstrap_ci, paired_delta_ci
from synthdiv.stages.evaluate.reader import read_predictions, read_result

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["EvalResult", "load_results", "pick_baseline", "results_section", "class_deltas", "main_set",
           "grid_order", "top1_delta", "set_order"]


@dataclass
class EvalResult:
    """One (variant, set): its JSON report and, when kept, its per-image hits and top-1 predictions."""

    variant: str
    set: str
    report: dict[str, Any]
    labels: np.ndarray | None = None
    top1: np.ndarray | None = None

    @property
    def hits(self) -> np.ndarray | None:
        return None if self.labels is None or self.top1 is None else self.top1 == self.labels


def _top1(result: dict[str, Any]) -> float | None:
    for key in ("top1", "top1_acc", "accuracy", "acc1"):
        value = result.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def load_results(run: RunDir) -> dict[str, dict[str, EvalResult]]:
    """``{variant: {set: EvalResult}}`` of every readable ``eval/**/*.json`` that holds a top-1."""
    out: dict[str, dict[str, EvalResult]] = {}
    if not run.eval.exists():
        return out
    for path in sorted(run.eval.rglob("*.json")):
        report = read_result(path)
        if report is None:
            logger.warning("report: cannot read %s", path)
            continue
        if _top1(report) is None:
            continue
        problem = _malformed(report)
        if problem:
            logger.warning("report: %s: %s; left out", path, problem)
            continue
        variant = str(report.get("variant") or (path.parent.name if path.parent != run.eval else "model"))
        name = str(report.get("set") or path.stem)
        result = EvalResult(variant, name, report)
        preds = read_predictions(path.with_suffix(".npz"))
        if preds is not None:
            topk, labels = preds
            if len(labels) and (not isinstance(report.get("images"), int) or report["images"] == len(labels)):
                result.labels, result.top1 = labels, topk[:, 0]
        out.setdefault(variant, {})[name] = result
    return out


_NUMBER = (int, float)


def _malformed(report: dict[str, Any]) -> str | None:
    """What in an eval result is not of the type the evaluate stage writes, or None when all is."""

    def number(v: Any) -> bool:
        return v is None or (isinstance(v, _NUMBER) and not isinstance(v, bool))

    checks = [
        ("top5", number(report.get("top5"))),
        ("images", report.get("images") is None or (isinstance(report["images"], int) and report["images"] >= 0)),
        ("variant", report.get("variant") is None or isinstance(report["variant"], str)),
        ("set", report.get("set") is None or isinstance(report["set"], str)),
        ("per_class", isinstance(report.get("per_class") or {}, dict)
         and all(number(v) for v in (report.get("per_class") or {}).values())),
        ("per_class_images", isinstance(report.get("per_class_images") or {}, dict)),
        ("long_tail", isinstance(report.get("long_tail") or {}, dict)
         and all(isinstance(v, dict) and number(v.get("top1")) for v in (report.get("long_tail") or {}).values())),
        ("confused", isinstance(report.get("confused") or [], list)
         and all(isinstance(p, dict) and number(p.get("share")) for p in report.get("confused") or [])),
    ]
    bad = [name for name, ok in checks if not ok]
    return f"'{bad[0]}' is not what `synthdiv evaluate` writes" if bad else None


def pick_baseline(cfg: RunConfig, variants: list[str]) -> str | None:
    """``report.baseline``, else the first variant trained on real images only, else one named ``real``."""
    if cfg.report.baseline is not None:
        return cfg.report.baseline if cfg.report.baseline in variants else None
    for name in cfg.train.variant_names():
        if name in variants and cfg.train.variant(name).synthetic_fraction == 0:
            return name
    return "real" if "real" in variants else None


def main_set(results: dict[str, dict[str, EvalResult]]) -> str | None:
    """The set per-class tables are about: ``test`` when present, else the first set by name."""
    names = sorted({s for sets in results.values() for s in sets})
    return "test" if "test" in names else (names[0] if names else None)


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def _interval(ci: tuple[float, float] | None, signed: bool = False) -> str:
    return f"{_pct(ci[0], signed)} to {_pct(ci[1], signed)}" if ci else ""


def _same_images(a: EvalResult, b: EvalResult) -> bool:
    return a.labels is not None and b.labels is not None and np.array_equal(a.labels, b.labels)


def _row(cfg: RunConfig, res: EvalResult, base: EvalResult | None, seed: int) -> dict[str, Any]:
    n, level = cfg.report.bootstrap, cfg.report.ci_level
    top1 = _top1(res.report)
    row: dict[str, Any] = {"variant": res.variant, "top1": _pct(top1), "top5": _pct(res.report.get("top5")),
                           "images": res.report.get("images", ""), "ci": "", "delta": "", "delta_ci": "",
                           "sign": "", "is_baseline": base is res}
    if res.hits is not None:
        row["ci"] = _interval(bootstrap_ci(res.hits, n, level, seed))
    if base is None or base is res:
        return row
    delta, ci = top1_delta(cfg, res, base, seed)
    if delta is None:
        return row
    row["delta"] = _pct(delta, signed=True)
    if ci is not None:
        row["delta_ci"] = _interval(ci, signed=True)
        row["sign"] = "ok" if ci[0] > 0 else "bad" if ci[1] < 0 else ""
    return row


def top1_delta(cfg: RunConfig, res: EvalResult, base: EvalResult, seed: int
               ) -> tuple[float | None, tuple[float, float] | None]:
    """``res`` minus ``base`` in top-1 (a fraction), and its paired-bootstrap interval where both were evaluated on
    the same images (else None); (None, None) where either lacks a top-1."""
    top1, b1 = _top1(res.report), _top1(base.report)
    if top1 is None or b1 is None:
        return None, None
    if not _same_images(res, base):
        return top1 - b1, None
    ci = paired_delta_ci(res.hits, base.hits, cfg.report.bootstrap, cfg.report.ci_level, seed)  # type: ignore[arg-type]
    return top1 - b1, ci


def set_order(results: dict[str, dict[str, EvalResult]]) -> list[str]:
    """The evaluation sets in the order the report shows them (the in-domain test set first); set ``i`` draws its
    bootstrap with seed ``cfg.seed + i``."""
    return sorted({s for v in results.values() for s in v}, key=lambda s: (s != "test", not s.startswith("test"), s))


def results_section(cfg: RunConfig, results: dict[str, dict[str, EvalResult]]) -> dict[str, Any]:
    """The accuracy table (one block per set, one row per variant), long-tail splits, per-class deltas, confusions."""
    variants = sorted(results)
    baseline = pick_baseline(cfg, variants)
    sets = set_order(results)
    blocks = []
    for i, name in enumerate(sets):
        base = results.get(baseline, {}).get(name) if baseline else None
        rows = [_row(cfg, results[v][name], base, cfg.seed + i) for v in variants if name in results[v]]
        blocks.append({"set": name, "rows": rows})
    primary = main_set(results)
    return {
        "sets": blocks,
        "baseline": baseline or "",
        "main_set": primary or "",
        "level": f"{cfg.report.ci_level:.0%}",
        "resamples": cfg.report.bootstrap,
        "long_tail": _long_tail(results, primary, baseline),
        "per_class": [d for v in variants if v != baseline and (d := _deltas_block(cfg, results, v, primary,
                                                                                   baseline))],
        "confused": [c for v in variants if (c := _confused_block(cfg, results[v].get(primary or "")))],
    }


def _long_tail(results: dict[str, dict[str, EvalResult]], name: str | None, baseline: str | None) -> list[dict]:
    rows = []
    base = results.get(baseline or "", {}).get(name or "")
    base_lt = (base.report.get("long_tail") or {}) if base else {}
    for variant in sorted(results):
        res = results[variant].get(name or "")
        lt = (res.report.get("long_tail") or {}) if res else {}
        if not lt:
            continue
        cells = []
        for split in ("many", "medium", "few"):
            entry, ref = lt.get(split) or {}, base_lt.get(split) or {}
            delta = ""
            if variant != baseline and entry.get("top1") is not None and ref.get("top1") is not None:
                delta = _pct(entry["top1"] - ref["top1"], signed=True)
            cells.append({"top1": _pct(entry.get("top1")), "classes": entry.get("classes", 0), "delta": delta})
        rows.append({"variant": variant, "cells": cells})
    return rows


def class_deltas(variant: dict[str, Any], base: dict[str, Any]) -> list[dict[str, Any]]:
    """Per class with an accuracy in both reports: ``{class, base, acc, delta, images}``, largest gain first (ties
    by class name)."""
    pv, pb = variant.get("per_class") or {}, base.get("per_class") or {}
    images = variant.get("per_class_images") or {}
    rows = [{"class": c, "base": pb[c], "acc": a, "delta": a - pb[c], "images": images.get(c, "")}
            for c, a in pv.items() if a is not None and pb.get(c) is not None]
    return sorted(rows, key=lambda r: (-round(r["delta"], 9), r["class"]))  # equal deltas tie despite float noise


def _deltas_block(cfg: RunConfig, results: dict[str, dict[str, EvalResult]], variant: str, name: str | None,
                  baseline: str | None) -> dict[str, Any] | None:
    res, base = results[variant].get(name or ""), results.get(baseline or "", {}).get(name or "")
    if res is None or base is None:
        return None
    rows = class_deltas(res.report, base.report)
    if not rows:
        return None
    k = cfg.report.top_classes

    def fmt(r: dict[str, Any]) -> dict[str, Any]:
        return {"class": r["class"], "base": _pct(r["base"]), "acc": _pct(r["acc"]),
                "delta": _pct(r["delta"], signed=True), "images": r["images"]}

    gains = [fmt(r) for r in rows[:k] if r["delta"] > 0]
    losses = [fmt(r) for r in reversed(rows[-k:]) if r["delta"] < 0]
    changed = sum(r["delta"] != 0 for r in rows)
    return {"variant": variant, "gains": gains, "losses": losses, "classes": len(rows), "changed": changed,
            "gained": sum(r["delta"] > 0 for r in rows), "lost": sum(r["delta"] < 0 for r in rows)}


def _confused_block(cfg: RunConfig, res: EvalResult | None) -> dict[str, Any] | None:
    if res is None:
        return None
    pairs = list(res.report.get("confused") or [])[:cfg.report.top_classes]  # evaluate's, most frequent first
    if not pairs:
        return None
    return {"variant": res.variant, "set": res.set,
            "pairs": [{"true": p.get("true_name", p.get("true")), "pred": p.get("pred_name", p.get("pred")),
                       "count": p.get("count", ""), "share": _pct(p.get("share"))} for p in pairs]}


def grid_order(results: dict[str, dict[str, EvalResult]], baseline: str | None) -> list[str]:
    """Class names that gained and lost most (alternating, of the first compared variant), for the sample grids."""
    name = main_set(results)
    base = results.get(baseline or "", {}).get(name or "")
    for variant in sorted(results):
        res = results[variant].get(name or "")
        if variant == baseline or res is None or base is None:
            continue
        rows = class_deltas(res.report, base.report)
        gains = [r["class"] for r in rows if r["delta"] > 0]
        losses = [r["class"] for r in reversed(rows) if r["delta"] < 0]
        out: list[str] = []
        for pair in zip(gains, losses, strict=False):
            out += pair
        longer = gains if len(gains) > len(losses) else losses
        return out + longer[len(out) // 2:]
    return []
