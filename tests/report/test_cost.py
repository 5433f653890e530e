"""What each gain cost (stages/report/cost.py): the images a variant trained on, the device time that made them as the
generate stage measured it, and the gain per thousand images and per device-hour with its interval scaled alike."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthdiv.cli.app import main
from synthdiv.core.rundir import RunDir
from synthdiv.metrics.accuracy import paired_delta_ci
from synthdiv.stages.report.cost import cost_section, generation_rate, llm_requests, variant_costs
from synthdiv.stages.report.results import load_results
from synthdiv.stages.report.stage import render_report
from synthdiv.utils.io import atomic_write_json

N = 200
VARIANTS = {"real": {"synthetic_fraction": 0, "aux_norm": "none"}, "real+syn": {}, "syn-heavy": {}}


def _finished(run: RunDir, stage: str, summary: dict) -> None:
    run.finish(run.begin(stage, "fp"), summary)


def _evaluated(run: RunDir, variant: str, right: int) -> None:
    """``right`` of N test images correct, the same N images for every variant (so intervals are paired)."""
    labels = np.arange(N) % 4
    top1 = np.where(np.arange(N) < right, labels, (labels + 1) % 4)
    folder = run.eval / variant
    atomic_write_json(folder / "test.json", {"variant": variant, "set": "test", "top1": right / N, "images": N})
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "test.npz", topk=top1[:, None].astype(np.int64), labels=labels.astype(np.int64))


@pytest.fixture
def costed(make_config):
    cfg = make_config(train={"variants": VARIANTS})
    run = RunDir(cfg.run_dir)
    _finished(run, "generate", {"device": "cuda:0", "seconds": 36.0, "made_images": 72, "world_size": 4})
    _finished(run, "disambiguate", {"llm_requests": 20})
    _finished(run, "prompts", {"llm_requests": 33})
    for variant, images in (("real", 0), ("real+syn", 1000), ("syn-heavy", 4000)):
        atomic_write_json(run.train / variant / "data.json", {"synthetic_images": images, "real_images": 400})
    _evaluated(run, "real", 100)
    _evaluated(run, "real+syn", 120)
    _evaluated(run, "syn-heavy", 110)
    return cfg, run


def test_the_gain_per_thousand_images_and_per_device_hour_with_intervals_scaled_alike(costed):
    cfg, run = costed
    results = load_results(run)
    costs = {c.variant: c for c in variant_costs(cfg, run, results)}
    assert sorted(costs) == ["real+syn", "syn-heavy"]  # the real-only baseline costs no synthetic image
    hits = {v: results[v]["test"].hits for v in results}
    for variant, images, right in (("real+syn", 1000, 120), ("syn-heavy", 4000, 110)):
        cost = costs[variant]
        hours = images * (36.0 / 72) / 3600  # one worker's measured rate; world size does not enter
        ci = paired_delta_ci(hits[variant], hits["real"], cfg.report.bootstrap, cfg.report.ci_level, cfg.seed)
        assert cost.images == images and cost.device == "cuda:0"
        assert cost.device_hours == pytest.approx(hours)
        assert cost.delta == pytest.approx((right - 100) / N)
        assert cost.delta_ci == pytest.approx(ci)  # the accuracy table's interval, same seed
        per_k, per_k_ci = cost.per_thousand_images()
        assert per_k == pytest.approx(cost.delta / (images / 1000))
        assert per_k_ci == pytest.approx((ci[0] / (images / 1000), ci[1] / (images / 1000)))
        per_h, per_h_ci = cost.per_device_hour()
        assert per_h == pytest.approx(cost.delta / hours)
        assert per_h_ci == pytest.approx((ci[0] / hours, ci[1] / hours))
    assert costs["syn-heavy"].per_thousand_images()[0] < costs["real+syn"].per_thousand_images()[0]


def test_no_measured_rate_leaves_the_time_blank_and_keeps_the_gain_per_image(costed):
    cfg, run = costed
    _finished(run, "generate", {"device": "cuda:0", "seconds": 0.2, "made_images": 0})  # a rerun that made nothing
    assert generation_rate(run) is None
    cost = {c.variant: c for c in variant_costs(cfg, run, load_results(run))}["real+syn"]
    assert cost.device_hours is None and cost.per_device_hour() == (None, None)
    assert cost.per_thousand_images()[0] == pytest.approx(0.1)
    row = cost_section(cfg, run, load_results(run))["rows"][0]
    assert (row["hours"], row["per_hour"], row["per_k"]) == ("", "", "+10.000")


def test_cpu_time_is_named_cpu_and_llm_requests_are_summed(costed):
    cfg, run = costed
    _finished(run, "generate", {"device": "cpu", "seconds": 8.0, "made_images": 4})
    assert generation_rate(run) == ("cpu", 2.0)
    assert llm_requests(run) == 53
    section = cost_section(cfg, run, load_results(run))
    assert [r["device"] for r in section["rows"]] == ["cpu", "cpu"]
    assert section["llm_requests"] == "53" and section["baseline"] == "real" and section["main_set"] == "test"


def test_the_report_and_show_cost_give_the_same_numbers(costed, tmp_path, capsys):
    cfg, run = costed
    html, context = render_report(cfg, run)
    row = context["cost"]["rows"][0]
    assert "What each gain cost" in html and row["per_hour"] in html and row["per_k_ci"] in html
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"run_dir": str(run.root), "seed": 0, "train": {"variants": VARIANTS}}))
    assert main(["show", "cost", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "real+syn" in out and row["per_hour"] in out and "LLM requests of disambiguate and prompts: 53" in out


def test_show_cost_before_evaluate_names_the_command_that_makes_the_results(make_config, tmp_path, capsys):
    cfg = make_config()
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"run_dir": str(cfg.run_dir), "seed": 0}))
    assert main(["show", "cost", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "eval: not found" in err and "synthdiv run --until evaluate" in err
