"""What each gain cost (stages/report/cost.py): the images a variant trained on, the device time that made them as the
generate stage measured it, and the gain per thousand images and per device-hour with its interval scaled alike."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthdiv.cli.app import main
from synthdiv.core.rundir import RunDir
from synthdiv.metrics.accuracy import paired_delta_ci
from synthdiv.stages.report.cost import cost_section, generation_rate, llm_requests, round_costs, variant_costs
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
    _finished(run, "prompts", {"llm_requests": 33, "llm_tokens": 1200})
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
    assert section["llm_tokens"] == "1,200"  # only prompts recorded tokens (disambiguate's were all cached, say)


def test_the_report_and_show_cost_give_the_same_numbers(costed, tmp_path, capsys):
    cfg, run = costed
    html, context = render_report(cfg, run)
    row = context["cost"]["rows"][0]
    assert "What each gain cost" in html and row["per_hour"] in html and row["per_k_ci"] in html
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"run_dir": str(run.root), "seed": 0, "train": {"variants": VARIANTS}}))
    assert main(["show", "cost", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "real+syn" in out and row["per_hour"] in out
    assert "LLM requests of disambiguate and prompts: 53 (1,200 generated tokens)" in out
    assert "53 LLM requests (1,200 generated tokens)" in html


def test_show_cost_before_evaluate_names_the_command_that_makes_the_results(make_config, tmp_path, capsys):
    cfg = make_config()
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"run_dir": str(cfg.run_dir), "seed": 0}))
    assert main(["show", "cost", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "eval: not found" in err and "synthdiv run --until evaluate" in err


def _rounds(run: RunDir, records: list[dict]) -> None:
    """A plan whose metadata records ``records`` as its adaptive rounds (the rows do not matter to the cost)."""

    from synthdiv.core.schemas import PLAN_SCHEMA
    from synthdiv.stages.plan.reader import ROUNDS_KEY
    from synthdiv.utils.io import write_parquet_atomic

    meta = {ROUNDS_KEY: json.dumps(records).encode()}
    write_parquet_atomic(PLAN_SCHEMA.empty_table().replace_schema_metadata(meta), run.plan)


def _pool(run: RunDir, kept: list[bool]) -> None:
    import pyarrow as pa

    from synthdiv.core.schemas import LEARNER_SCORES_SCHEMA
    from synthdiv.utils.io import write_parquet_atomic

    n = len(kept)
    write_parquet_atomic(pa.table({"image_id": [f"i{i}" for i in range(n)], "round": pa.array([1] * n, pa.int32()),
                                   "class": pa.array([0] * n, pa.int32()),
                                   "informativeness": pa.array([0.0] * n, pa.float32()), "kept": kept},
                                  schema=LEARNER_SCORES_SCHEMA), run.learner_scores)


def test_pooled_images_left_out_count_in_the_device_time_not_in_the_images(costed):
    cfg, run = costed
    _pool(run, [True] * 200 + [False] * 600)  # 600 made and never trained on
    cost = {c.variant: c for c in variant_costs(cfg, run, load_results(run))}["real+syn"]
    assert cost.images == 1000 and cost.generated == 1600
    assert cost.device_hours == pytest.approx(1600 * 0.5 / 3600)
    assert cost.per_thousand_images()[0] == pytest.approx(cost.delta)  # per image trained on: 1,000 of them
    row = cost_section(cfg, run, load_results(run))["rows"][0]
    assert (row["images"], row["generated"]) == ("1,000", "1,600")


def test_each_adaptive_round_shows_what_it_made_kept_cost_and_moved(costed, tmp_path, capsys):
    cfg, run = costed
    assert round_costs(run) == [] and cost_section(cfg, run, load_results(run))["rounds"] == []
    _rounds(run, [
        {"round": 1, "images": 40, "counts": [20, 20], "keep": [10, 10], "pool_factor": 2, "variant": "real+syn",
         "eval_set": "test", "errors": [0.6, 0.4]},
        {"round": 2, "images": 30, "counts": [10, 20], "variant": "real+syn", "eval_set": "test",
         "errors": [0.5, 0.3]},
    ])
    atomic_write_json(run.eval / "real+syn" / "test.json", {"variant": "real+syn", "set": "test", "top1": 0.6,
                                                             "images": N, "per_class": {"a": 0.7, "b": 0.8}})
    first, second = round_costs(run)
    assert (first.generated, first.kept, second.generated, second.kept) == (40, 20, 30, 30)
    assert first.device_hours == pytest.approx(40 * 0.5 / 3600)
    # round 1 moved the class mean from 0.5 to 0.6 (round 2's planning); round 2 from 0.6 to the current 0.75
    assert (first.before, first.after, second.after) == pytest.approx((0.5, 0.6, 0.75))
    assert first.gain == pytest.approx(0.1) and first.per_thousand_images() == pytest.approx(0.1 / 0.02)
    assert second.per_device_hour() == pytest.approx(0.15 / (30 * 0.5 / 3600))
    rows = cost_section(cfg, run, load_results(run))["rounds"]
    assert [(r["round"], r["generated"], r["kept"], r["before"], r["after"], r["gain"]) for r in rows] == [
        ("1", "40", "20", "50.00", "60.00", "+10.00"), ("2", "30", "30", "60.00", "75.00", "+15.00")]
    html, _ = render_report(cfg, run)
    assert "What each adaptive round cost" in html and "+15.00" in html
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"run_dir": str(run.root), "seed": 0, "train": {"variants": VARIANTS}}))
    assert main(["show", "cost", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "adaptive rounds" in out and "+15.00" in out and "real+syn on test" in out
