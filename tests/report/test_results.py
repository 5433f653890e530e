"""The report's results on hand-made inputs: the delta table's order, the baseline, the grid's classes, and tables
that stay bounded at 1,000 classes."""

from __future__ import annotations

import time

import numpy as np

from synthdiv.stages.report.results import EvalResult, class_deltas, grid_order, pick_baseline, results_section
from synthdiv.stages.report.samples import pick_classes


def test_class_deltas_put_the_largest_gain_first():
    base = {"per_class": {"a": 0.5, "b": 0.5, "c": 0.9, "d": 0.2, "e": None}}
    variant = {"per_class": {"a": 0.7, "b": 0.4, "c": 0.9, "d": 0.4, "e": 1.0}, "per_class_images": {"a": 10}}
    rows = class_deltas(variant, base)
    assert [r["class"] for r in rows] == ["a", "d", "c", "b"]  # ties (a, d: +0.2) by name; e has no baseline
    assert rows[0]["images"] == 10 and round(rows[-1]["delta"], 6) == -0.1


def test_the_baseline_is_the_real_only_variant(make_config):
    cfg = make_config(train={"variants": {"syn": {}, "only-real": {"synthetic_fraction": 0}}})
    assert pick_baseline(cfg, ["only-real", "syn"]) == "only-real"
    assert pick_baseline(cfg, ["syn"]) is None
    cfg = make_config(train={"variants": {"syn": {}, "b": {}}}, report={"baseline": "b"})
    assert pick_baseline(cfg, ["b", "syn"]) == "b"


def test_grid_classes_come_from_gains_and_losses_then_a_seeded_sample():
    assert pick_classes([7, 2, 99], list(range(10)), 4, seed=0)[:2] == [7, 2]  # 99 has no images
    sample = pick_classes([], list(range(10)), 4, seed=0)
    assert sample == sorted(sample) and len(set(sample)) == 4 and sample == pick_classes([], list(range(10)), 4, 0)
    results = {v: {"test": EvalResult(v, "test", {"top1": 0.5, "per_class": pc})} for v, pc in (
        ("real", {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.5}), ("real+syn", {"a": 0.9, "b": 0.1, "c": 0.6, "d": 0.5}))}
    assert grid_order(results, "real") == ["a", "b", "c"]  # gain, loss, gain, ...


def _thousand_classes(rng: np.random.Generator) -> dict[str, dict[str, EvalResult]]:
    labels = np.repeat(np.arange(1000), 50)
    out = {}
    for variant, p in (("real", 0.6), ("real+syn", 0.63)):
        top1 = np.where(rng.random(len(labels)) < p, labels, rng.integers(0, 1000, len(labels)))
        hits = top1 == labels
        per_class = {f"c{c}": float(hits[labels == c].mean()) for c in range(1000)}
        report = {"variant": variant, "set": "test", "top1": float(hits.mean()), "top5": 0.9, "images": len(labels),
                  "per_class": per_class}
        out[variant] = {"test": EvalResult(variant, "test", report, labels, top1)}
    return out


def test_results_stay_bounded_and_quick_at_1000_classes(make_config):
    cfg = make_config(train={"variants": {"real": {"synthetic_fraction": 0}, "real+syn": {}}},
                      report={"top_classes": 10})
    results = _thousand_classes(np.random.default_rng(0))
    t0 = time.process_time()  # this process's CPU time: other processes on a shared machine do not count
    section = results_section(cfg, results)
    assert time.process_time() - t0 < 5
    (block,) = section["per_class"]
    assert len(block["gains"]) == len(block["losses"]) == 10 and block["classes"] == 1000
    assert all(len(c["pairs"]) <= 10 for c in section["confused"])
    syn = section["sets"][0]["rows"][1]
    lo, hi = (float(v) for v in syn["delta_ci"].split(" to "))
    assert lo < float(syn["delta"]) < hi and syn["sign"] == "ok"  # +3 points over 50,000 images is clear
