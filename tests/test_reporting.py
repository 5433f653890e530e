"""Every stage reports like the others (issue 21, item 5): ``train`` and ``evaluate`` end with a one-line summary
(top-1 per variant and set), ``status`` fits 100 columns on a long run, and ``estimate`` names the device its rates
came from (a CPU rate is never "per GPU")."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from rich.console import Console

from synthdiv.cli.app import main
from synthdiv.config.loader import load_config
from synthdiv.core.pipeline import get_spec
from synthdiv.core.rundir import RunDir
from synthdiv.core.status import fingerprint, stage_status, summary_line
from synthdiv.engine.estimate import budget, estimate
from synthdiv.engine.runner import run_stage
from synthdiv.engine.throughputs import Rate

SD15 = Path(__file__).resolve().parents[1] / "examples" / "imagenet1k-sd15.yaml"

TRAIN = {
    "real": {"steps": 1200, "final_loss": 0.8214, "val_top1": 0.412, "images_per_second": 40.0, "device": "cpu"},
    "real+syn": {"steps": 1200, "final_loss": 0.7931, "val_top1": 0.455, "images_per_second": 38.0, "device": "cpu"},
    "real+syn+aux": {"steps": 1200, "final_loss": None, "val_top1": None},
}
EVALUATE = {
    "real": {"test": 0.4123, "imagenet-sketch": 0.2011, "imagenet-r": 0.1502, "long-tail few": None},
    "real+syn": {"test": 0.4498, "imagenet-sketch": 0.2687, "imagenet-r": 0.2013, "long-tail few": 0.0833},
}


def _finish(cfg, name: str, summary: dict) -> None:
    run = RunDir(cfg.run_dir)
    run.finish(run.begin(name, fingerprint(cfg, get_spec(name), run)), summary)


def test_train_and_evaluate_end_with_a_one_line_summary(make_config, monkeypatch, caplog):
    cfg = make_config()
    run = RunDir(cfg.run_dir)
    run.classes.parent.mkdir(parents=True, exist_ok=True)
    run.classes.write_text('{"index": 0, "name": "goldfish"}\n')
    monkeypatch.setattr("synthdiv.stages.train.stage.build", lambda cfg, run: run.train.mkdir(parents=True) or TRAIN)
    monkeypatch.setattr("synthdiv.stages.evaluate.stage.build", lambda cfg, run: EVALUATE)
    # no sets: evaluate is stubbed
    monkeypatch.setattr("synthdiv.stages.evaluate.stage.check_sets", lambda section: None)
    with caplog.at_level(logging.INFO, logger="synthdiv.stages"):
        run_stage(cfg, "train")
        run_stage(cfg, "evaluate")
    done = {r.getMessage().split()[1]: r.getMessage() for r in caplog.records if " done in " in r.getMessage()}
    train, evaluate = done["train"], done["evaluate"]
    assert "no summary" not in train + evaluate and "\n" not in train + evaluate
    assert train.endswith(": real: 1,200 steps, loss 0.821, val top-1 41.2%; real+syn: 1,200 steps, loss 0.793, "
                          "val top-1 45.5%; real+syn+aux: 1,200 steps, no validation"), train
    assert evaluate.endswith(": top-1 real: test 41.2%, imagenet-sketch 20.1%, imagenet-r 15.0%, long-tail few n/a; "
                             "real+syn: test 45.0%, imagenet-sketch 26.9%, imagenet-r 20.1%, long-tail few 8.3%"), (
        evaluate)
    rows = {r.stage: r for r in stage_status(cfg)}
    assert rows["train"].state == "done" and rows["train"].detail.startswith("real: 1,200 steps, loss 0.821")
    assert rows["evaluate"].state == "done" and rows["evaluate"].detail.startswith("top-1 real: ")
    assert "test 41.2%" in rows["evaluate"].detail and "long-tail few 8.3%" in rows["evaluate"].detail


def test_a_summary_line_never_fails_on_an_old_summary():
    assert summary_line(get_spec("evaluate"), {"real": "not a dict"}) == "real=not a dict"  # its scalars, then
    assert summary_line(get_spec("train"), {}) == "no summary"
    assert summary_line(get_spec("train"), {"real": {}}) == "real: 0 steps, no validation"
    assert summary_line(get_spec("classes"), {"classes": 2, "real_images": 0}) == "classes=2, real_images=0"


def test_status_fits_100_columns_on_a_long_run(tmp_path: Path, capsys):
    deep = tmp_path / ("a-long-folder-name-" * 5) / "runs" / "imagenet-1k-sd15-contexts-and-styles-2026-12-04-seed-0"
    (tmp_path / "c.txt").write_text("goldfish\n")
    path = tmp_path / "c.yaml"
    path.write_text(f"run_dir: {deep}\nclasses:\n  source: c.txt\n")
    assert main(["classes", "-c", str(path)]) == 0
    cfg = load_config(path)
    keys = ["classes", "changed", "made_unique", "fallbacks", "undecided", "by_domain", "by_images", "by_llm",
            "by_clip", "grounded_candidates", "llm_candidates", "llm_requests", "rejected_candidates", "seconds",
            "model_id"]
    long = {k: 1000 + i for i, k in enumerate(keys)}
    _finish(cfg, "disambiguate", long)
    assert len(summary_line(get_spec("disambiguate"), long)) > 250  # one line of 250 columns, before
    _finish(cfg, "train", TRAIN)
    _finish(cfg, "evaluate", EVALUATE)
    capsys.readouterr()
    assert main(["status", "-c", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100, "\n".join(lines)
    text = " ".join(" ".join(line.replace("│", " ").split()) for line in lines)
    for part in ("rejected_candidates=1012", "model_id=1014", "long-tail few 8.3%", "real+syn+aux: 1,200 steps"):
        assert part in text  # wrapped, not cut
    assert "2026-12-04-seed-0" in "".join(lines)  # the run's path, folded where it must be


def _text(renderable) -> str:
    console = Console(record=True, width=240)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize(("device", "kind", "where"), [
    ("cpu", "CPU", "on cpu"),
    ("cuda:0 (NVIDIA H200)", "GPU", "on cuda:0 (NVIDIA H200)"),
    (None, "device", "the device it ran on was not recorded"),  # a run from before runs recorded it
])
def test_estimate_names_the_device_its_measured_rates_came_from(tmp_path: Path, device, kind, where):
    cfg = load_config(SD15, ["models.generator.device=auto"], run_dir=tmp_path / "run")
    recorded = {} if device is None else {"device": device}
    _finish(cfg, "generate", {"images_per_second": 2.5, **recorded})
    _finish(cfg, "train", {"real": {"images_per_second": 40.0, **recorded}})
    b = budget(cfg)
    assert b.generate_rate.per_second == 2.5 and b.train_rate.per_second == 40.0
    text = _text(estimate(cfg))
    assert f"per {kind}: measured in this run, {where}" in text
    assert f"generation {kind} time" in text and f"training {kind} time" in text
    assert "2.5 img/s" in text and "40 img/s" in text
    if kind != "GPU":
        assert "GPU" not in text  # a CPU rate, or one from an unknown device, is never called a GPU's


def test_a_given_or_configured_rate_holds_for_the_configured_device(tmp_path: Path):
    cfg = load_config(SD15, ["estimate.device=cpu", "estimate.train_images_per_second=20"], run_dir=tmp_path / "r")
    text = _text(estimate(cfg, 0.05))
    assert "per CPU: --images-per-second, on cpu" in text and "3 img/min" in text
    assert "per CPU: estimate.train_images_per_second, on cpu" in text and "GPU" not in text


@pytest.mark.parametrize(("device", "kind"), [
    ("cpu", "CPU"), ("CPU (32 cores)", "CPU"), ("cuda", "GPU"), ("cuda:1 (NVIDIA A100)", "GPU"), ("A100", "GPU"),
    ("H100 (default)", "GPU"), ("device not recorded", "device"), ("auto", "device"),
])
def test_rate_kinds(device: str, kind: str):
    assert Rate(1.0, device, "test").kind == kind
