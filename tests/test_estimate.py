"""``synthdiv estimate`` as a budget: remaining and total, LLM calls/tokens/cost, default rates, no data needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from synthdiv.cli.app import main
from synthdiv.config.loader import load_config
from synthdiv.core.rundir import RunDir
from synthdiv.engine.estimate import IMAGENET_1K_TRAIN, budget, estimate
from synthdiv.utils.humanize import human_duration

REPO = Path(__file__).resolve().parents[1]
SD15 = REPO / "examples" / "imagenet1k-sd15.yaml"


def _text(renderable) -> str:
    console = Console(record=True, width=240)
    console.print(renderable)
    return console.export_text()


def test_imagenet_example_is_estimated_before_its_data_is_on_disk(tmp_path: Path):
    cfg = load_config(SD15, run_dir=tmp_path / "run")
    assert not cfg.classes.real_root.exists()
    b = budget(cfg)
    assert b.classes == 1000
    assert b.images == 1000 * (IMAGENET_1K_TRAIN // 1000)  # multiple_of_real: 1 of ILSVRC-2012's mean class
    assert b.images_left == b.images and b.shards == -(-b.images // 1000)
    assert b.llm_calls > 1000 and b.llm_tokens > b.llm_calls * 100
    assert b.llm_cost is None  # no price configured: no cost row
    assert b.generate_rate is not None and b.generate_rate.device == "H100 (default)"
    assert b.generate_rate.per_second == pytest.approx(6.0)  # SD 1.5, 512x512, 25 steps
    assert b.train_rate is not None and b.train_seconds is not None and b.train_seconds > 3600
    text = _text(estimate(cfg))
    assert "ImageNet metadata" in text and "default for SD 1.x/2.x" in text and "0.00" not in text
    assert "generation GPU time" in text and "training GPU time" in text and "LLM cost" not in text


def test_price_gives_a_cost_and_done_stages_leave_nothing_to_pay(tmp_path: Path):
    cfg = load_config(SD15, ["estimate.llm_price_per_million_tokens=0.6"], run_dir=tmp_path / "run")
    b = budget(cfg)
    assert b.llm_cost == pytest.approx(b.llm_tokens * 0.6 / 1e6)
    assert b.llm_cost_left == pytest.approx(b.llm_cost)
    run = RunDir(cfg.run_dir)
    run.finish(run.begin("disambiguate", "f"), {})
    after = budget(cfg)
    assert after.llm_calls == b.llm_calls and after.llm_calls_left == b.llm_calls - 1000  # one call per class
    assert after.llm_cost_left < b.llm_cost_left
    assert "LLM cost" in _text(estimate(cfg))


def test_given_and_configured_rates_win_and_are_labelled(tmp_path: Path):
    cfg = load_config(SD15, ["generate.images_per_second=12", "estimate.device=A100"], run_dir=tmp_path / "run")
    assert budget(cfg).generate_rate.source == "generate.images_per_second"
    assert budget(cfg).generate_rate.device == "A100"
    given = budget(cfg, 3.0)
    assert given.generate_rate.per_second == 3.0 and given.generate_rate.source == "--images-per-second"
    assert given.generate_seconds == pytest.approx(given.images / 3.0)


def test_default_rates_scale_with_model_size_and_steps(tmp_path: Path):
    turbo = load_config(SD15, ["models.generator.model=stabilityai/sdxl-turbo", "models.generator.options.steps=1"],
                        run_dir=tmp_path / "a")
    assert budget(turbo).generate_rate.per_second == pytest.approx(80.0)  # 20 img/s at 4 steps -> 1 step
    xl = load_config(SD15, ["models.generator.model=stabilityai/stable-diffusion-xl-base-1.0",
                            "models.generator.options={}"], run_dir=tmp_path / "b")
    assert budget(xl).generate_rate.per_second == pytest.approx(1.0)  # 1024x1024, its default 30 steps
    unknown = load_config(SD15, ["train.model=efficientnet_b0"], run_dir=tmp_path / "c")
    assert budget(unknown).train_rate is None
    assert "rate unknown: set estimate.train_images_per_second" in _text(estimate(unknown))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (0.004, "0.004 s"), (3, "3 s"), (600, "10 min"), (7200, "2.0 h"), (3600 * 100, "100 h (4 days)")],
)
def test_human_duration(seconds: float, text: str):
    assert human_duration(seconds) == text


def test_cli_estimate_of_a_class_file(tmp_path: Path, capsys):
    (tmp_path / "c.txt").write_text("goldfish\ntiger shark\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: run\nclasses: {source: c.txt}\nplan: {images_per_class: 5000, shard_size: 1000}\n"
                   "models: {generator: {model: some/model}}\n")
    assert main(["estimate", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "10,000" in out and "class source" in out
    assert not (tmp_path / "run").exists()  # an estimate writes nothing


def test_a_bridged_variant_is_estimated_as_its_synthetic_phase_then_its_real_phase(tmp_path: Path):
    from synthdiv.engine.estimate import _train_images

    over = ["train.batch_size=100", "train.max_steps=null", "train.variants=null", "train.epochs=2",
            "train.finetune_real_epochs=3"]
    cfg = load_config(SD15, over, run_dir=tmp_path)
    # 2 epochs of 500 synthetic images (5 steps each), then 3 of 1,000 real (10 steps each)
    assert _train_images(cfg, 1000, 500) == (2 * 5 + 3 * 10) * 100
    steps = load_config(SD15, [*over, "train.max_steps=7", "train.finetune_real_steps=4"], run_dir=tmp_path)
    assert _train_images(steps, 1000, 500) == (7 + 4) * 100


def test_a_guidance_interval_speeds_the_default_rate_by_the_rows_it_saves(tmp_path: Path):
    sd15 = "generate.sampling.interval=[0.2,0.6]"  # 25 steps: steps 5..14 guided, 35 of 50 denoiser rows
    cfg = load_config(SD15, [sd15, "models.generator.options.steps=25"], run_dir=tmp_path / "a")
    rate = budget(cfg).generate_rate
    assert rate.per_second == pytest.approx(6.0 * 50 / 35)
    assert "guidance interval [0.2, 0.6): 10 of 25 steps guided, 35 of 50 denoiser rows" in rate.source
    diverse = load_config(SD15, ["generate.sampling.diverse=true", "models.generator.options.steps=10"],
                          run_dir=tmp_path / "b")  # the SD 1.x family's interval [0.1, 0.9): steps 1..8 of 10
    assert budget(diverse).generate_rate.per_second == pytest.approx(6.0 * 25 / 10 * 20 / 18)
    unguided = load_config(SD15, [sd15, "models.generator.options.guidance=1.0"], run_dir=tmp_path / "c")
    assert budget(unguided).generate_rate.per_second == pytest.approx(6.0)  # no CFG: nothing to save
    drawn = load_config(SD15, [sd15, "models.generator.options.guidance=1.0", "generate.sampling.guidance=3"],
                        run_dir=tmp_path / "d")
    assert budget(drawn).generate_rate.per_second == pytest.approx(6.0 * 50 / 35)  # the run's own scale guides
    turbo = load_config(SD15, ["generate.sampling.diverse=true", "models.generator.model=stabilityai/sdxl-turbo",
                               "models.generator.options.steps=4"], run_dir=tmp_path / "e")
    assert budget(turbo).generate_rate.per_second == pytest.approx(20.0)  # distilled: diverse sets no interval
    measured = load_config(SD15, [sd15, "generate.images_per_second=12"], run_dir=tmp_path / "f")
    assert budget(measured).generate_rate.per_second == 12.0  # a rate given or measured already holds the saving
