"""The train stage: variants, checkpoints, metrics, export, mixing within domains, the schedule, exact resume after
SIGKILL, and DDP (2 gloo processes) against one process with the same global batch."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file

from synthdiv.core.rundir import RunDir
from synthdiv.errors import ConfigError, TrainingDivergedError
from synthdiv.stages.train.loop import cosine_lambda
from synthdiv.stages.train.mix import mix_within_domains
from synthdiv.stages.train.stage import fit, progress
from synthdiv.utils.io import read_jsonl

SCRIPT = Path(__file__).with_name("train_script.py")
BASE = {"model": "test_resnet", "img_size": 16, "batch_size": 8, "num_workers": 0, "log_every": 1, "lr": 3e-3}


def test_fit_trains_checkpoints_and_exports_every_variant(toy, make_config):
    variants = {"real": {"synthetic_fraction": 0, "aux_norm": "none"}, "real+syn": {"ema_decay": 0.5}}
    cfg = make_config(run_dir=str(toy["run"]),
                      train={**BASE, "max_steps": 5, "checkpoint_every": 2, "variants": variants})
    run = RunDir(cfg.run_dir)
    assert progress(cfg, run) == "real: step 0, real+syn: step 0"
    summary = fit(cfg, run)
    assert summary["real"]["synthetic_images"] == 0 and summary["real+syn"]["synthetic_images"] == 32
    assert summary["real"]["device"] == "cpu" and summary["real"]["images_per_second"] > 0  # for synthdiv estimate
    assert summary["real"]["val_top1"] is None  # no evaluate.test_root: no validation
    for name in variants:
        out = run.train / name
        assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3, 4, 5]
        assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000004.pt", "step-00000005.pt"]
        assert json.loads((out / "done.json").read_text())["steps"] == 5
        model = timm.create_model(f"local-dir:{run.export / name}", pretrained=True)
        assert model.num_classes == 4
    data = json.loads((run.train / "real+syn" / "data.json").read_text())
    assert data["block_sizes"] == [4, 4] and data["real_per_class"] == [12] * 4
    state = torch.load(run.train / "real+syn" / "checkpoints" / "step-00000005.pt", weights_only=True)
    assert any(".aux." in k for k in state["model"]) and state["ema"] is not None
    real_state = torch.load(run.train / "real" / "checkpoints" / "step-00000005.pt", weights_only=True)
    assert not any(".aux." in k for k in real_state["model"])  # one domain only: nothing to route
    assert progress(cfg, run) == "real: done, real+syn: done"
    stamp = (run.export / "real" / "model.safetensors").stat().st_mtime_ns
    assert fit(cfg, run)["real"]["steps"] == 5  # finished variants are not trained again
    assert (run.export / "real" / "model.safetensors").stat().st_mtime_ns == stamp


def test_training_refuses_a_run_whose_shards_are_not_all_there(toy, make_config):
    from synthdiv.errors import InputError

    run = RunDir(toy["run"])
    next(iter(sorted(run.manifest.glob("shard-*")))).unlink()  # a lost manifest part: half the images unlisted
    cfg = make_config(run_dir=str(toy["run"]), train={**BASE, "max_steps": 1})
    with pytest.raises(InputError, match=r"1 of \d+ found shards are missing or damaged .*synthdiv generate"):
        fit(cfg, run)
    real_only = make_config(run_dir=str(toy["run"]), train={**BASE, "max_steps": 1, "synthetic_fraction": 0})
    (summary,) = fit(real_only, run).values()
    assert summary["synthetic_images"] == 0  # no synthetic images asked: nothing to check


def test_an_unknown_timm_model_is_a_config_error(toy, make_config):
    cfg = make_config(run_dir=str(toy["run"]), train={**BASE, "model": "no_such_net", "max_steps": 1})
    with pytest.raises(ConfigError, match="train.model"):
        fit(cfg, RunDir(cfg.run_dir))


def test_variants_are_validated_with_their_names(make_config):
    with pytest.raises(ConfigError, match="variant 'a': unknown train key 'lr_typo'"):
        make_config(train={"variants": {"a": {"lr_typo": 1}}})
    with pytest.raises(ConfigError, match="variant 'b': synthetic_fraction"):
        make_config(train={"variants": {"b": {"synthetic_fraction": 2}}})
    cfg = make_config(train={"lr": 0.1, "variants": {"x": {"synthetic_fraction": 0}, "y": {}}})
    assert cfg.train.variant("x").synthetic_fraction == 0 and cfg.train.variant("y").lr == 0.1
    assert make_config().train.variant_names() == ["main"]


def test_mixup_and_cutmix_stay_within_each_domain_block():
    images = torch.cat([torch.full((4, 3, 8, 8), 1.0), torch.full((4, 3, 8, 8), -1.0)])
    labels = torch.tensor([0, 1, 0, 1, 2, 3, 2, 3])
    for mixup, cutmix in ((1.0, 0.0), (0.0, 1.0)):
        x, y = mix_within_domains(images, labels, 4, 4, 0.0, mixup, cutmix, np.random.default_rng(0))
        assert x[:4].eq(1.0).all() and x[4:].eq(-1.0).all()  # no real pixel in a synthetic image and back
        assert y[:4, 2:].eq(0).all() and y[4:, :2].eq(0).all()  # nor a real label in a synthetic target
        torch.testing.assert_close(y.sum(1), torch.ones(8))
        assert (y[:4, :2] > 0).all()  # the real block was mixed with its flip


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    f = cosine_lambda(total=110, warmup=10, floor=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)


def _write_config(tmp: Path, run_root: Path, train: dict) -> Path:
    path = tmp / f"cfg-{run_root.name}.json"
    path.write_text(json.dumps({"run_dir": str(run_root), "seed": 5, "train": {**train, "variants": {"v": {}}}}))
    return path


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("train", "export"))
    return dst


@pytest.mark.slow
def test_resume_after_sigkill_mid_epoch_ends_with_the_same_weights(toy, tmp_path):
    train = {**BASE, "num_workers": 2, "max_steps": 16, "checkpoint_every": 3, "ema_decay": 0.8,
             "mixup_alpha": 0.4, "cutmix_alpha": 1.0, "synthetic_loss_weight": 0.5, "warmup_steps": 2}
    killed_run = _copy_run(toy["run"], tmp_path / "killed")
    clean_run = _copy_run(toy["run"], tmp_path / "clean")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(SCRIPT), str(_write_config(tmp_path, killed_run, train)), "v"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = killed_run / "train" / "v" / "checkpoints"
    deadline = time.monotonic() + 300
    while not (ckpts / "step-00000006.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed_run / "train" / "v" / "done.json").exists()  # killed mid-run (an epoch is 12 steps)
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, str(SCRIPT), str(_write_config(tmp_path, clean_run, train)), "v"],
                   env=env, check=True, capture_output=True)
    resumed = load_file(killed_run / "export" / "v" / "model.safetensors")
    clean = load_file(clean_run / "export" / "v" / "model.safetensors")
    assert resumed.keys() == clean.keys()
    for key in clean:
        assert torch.equal(resumed[key], clean[key]), key
    a = read_jsonl(killed_run / "train" / "v" / "metrics.jsonl")
    b = read_jsonl(clean_run / "train" / "v" / "metrics.jsonl")
    assert [r["step"] for r in a] == list(range(1, 17))  # no step logged twice
    assert [r["loss"] for r in a] == [r["loss"] for r in b]


@pytest.mark.slow
def test_ddp_with_two_gloo_processes_matches_one_process_with_the_same_global_batch(toy, tmp_path):
    train = {**BASE, "model": "test_vit", "model_kwargs": {"img_size": 32}, "img_size": 32, "optimizer": "sgd",
             "lr": 0.05, "max_steps": 4, "checkpoint_every": 100, "aux_norm_layers": ["layernorm"],
             "label_smoothing": 0.0}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for tag, extra, nproc in (("one", {}, 1), ("accum", {"accum_steps": 2}, 1), ("ddp", {}, 2)):
        run_root = _copy_run(toy["run"], tmp_path / tag)
        cfg = _write_config(tmp_path, run_root, {**train, **extra})
        if nproc == 1:
            cmd = [sys.executable, str(SCRIPT), str(cfg), "v"]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   str(SCRIPT), str(cfg), "v"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[tag] = load_file(run_root / "export" / "v" / "model.safetensors")
    initial = timm.create_model("test_vit", img_size=32, num_classes=4).state_dict()
    moved = max(float((runs["one"][k] - initial[k]).abs().max()) for k in initial if k in runs["one"])
    assert moved > 1e-3  # training changed the weights, so equality below means something
    for tag in ("accum", "ddp"):
        for key, value in runs["one"].items():
            torch.testing.assert_close(runs[tag][key], value, atol=2e-5, rtol=1e-4, msg=f"{tag}: {key}")


def test_protocols_amp_and_unreadable_batches_through_fit(toy, make_config):
    for p in (toy["real"] / "class3").glob("*.png"):
        p.write_bytes(b"corrupt")
    variants = {
        "lt": {"long_tail": True, "long_tail_max": 12, "long_tail_min": 2, "synthetic_fraction": 0},
        "low": {"low_data": 3, "amp": "bf16"},  # bf16 autocast runs on CPU too
    }
    cfg = make_config(run_dir=str(toy["run"]), train={**BASE, "max_steps": 2, "variants": variants})
    run = RunDir(cfg.run_dir)
    fit(cfg, run)
    lt = json.loads((run.train / "lt" / "data.json").read_text())["real_per_class"]
    assert max(lt) == 12 and min(lt) == 2 and sorted(lt) != lt  # a shuffled Pareto profile
    low = json.loads((run.train / "low" / "data.json").read_text())
    assert low["real_per_class"] == [3, 3, 3, 3] and low["block_sizes"] == [4, 4]
    # bf16 on the CPU runs oneDNN kernels that differ between CPUs; a step one of them overflows is skipped, so
    # what must hold everywhere is the bookkeeping and finite weights, not finite losses
    rows = read_jsonl(run.train / "low" / "metrics.jsonl")
    assert rows[-1]["skipped"] >= sum(r["loss"] is None for r in rows)  # a NaN loss always means a skipped step
    assert all(r["loss"] is None or np.isfinite(r["loss"]) for r in rows)
    assert all(torch.isfinite(t).all() for t in load_file(run.export / "low" / "model.safetensors").values())
    only_corrupt = {"bad": {"synthetic_fraction": 0, "real_root": str(toy["real"] / "class3")}}
    (toy["real"] / "class3" / "class3").mkdir()  # an ImageFolder whose only class holds unreadable files
    for p in (toy["real"] / "class3").glob("*.png"):
        p.rename(toy["real"] / "class3" / "class3" / p.name)
    cfg = make_config(run_dir=str(toy["run"]), train={**BASE, "batch_size": 4, "max_steps": 2,
                                                       "variants": only_corrupt})
    summary = fit(cfg, run)["bad"]
    assert summary["corrupt"] == 8 and summary["final_loss"] == 0.0  # skipped and counted, never fatal


def test_steps_with_non_finite_gradients_are_skipped_and_too_many_in_a_row_stop_the_run(
    toy, make_config, monkeypatch, caplog
):
    from synthdiv.stages.train import loop

    caplog.set_level(logging.INFO, logger="synthdiv")  # the step lines are formatted, as on a user's console

    real_micro_step, calls = loop._micro_step, []

    def nan_after_the_first_step(net, layers, batch, *args):  # NaN pixels: NaN activations, BN statistics, gradients
        calls.append(1)
        if len(calls) > 1:
            batch = {**batch, "images": torch.full_like(batch["images"], float("nan"))}
        return real_micro_step(net, layers, batch, *args)

    monkeypatch.setattr(loop, "_micro_step", nan_after_the_first_step)
    train = {**BASE, "max_steps": 4, "checkpoint_every": 1, "keep_checkpoints": 4}
    cfg = make_config(run_dir=str(toy["run"]), train={**train, "max_nonfinite_steps": 3})
    run = RunDir(cfg.run_dir)
    summary = fit(cfg, run)["main"]
    rows = read_jsonl(run.train / "main" / "metrics.jsonl")
    assert np.isfinite(rows[0]["loss"]) and [r["loss"] for r in rows[1:]] == [None] * 3
    assert [r["skipped"] for r in rows] == [0, 1, 2, 3] and summary["skipped_steps"] == 3
    assert "step 2 loss (not finite)" in caplog.text and "step 2: non-finite gradients, update skipped" in caplog.text
    ckpt = run.train / "main" / "checkpoints"
    first, last = (torch.load(ckpt / f"step-0000000{i}.pt", weights_only=True) for i in (1, 4))
    floats = [k for k, v in first["model"].items() if v.is_floating_point()]
    assert any(".aux." in k for k in floats)
    for key in floats:  # weights, main and aux BN statistics: as the one good step left them
        assert torch.equal(first["model"][key], last["model"][key]), key
    assert first["optimizer"]["state"][0]["step"] == last["optimizer"]["state"][0]["step"]
    assert last["scheduler"]["last_epoch"] == 4  # the schedule kept pace with the step count
    exported = load_file(run.export / "main" / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in exported.values())

    calls.clear()
    cfg = make_config(run_dir=str(toy["run"]), train={**train, "max_nonfinite_steps": 1, "variants": {"strict": {}}})
    with pytest.raises(TrainingDivergedError, match="2 steps in a row with non-finite gradients .* step 3"):
        fit(cfg, run)
    assert not (run.export / "strict").exists()


def test_sgd_without_momentum_is_plain_sgd(make_config):
    from synthdiv.stages.train.loop import _TrainState

    for momentum, nesterov in ((0.0, False), (0.9, True)):
        tcfg = make_config(train={"optimizer": "sgd", "momentum": momentum}).train
        state = _TrainState(tcfg, timm.create_model("test_resnet", num_classes=4), 10, torch.device("cpu"))
        group = state.optimizer.param_groups[0]
        assert group["nesterov"] is nesterov and group["momentum"] == momentum


def test_a_vit_trains_with_auxiliary_layernorms_and_exports_plain_timm(toy, make_config):
    """aux_norm_layers: auto (the default) gives a ViT auxiliary LayerNorms; mixup/cutmix and RandAugment run."""
    vit = {**BASE, "model": "test_vit", "model_kwargs": {"patch_size": 8}, "max_steps": 3, "warmup_steps": 1,
           "mixup_alpha": 0.8, "cutmix_alpha": 1.0, "auto_augment": "rand-m9-mstd0.5-inc1"}
    cfg = make_config(run_dir=str(toy["run"]), train=vit)
    run = RunDir(cfg.run_dir)
    summary = fit(cfg, run)["main"]
    assert summary["aux_norm_layers"] == {"layernorm": 2 * 6 + 1}  # test_vit: 6 blocks of 2 norms, a final norm
    state = torch.load(run.train / "main" / "checkpoints" / "step-00000003.pt", weights_only=False)
    assert sum(k.endswith(".aux.weight") for k in state["model"]) == 13
    exported = load_file(run.export / "main" / "model.safetensors")
    plain = timm.create_model("test_vit", num_classes=4, img_size=16, patch_size=8)
    assert set(exported) == set(plain.state_dict())
    loaded = timm.create_model(f"local-dir:{run.export / 'main'}", pretrained=True).eval()
    assert loaded.patch_embed.img_size == (16, 16) and loaded(torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_a_training_step_routes_the_real_block_to_the_main_norms_and_the_synthetic_block_to_the_aux_norms(
    toy, make_config, monkeypatch
):
    """The routing of train/loop.py, by its outcome after one real step of ``fit``: the main BatchNorm statistics are
    those of the real block alone, the auxiliary ones those of the synthetic block, and every aux norm was trained."""
    from synthdiv.stages.train import loop

    seen: dict = {}
    real_aux_layers = loop.aux_layers

    def recording(model):  # the input of the first norm layer during the first (training) forward pass
        layers = real_aux_layers(model)
        seen["name"] = next(n for n, m in model.named_modules() if m is layers[0])
        layers[0].register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0].detach().clone()))
        return layers

    monkeypatch.setattr(loop, "aux_layers", recording)
    cfg = make_config(run_dir=str(toy["run"]), train={**BASE, "max_steps": 1})
    run = RunDir(cfg.run_dir)
    fit(cfg, run)
    n_real, n_syn = json.loads((run.train / "main" / "data.json").read_text())["block_sizes"]
    assert n_real > 0 and n_syn > 0
    state = torch.load(run.train / "main" / "checkpoints" / "step-00000001.pt", weights_only=True)["model"]
    x, first = seen["x"], seen["name"]
    assert x.shape[0] == n_real + n_syn
    momentum = 0.1  # torch's and timm's BatchNorm default; the statistics start at mean 0, variance 1
    for norm, block in (("main", x[:n_real]), ("aux", x[n_real:])):
        mean, var = block.mean((0, 2, 3)), block.var((0, 2, 3), unbiased=True)
        torch.testing.assert_close(state[f"{first}.{norm}.running_mean"], momentum * mean, msg=norm)
        torch.testing.assert_close(state[f"{first}.{norm}.running_var"], (1 - momentum) + momentum * var, msg=norm)
    tracked = {k: int(v) for k, v in state.items() if k.endswith("num_batches_tracked")}
    assert tracked and all(k.endswith((".main.num_batches_tracked", ".aux.num_batches_tracked")) for k in tracked)
    assert set(tracked.values()) == {1}  # every main and every aux norm saw exactly one batch
    assert all(state[k.replace("num_batches_tracked", "running_mean")].abs().sum() > 0 for k in tracked)
