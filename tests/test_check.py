"""``synthdiv check`` and the preflight of ``run``: mistakes surface before anything is spent (issue 12, item 3)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from synthdiv.cli.app import main
from synthdiv.config.loader import load_config
from synthdiv.engine.preflight import CheckReport, check_run
from synthdiv.errors import ConfigError, InputError


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "c.txt").write_text("goldfish\ntiger shark\n")
    path = tmp_path / "c.yaml"
    path.write_text("run_dir: run\nclasses: {source: c.txt}\nplan: {images_per_class: 4, shard_size: 4}\n")
    return path


def _one_line(err: str) -> str:
    assert err.count("\n") == 1, err
    return err


def test_typo_in_a_backend_option_is_refused_before_the_classes_stage(config: Path, capsys):
    rc = main(["run", "-c", str(config), "--set", "models.generator.options.stpes=25"])
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and "models.generator.options.stpes: unknown key; expected one of:" in err and "steps" in err
    assert not (config.parent / "run").exists()  # the classes stage did not run, nothing recorded the typo
    assert main(["classes", "-c", str(config), "--set", "models.llm.options.batch_size=0"]) == 2
    assert "models.llm.options.batch_size: input should be greater than or equal to 1, got 0" in capsys.readouterr().err


def test_unknown_backend_is_refused_at_load(config: Path):
    with pytest.raises(ConfigError, match=r"models\.clip\.backend: unknown CLIP backend 'clipz'; expected one of"):
        load_config(config, ["models.clip.backend=clipz"])


def test_loading_a_config_checks_options_without_torch(config: Path):
    code = (
        "import sys\nfrom synthdiv.config import load_config\n"
        f"load_config({str(config)!r}, ['models.generator.options.steps=25', 'models.clip.options.batch_size=8'])\n"
        "print('HEAVY', sorted(m for m in ('torch', 'diffusers', 'transformers', 'open_clip') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_missing_path_of_a_later_stage_stops_run_before_it_writes(config: Path, capsys):
    args = ["run", "-c", str(config), "--set", "evaluate.test_root=/nonexistent"]
    assert main(args) == 2
    err = _one_line(capsys.readouterr().err)
    assert "evaluate.test_root: /nonexistent does not exist" in err
    assert not (config.parent / "run").exists()
    assert main([*args, "--until", "classes"]) == 0  # the evaluate path is not needed to build the classes
    assert (config.parent / "run" / "classes.jsonl").is_file()


def test_check_prints_what_the_run_will_do(config: Path, capsys):
    assert main(["check", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    for text in ("stages to run", "classes, disambiguate, prompts", "images planned", "8 (8 to make)",
                 "generator model", "diffusers:embedded", "disk", "ok: "):
        assert text in out, text
    assert not (config.parent / "run").exists()  # check writes nothing


def test_check_lists_every_problem_and_exits_2(config: Path, tmp_path: Path, capsys):
    args = ["check", "-c", str(config), "--set", "evaluate.test_root=/nonexistent", "--set",
            f"models.generator.model={tmp_path / 'no-model'}", "--set", "prompts.styles_file=/nope.txt"]
    assert main(args) == 2
    captured = capsys.readouterr()
    for where in ("evaluate.test_root", "models.generator.model", "prompts.styles_file"):
        assert f"error: {where}" in captured.out, where
    assert "(and 2 more above)" in _one_line(captured.err)



def test_the_first_error_points_to_the_others():
    report = CheckReport(["classes"])
    report.warn("plan", "small")
    report.raise_first()  # warnings alone raise nothing
    report.error("a", "one")
    with pytest.raises(InputError, match=r"^a: one$"):
        report.raise_first()
    report.error("b", "two")
    report.error("c", "three")
    with pytest.raises(InputError, match=r"^a: one \(and 2 more: run `synthdiv check` to see all\)$"):
        report.raise_first()  # run's preflight printed nothing
    with pytest.raises(InputError, match=r"^check: a: one \(and 2 more above\)$"):
        report.raise_first(prefix="check: ", shown=True)

def _hub_cache(root: Path, repo: str, filename: str) -> None:
    """The layout huggingface_hub gives a cached repo (refs/main -> snapshots/<commit>/<file>)."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    (folder / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (folder / "snapshots" / ("0" * 40) / filename).write_text("{}")


def test_hub_ids_need_the_local_cache_when_the_hub_is_offline(config: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    cfg = load_config(config, ["models.generator.model=acme/sd-model"])
    report = check_run(cfg, ["generate"])
    assert [str(f) for f in report.errors][0].startswith(
        "models.generator.model: hub id 'acme/sd-model' is not in the local Hugging Face cache and the hub is offline")
    _hub_cache(tmp_path / "hub", "acme/sd-model", "model_index.json")
    report = check_run(cfg, ["generate"])
    assert not report.errors
    assert ("generator model", "diffusers:acme/sd-model (hub id, in the local Hugging Face cache; used by generate)") \
        in report.plan
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    online = check_run(load_config(config, ["models.generator.model=acme/other"]), ["generate"])
    assert not online.errors and "downloaded on first use" in dict(online.plan)["generator model"]


def test_cuda_asked_for_without_a_gpu_is_an_error(config: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    report = check_run(load_config(config, ["models.generator.device=cuda", "train.device=cuda:1"]),
                       ["generate", "train"])
    assert [f.where for f in report.errors] == ["models.generator.device", "train.device"]
    assert "'cuda' was asked for but no CUDA device is available" in str(report.errors[0])


def test_plan_larger_than_the_free_disk_is_an_error(config: Path):
    report = check_run(load_config(config, ["plan.images_per_class=100000000000",
                                            "models.generator.options={width: 1024, height: 1024}"]), ["generate"])
    assert [f.where for f in report.errors] == ["run_dir"]
    assert "the planned images need about" in str(report.errors[0]) and "free" in str(report.errors[0])
