"""Bridged transfer (Li et al., "Is Synthetic Image Useful for Transfer Learning?", ICLR 2024): train on synthetic
images only, then fine-tune on real images only.

Phase 1 is the variant's own schedule (``epochs`` / ``max_steps``, ``lr``) over all-synthetic batches; with
``aux_norm: aux`` they go through the auxiliary norms, so the main norms first see data in phase 2. Phase 2 starts
from phase 1's final weights (its EMA when ``ema_decay`` is set) with a fresh optimizer and schedule of its own
(``finetune_real_epochs`` / ``finetune_real_steps``, ``finetune_real_lr``), optionally with a newly initialised
classifier head (``finetune_reinit_head``, seeded), over all-real batches.

Each phase checkpoints into its own folder (``train/<v>/phase1/checkpoints``, then ``train/<v>/checkpoints``) and
records ``"phase"`` in each checkpoint. On resume, a finished phase 1 loads its last checkpoint and runs no step, so a
kill in either phase resumes at the step it reached and ends with the weights of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from synthdiv.data.mixed import BatchPlan
from synthdiv.stages.train.loop import LoopResult, LoopSetup, run_loop
from synthdiv.stages.train.reader import PHASE1_DIR

if TYPE_CHECKING:
    from synthdiv.config.train import TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["bridge_plans", "run_bridged"]


def bridge_plans(tcfg: TrainConfig, n_real: int, n_syn: int, seed: int, world_size: int,
                 rank: int) -> tuple[BatchPlan, int, BatchPlan, int]:
    """``(synthetic plan, its steps, real plan, its steps)`` of a bridged variant."""
    syn = BatchPlan(0, n_syn, tcfg.batch_size, 1.0, seed, world_size, rank, tcfg.accum_steps)
    real = BatchPlan(n_real, 0, tcfg.batch_size, 0.0, seed, world_size, rank, tcfg.accum_steps)
    steps1 = tcfg.max_steps or tcfg.epochs * syn.steps_per_epoch
    steps2 = tcfg.finetune_real_steps or tcfg.finetune_real_epochs * real.steps_per_epoch
    return syn, steps1, real, steps2


def run_bridged(setup: LoopSetup, real_plan: BatchPlan, real_steps: int) -> tuple[LoopResult, nn.Module]:
    """Phase 1 with ``setup`` (its plan all-synthetic), then phase 2 on ``real_plan`` for ``real_steps`` steps."""
    tcfg = setup.tcfg
    phase1 = dataclasses.replace(setup, tcfg=tcfg.model_copy(update={"synthetic_fraction": 1.0}),
                                 out=setup.out / PHASE1_DIR, phase=1)
    first, final = run_loop(phase1)
    model = setup.model
    if final is not model:  # the EMA weights are what phase 1 made
        model.load_state_dict(final.state_dict())
    if tcfg.finetune_reinit_head:
        torch.manual_seed(setup.seed + 1)  # the same new head on every rank and after every resume
        model.reset_classifier(setup.num_classes)
        model.to(setup.dist.device)
    logger.info("bridged transfer %s: phase 1 (synthetic) done, fine-tuning on real for %d steps", setup.out.name,
                real_steps)
    tcfg2: Any = tcfg.model_copy(update={"synthetic_fraction": 0.0, "lr": tcfg.finetune_real_lr or tcfg.lr,
                                         "max_steps": real_steps})
    second, final = run_loop(dataclasses.replace(setup, tcfg=tcfg2, plan=real_plan, total_steps=real_steps,
                                                 synthetic_weights=None, phase=2))
    result = LoopResult(first.steps + second.steps, first.images + second.images, first.corrupt + second.corrupt,
                        first.skipped + second.skipped, second.last_loss, first.seconds + second.seconds)
    return result, final
