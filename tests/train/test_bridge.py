"""Bridged transfer (train.finetune_real_*): synthetic-only batches first, through the auxiliary norms, then real-only
fine-tuning with its own schedule; resumable in either phase; exported as plain timm."""

from __future__ import annotations

import json
import shutil

import pytest
import timm
import torch
from safetensors.torch import load_file

from synthdiv.core.rundir import RunDir
from synthdiv.stages.train import loop
from synthdiv.stages.train.stage import fit, progress

BASE = {"model": "test_resnet", "img_size": 16, "batch_size": 8, "num_workers": 0, "log_every": 1, "lr": 3e-3,
        "max_steps": 3, "finetune_real_steps": 2, "finetune_real_lr": 1e-3}


def _recording(monkeypatch) -> list[tuple[int, int]]:
    """Record ``(n_real, batch size)`` of every micro-batch the loop trains on."""
    seen: list[tuple[int, int]] = []
    real_micro_step = loop._micro_step

    def recording(net, layers, batch, *args):
        seen.append((batch["n_real"], batch["images"].shape[0]))
        return real_micro_step(net, layers, batch, *args)

    monkeypatch.setattr(loop, "_micro_step", recording)
    return seen


def test_phase_1_sees_only_synthetic_batches_through_the_aux_norms_then_phase_2_only_real(
    toy, make_config, monkeypatch
):
    seen = _recording(monkeypatch)
    cfg = make_config(run_dir=str(toy["run"]), train={**BASE, "variants": {"bridge": {}}})
    run = RunDir(cfg.run_dir)
    summary = fit(cfg, run)["bridge"]
    assert seen == [(0, 8)] * 3 + [(8, 8)] * 2  # phase order: 3 synthetic steps, then 2 real
    assert summary["steps"] == 5 and summary["real_images"] == 48 and summary["synthetic_images"] == 32
    data = json.loads((run.train / "bridge" / "data.json").read_text())
    assert data["phase_steps"] == [3, 2] and data["total_steps"] == 5
    first = torch.load(run.train / "bridge" / "phase1" / "checkpoints" / "step-00000003.pt", weights_only=True)
    assert first["phase"] == 1
    tracked = {k: int(v) for k, v in first["model"].items() if k.endswith("num_batches_tracked")}
    assert tracked and all(v == (3 if ".aux." in k else 0) for k, v in tracked.items())  # synthetic: aux norms only
    assert all(first["model"][k.replace("num_batches_tracked", "running_mean")].abs().sum() == 0
               for k in tracked if ".main." in k)  # main statistics untouched in phase 1
    second = torch.load(run.train / "bridge" / "checkpoints" / "step-00000002.pt", weights_only=True)
    assert second["phase"] == 2
    assert all(int(v) == (2 if ".main." in k else 3) for k, v in second["model"].items()
               if k.endswith("num_batches_tracked"))  # real: main norms only
    assert set(second["scheduler"]["base_lrs"]) == {1e-3}  # phase 2's own lr and schedule (lr is 3e-3)
    model = timm.create_model(f"local-dir:{run.export / 'bridge'}", pretrained=True)  # plain timm
    assert model.num_classes == 4 and not any(".aux." in k for k in model.state_dict())
    assert progress(cfg, run) == "bridge: done"


def test_reinitialising_the_head_starts_phase_2_from_a_new_seeded_head(toy, make_config, monkeypatch):
    heads: list[torch.Tensor] = []
    real_run_loop = loop.run_loop

    def recording(setup):
        heads.append(setup.model.get_classifier().weight.detach().clone())
        return real_run_loop(setup)

    from synthdiv.stages.train import bridge

    monkeypatch.setattr(bridge, "run_loop", recording)
    variants = {"keep": {}, "new": {"finetune_reinit_head": True}}
    cfg = make_config(run_dir=str(toy["run"]), train={**BASE, "variants": variants})
    fit(cfg, RunDir(cfg.run_dir))
    keep1, keep2, new1, new2 = heads
    assert torch.equal(keep1, new1)  # the same phase 1 start
    first = torch.load(RunDir(cfg.run_dir).train / "keep" / "phase1" / "checkpoints" / "step-00000003.pt",
                       weights_only=True)["model"]
    assert torch.equal(keep2, first["fc.weight"])  # phase 2 starts where phase 1 ended...
    assert not torch.equal(new2, first["fc.weight"])  # ...or from a new head
    assert not torch.equal(new2, new1)


# killed in phase 1 (at its step 2), at phase 2's first step (none of its checkpoints yet), or at its second
@pytest.mark.parametrize("fail_at", [2, 4, 5])
def test_a_run_killed_in_either_phase_resumes_to_the_weights_of_an_uninterrupted_run(
    toy, make_config, monkeypatch, tmp_path, fail_at
):
    train = {**BASE, "checkpoint_every": 1, "ema_decay": 0.5, "finetune_reinit_head": True,
             "variants": {"bridge": {}}}
    clean_cfg = make_config(run_dir=str(toy["run"]), train=train)
    clean = RunDir(clean_cfg.run_dir)
    killed_root = tmp_path / "killed"
    shutil.copytree(toy["run"], killed_root, ignore=shutil.ignore_patterns("train", "export"))
    killed_cfg = make_config(run_dir=str(killed_root), train=train)
    killed = RunDir(killed_cfg.run_dir)
    fit(clean_cfg, clean)

    calls = {"n": 0}
    real_micro_step = loop._micro_step

    def dying(*args):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise KeyboardInterrupt
        return real_micro_step(*args)

    monkeypatch.setattr(loop, "_micro_step", dying)
    with pytest.raises(KeyboardInterrupt):
        fit(killed_cfg, killed)
    assert progress(killed_cfg, killed) == f"bridge: step {fail_at - 1}/5"
    monkeypatch.setattr(loop, "_micro_step", real_micro_step)
    seen = _recording(monkeypatch)
    fit(killed_cfg, killed)
    assert len(seen) == 5 - (fail_at - 1)  # resumed at the step it reached, in its phase
    a = load_file(killed.export / "bridge" / "model.safetensors")
    b = load_file(clean.export / "bridge" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in b)


def test_a_bridged_variant_needs_synthetic_images(make_config):
    from synthdiv.errors import ConfigError

    with pytest.raises(ConfigError, match="synthetic_fraction > 0"):
        make_config(train={**BASE, "synthetic_fraction": 0})
