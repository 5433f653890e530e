"""Soft targets for synthetic samples: ``train.synthetic_label_smoothing`` smooths the synthetic block only, the real
block keeps ``train.label_smoothing``, and leaving it unset trains exactly today's weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from synthdiv.core.rundir import RunDir
from synthdiv.stages.train.loop import _loss
from synthdiv.stages.train.mix import mix_within_domains, soft_targets
from synthdiv.stages.train.stage import fit

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


def test_unset_synthetic_smoothing_trains_the_same_weights_as_an_explicit_equal_value(toy, make_config):
    variants = {
        "default": {}, "explicit": {"synthetic_label_smoothing": 0.1}, "soft": {"synthetic_label_smoothing": 0.4},
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
