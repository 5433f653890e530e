"""Soft targets for synthetic samples: ``train.synthetic_label_smoothing`` smooths the synthetic block only, the real
block keeps ``train.label_smoothing``, and ``train.synthetic_weight`` scales each synthetic sample's loss by a score
column; leaving both unset trains exactly today's weights."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from synthdiv.config.train import TrainConfig
from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import SCORES_SCHEMA, with_format
from synthdiv.errors import InputError
from synthdiv.stages.score.reader import synthetic_samples
from synthdiv.stages.train.auxnorm import aux_layers, convert_aux_norm
from synthdiv.stages.train.loop import _loss, _micro_step
from synthdiv.stages.train.mix import mix_within_domains, soft_targets
from synthdiv.stages.train.stage import fit
from synthdiv.utils.io import write_parquet_atomic

BASE = {"model": "test_resnet", "img_size": 16, "batch_size": 8, "num_workers": 0, "log_every": 1, "lr": 3e-3,
        "max_steps": 3, "checkpoint_every": 3}


def test_the_loss_of_a_synthetic_sample_is_the_smoothed_cross_entropy_computed_by_hand():
    torch.manual_seed(0)
    logits, labels, n_real, c = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0]), 3, 5
    loss = _loss(logits, labels, None, 0.1, n_real, 0.4)
    logp = F.log_softmax(logits, dim=-1)
    for i in range(6):
        eps = 0.1 if i < n_real else 0.4
        by_hand = (1 - eps) * -logp[i, labels[i]] - eps * logp[i].sum() / c
        assert loss[i].item() == pytest.approx(by_hand.item(), rel=1e-6)
    real = F.cross_entropy(logits[:n_real], labels[:n_real], label_smoothing=0.1, reduction="none")
    assert torch.equal(loss[:n_real], real)  # real samples unchanged


def test_mixup_targets_smooth_each_block_by_its_own_value():
    labels = torch.tensor([0, 1, 2, 3])
    _, y = mix_within_domains(torch.zeros(4, 3, 4, 4), labels, 2, 4, 0.1, 0.0, 0.0, np.random.default_rng(0), 0.5)
    assert torch.equal(y[:2], soft_targets(labels[:2], 4, 0.1))
    assert torch.equal(y[2:], soft_targets(labels[2:], 4, 0.5))
    assert y[3].tolist() == pytest.approx([0.125, 0.125, 0.125, 0.625])


def test_default_options_train_the_same_weights_as_explicitly_disabled_ones(toy, make_config):
    variants = {
        "default": {},
        "explicit": {"synthetic_label_smoothing": 0.1, "synthetic_weight": None, "finetune_real_epochs": 0,
                     "finetune_real_steps": None, "finetune_reinit_head": False},
        "soft": {"synthetic_label_smoothing": 0.4},
        "real": {"synthetic_fraction": 0, "aux_norm": "none"},
        "real-soft": {"synthetic_fraction": 0, "aux_norm": "none", "synthetic_label_smoothing": 0.4},
    }
    cfg = make_config(run_dir=str(toy["run"]), train={**BASE, "label_smoothing": 0.1, "variants": variants})
    run = RunDir(cfg.run_dir)
    fit(cfg, run)
    w = {name: load_file(run.export / name / "model.safetensors") for name in variants}
    assert all(torch.equal(w["default"][k], w["explicit"][k]) for k in w["default"])
    assert not all(torch.equal(w["default"][k], w["soft"][k]) for k in w["default"])  # the option does something
    assert all(torch.equal(w["real"][k], w["real-soft"][k]) for k in w["real"])  # no synthetic block: no change


def _write_scores(cfg, run: RunDir, prob) -> list[str]:
    """A scores.parquet giving each synthetic image ``prob(i)`` in ``prob`` (the other columns null)."""
    ids = [str(k) for k in synthetic_samples(cfg, run, 4).keys]
    cols = {f.name: pa.nulls(len(ids), f.type) for f in SCORES_SCHEMA}
    cols["image_id"] = pa.array(ids, pa.string())
    cols["prob"] = pa.array([prob(i) for i in range(len(ids))], pa.float32())
    schema = with_format(SCORES_SCHEMA, "scores")
    write_parquet_atomic(pa.table([cols[f.name] for f in SCORES_SCHEMA], schema=schema), run.scores)
    return ids


def test_a_weight_per_synthetic_image_scales_its_loss(toy, make_config):
    variants = {"default": {}, "prob": {"synthetic_weight": "prob"}}
    cfg = make_config(run_dir=str(toy["run"]), train={**BASE, "variants": variants})
    run = RunDir(cfg.run_dir)

    def trained(prob) -> dict[str, dict[str, torch.Tensor]]:
        _write_scores(cfg, run, prob)
        for name in variants:
            shutil.rmtree(run.train / name, ignore_errors=True)
        fit(cfg, run)
        return {name: load_file(run.export / name / "model.safetensors") for name in variants}

    def same(a, b) -> bool:
        return all(torch.equal(a[k], b[k]) for k in a)

    ones = trained(lambda i: 1.0)
    assert same(ones["prob"], ones["default"])  # weight 1: the paper's loss, bit for bit
    zeros = trained(lambda i: 0.0)
    assert not same(zeros["prob"], zeros["default"])
    half = trained(lambda i: float(i % 2))  # half the images weigh 0: neither of the two above
    assert not same(half["prob"], half["default"]) and not same(half["prob"], zeros["prob"])
    negative = trained(lambda i: -1.0)  # a negative score counts for nothing, never against its label
    assert same(negative["prob"], zeros["prob"])


def test_a_synthetic_sample_of_weight_0_adds_nothing_to_the_gradient():
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=4)
    convert_aux_norm(model)
    layers = aux_layers(model)
    tcfg = TrainConfig(model="test_resnet", img_size=16, amp="none", label_smoothing=0.1)

    def grads(images: torch.Tensor, weights: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad()
        batch = {"images": images, "labels": torch.tensor([0, 1, 2, 3]), "index": torch.tensor([5, 9, 0, 1]),
                 "n_real": 2}
        loss = _micro_step(model, layers, batch, tcfg, None, torch.device("cpu"), 4, 4.0,
                           np.random.default_rng(0), weights)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    images = torch.randn(4, 3, 16, 16)
    other = images.clone()
    other[2:] = torch.randn(2, 3, 16, 16)  # different synthetic images
    loss, g = grads(images, torch.tensor([0.0, 0.0]))
    loss_other, g_other = grads(other, torch.tensor([0.0, 0.0]))
    assert loss == loss_other and all(torch.equal(a, b) for a, b in zip(g, g_other, strict=True))
    _, g_one = grads(images, torch.tensor([1.0, 0.0]))  # the synthetic block's index [0, 1]: the first weighs 1
    assert not all(torch.equal(a, b) for a, b in zip(g, g_one, strict=True))


def test_a_synthetic_image_without_a_score_is_refused_with_the_file_named(toy, make_config):
    cfg = make_config(run_dir=str(toy["run"]), train={**BASE, "synthetic_weight": "prob"})
    run = RunDir(cfg.run_dir)
    ids = _write_scores(cfg, run, lambda i: float("nan") if i == 3 else 1.0)
    with pytest.raises(InputError, match=f"scores.parquet: image {ids[3]} has no prob"):
        fit(cfg, run)
