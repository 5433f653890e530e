"""The training loop of one variant: mixed batches, aux-norm routing, AMP, accumulation, EMA, checkpoints, DDP.

Every random choice is a function of (seed, step): the batch order (:class:`~synthdiv.data.mixed.BatchPlan`), each
sample's augmentation, mixup, and the torch RNG (dropout, drop-path) reseeded at every step from (seed, rank, step).
A run killed at any point resumes from its newest checkpoint and ends with the weights an uninterrupted run has.

A step whose gradients are not finite (a bf16/fp16 overflow, a learning rate that blew up) is skipped: the weights,
the optimizer and the norm statistics stay as they were, the loss is logged as null and counted in ``skipped``, and
``train.max_nonfinite_steps`` such steps in a row stop the run with :class:`~synthdiv.errors.TrainingDivergedError`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthdiv.data.mixed import BatchPlan, make_loader
from synthdiv.errors import MissingDependencyError, TrainingDivergedError
from synthdiv.stages.train.auxnorm import AuxNorm, aux_layers, route
from synthdiv.stages.train.checkpoint import load_latest_checkpoint, prune_checkpoints, save_checkpoint
from synthdiv.stages.train.distributed import DistInfo
from synthdiv.stages.train.mix import mix_within_domains
from synthdiv.utils.io import atomic_write_jsonl, read_jsonl
from synthdiv.utils.progress import Progress

if TYPE_CHECKING:
    from synthdiv.config.train import TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["LoopResult", "LoopSetup", "run_loop", "memory_format", "cosine_lambda", "amp_dtype"]


@dataclass
class LoopResult:
    steps: int
    images: int
    corrupt: int
    skipped: int
    last_loss: float | None
    seconds: float


def cosine_lambda(total: int, warmup: int, floor: float) -> Any:
    """LR multiplier per optimizer step: linear warmup, then cosine from 1 to ``floor``."""

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.amp`` on ``device`` (None: full precision)."""
    if mode == "none" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


def _step_seed(seed: int, rank: int, step: int) -> int:
    return ((seed * 1_000_003 + rank) * 2_147_483_647 + step) % (1 << 62)


def _loss(logits: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor | None, smoothing: float,
          n_real: int = 0, syn_smoothing: float | None = None) -> torch.Tensor:
    """Per-sample cross-entropy against ``soft`` targets, or hard labels smoothed by ``smoothing`` (the synthetic
    block ``[n_real:]`` by ``syn_smoothing`` when given)."""
    logits = logits.float()
    if soft is not None:
        return -(soft * F.log_softmax(logits, dim=-1)).sum(-1)
    if syn_smoothing is None:
        return F.cross_entropy(logits, labels, label_smoothing=smoothing, reduction="none")
    real = F.cross_entropy(logits[:n_real], labels[:n_real], label_smoothing=smoothing, reduction="none")
    syn = F.cross_entropy(logits[n_real:], labels[n_real:], label_smoothing=syn_smoothing, reduction="none")
    return torch.cat([real, syn])


class _TrainState:
    """Optimizer, LR schedule, grad scaler and EMA of a model: built from the config, saved and restored together."""

    def __init__(self, tcfg: TrainConfig, model: nn.Module, total_steps: int, device: torch.device) -> None:
        from timm.optim import create_optimizer_v2

        self.tcfg, self.model = tcfg, model
        opt = tcfg.optimizer
        if opt == "sgd" and tcfg.momentum == 0:
            opt = "momentum"  # timm's "sgd" is Nesterov SGD, which torch refuses without momentum
        self.optimizer = create_optimizer_v2(model, opt=opt, lr=tcfg.lr, weight_decay=tcfg.weight_decay,
                                             momentum=tcfg.momentum if tcfg.optimizer == "sgd" else None)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, cosine_lambda(total_steps, tcfg.warmup_steps, tcfg.min_lr_ratio)
        )
        self.ema = None
        if tcfg.ema_decay:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(model, decay=tcfg.ema_decay)
        self.dtype = amp_dtype(tcfg.amp, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        # the norm statistics a skipped step must not keep (its forward pass already updated them)
        self.buffers = [b for b in model.buffers() if b.is_floating_point()]
        self.saved_buffers = [b.detach().clone() for b in self.buffers]

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.module.load_state_dict(state["ema"])

    def save_buffers(self) -> None:
        """Remember the norm statistics before a step's forward passes."""
        if self.buffers:
            torch._foreach_copy_(self.saved_buffers, self.buffers)

    def step(self, step: int) -> bool:
        """Clip, step the optimizer and the schedule, update the EMA.

        Returns:
            False if the gradients were not finite: the update is skipped (the schedule still advances, so the
            data order and the LR stay those of the step count) and the norm statistics are restored.
        """
        self.scaler.unscale_(self.optimizer)  # a no-op without fp16
        if self.tcfg.grad_clip:
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.tcfg.grad_clip)
        else:
            norm = nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None])
        finite = bool(torch.isfinite(norm))  # one device sync per step; the fp16 scaler makes one anyway
        if finite:
            self.scaler.step(self.optimizer)
        elif self.buffers:
            torch._foreach_copy_(self.buffers, self.saved_buffers)
        self.scaler.update()  # fp16: backs the scale off after an overflow
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if finite and self.ema is not None:
            self.ema.update(self.model, step=step)
        return finite

    @property
    def final_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model


@dataclass
class LoopSetup:
    """Everything one training run of a variant needs (built once by :func:`synthdiv.stages.train.stage.train_variant`).

    Attributes:
        tcfg: The variant's train config.
        model: The timm model (with auxiliary norms where they apply), on ``dist.device``.
        plan: The per-rank batch plan (real block, then synthetic block).
        real: The real SampleSet (after the low-data / long-tail protocol).
        synthetic: The synthetic SampleSet (after the filters).
        transform: The training transform.
        out: ``train/<variant>``: checkpoints and metrics.jsonl.
        dist: This rank and its device.
        num_classes: Number of classes.
        total_steps: Optimizer steps of the whole run.
        seed: The run seed.
        validate: A :class:`~synthdiv.stages.train.validate.Validator`, or None.
        synthetic_weights: A loss weight per synthetic sample (``train.synthetic_weight``), on the device, or None.
        phase: The phase of a bridged variant (1 synthetic, 2 real), recorded in its checkpoints; None otherwise.
    """

    tcfg: TrainConfig
    model: nn.Module
    plan: BatchPlan
    real: Any
    synthetic: Any
    transform: Any
    out: Path
    dist: DistInfo
    num_classes: int
    total_steps: int
    seed: int
    validate: Any = None
    synthetic_weights: torch.Tensor | None = None
    phase: int | None = None


def memory_format(tcfg: TrainConfig, device: torch.device) -> torch.memory_format:
    """channels_last on CUDA when ``train.channels_last`` (on the CPU, channels_last BatchNorm is ~3x slower)."""
    return torch.channels_last if tcfg.channels_last and device.type == "cuda" else torch.contiguous_format


def run_loop(setup: LoopSetup) -> tuple[LoopResult, nn.Module]:
    """Train ``setup.model`` for ``setup.total_steps`` optimizer steps from the newest checkpoint in
    ``setup.out/checkpoints``.

    ``setup.validate``, when given, measures the model to export at each epoch's end and at the last step, on the
    main rank, and writes a ``val`` row to ``metrics.jsonl``.

    Returns:
        The result and the model to export (the EMA model when ``tcfg.ema_decay`` is set).
    """
    tcfg, model, plan, out, dist = setup.tcfg, setup.model, setup.plan, setup.out, setup.dist
    num_classes, total_steps, seed, validate = setup.num_classes, setup.total_steps, setup.seed, setup.validate
    device = dist.device
    layers = aux_layers(model)
    state = _TrainState(tcfg, model, total_steps, device)
    ckpt_dir = out / "checkpoints"
    start, corrupt, skipped, in_a_row = 0, 0, 0, 0
    saved = load_latest_checkpoint(ckpt_dir)
    if saved is not None:
        state.load(saved)
        start, corrupt = int(saved["step"]), int(saved.get("corrupt", 0))
        skipped, in_a_row = int(saved.get("skipped", 0)), int(saved.get("nonfinite_in_a_row", 0))
        logger.info("resuming %s from step %d of %d", out.name, start, total_steps)
    net: nn.Module = model
    if dist.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=bool(layers)
        )
    metrics = _Metrics(out / "metrics.jsonl", start, dist.is_main, tcfg.tensorboard)
    loader = make_loader(setup.real, setup.synthetic, plan, setup.transform, start, total_steps,
                         num_workers=tcfg.num_workers, pin_memory=device.type == "cuda")
    denom = (plan.n_real + tcfg.synthetic_loss_weight * plan.n_syn) / dist.world_size
    model.train()
    t0, images, last_loss = time.perf_counter(), 0, None
    batches = iter(loader)
    try:
        with _progress(dist.is_main, out.name, start, total_steps) as advance:
            for step in range(start, total_steps):
                torch.manual_seed(_step_seed(seed, dist.rank, step))
                step_loss = torch.zeros((), device=device)
                state.save_buffers()
                for micro in range(plan.accum_steps):
                    batch = next(batches)
                    sync = micro == plan.accum_steps - 1 or not dist.distributed
                    with nullcontext() if sync else net.no_sync():  # type: ignore[operator]
                        rng = np.random.default_rng([seed, step, micro, dist.rank])
                        loss = _micro_step(net, layers, batch, tcfg, state.dtype, device, num_classes, denom, rng,
                                           setup.synthetic_weights)
                        if loss is not None:
                            state.scaler.scale(loss).backward()
                            step_loss += loss.detach().float()
                    corrupt += batch["corrupt"]  # samples this rank skipped (no device sync)
                    images += batch["images"].shape[0] if batch["images"] is not None else 0
                done = step + 1
                if state.step(step):
                    in_a_row = 0
                else:
                    skipped, in_a_row = skipped + 1, in_a_row + 1
                    logger.warning("step %d: non-finite gradients, update skipped (%d in a row)", done, in_a_row)
                    if in_a_row > tcfg.max_nonfinite_steps:
                        raise TrainingDivergedError(
                            f"train {out.name}: {in_a_row} steps in a row with non-finite gradients (the last at step "
                            f"{done}, above train.max_nonfinite_steps={tcfg.max_nonfinite_steps}); lower train.lr, set "
                            f"train.grad_clip or train.warmup_steps, or use train.amp=none"
                        )
                if done % tcfg.log_every == 0 or done == total_steps:
                    if dist.distributed:
                        torch.distributed.all_reduce(step_loss)
                    loss = float(step_loss) / dist.world_size
                    last_loss = loss if math.isfinite(loss) else None  # JSON has no NaN
                    metrics.write({"step": done, "loss": last_loss, "lr": state.scheduler.get_last_lr()[0],
                                   "epoch": done / plan.steps_per_epoch, "corrupt": corrupt, "skipped": skipped,
                                   "images_per_s": images * dist.world_size / max(1e-9, time.perf_counter() - t0)})
                if validate is not None and dist.is_main and (done % plan.steps_per_epoch == 0 or done == total_steps):
                    metrics.write({"step": done, "epoch": done / plan.steps_per_epoch, "split": "val",
                                   **validate(state.final_model, device, state.dtype)})
                if dist.is_main and (done % tcfg.checkpoint_every == 0 or done == total_steps):
                    extra = {"phase": setup.phase} if setup.phase is not None else {}
                    save_checkpoint(ckpt_dir, done, {**state.state_dict(), "corrupt": corrupt, "skipped": skipped,
                                                     "nonfinite_in_a_row": in_a_row, **extra})
                    prune_checkpoints(ckpt_dir, tcfg.keep_checkpoints)
                advance()
    finally:
        metrics.close()
    result = LoopResult(total_steps - start, images, corrupt, skipped, last_loss, time.perf_counter() - t0)
    return result, state.final_model


def _micro_step(
    net: nn.Module, layers: list[AuxNorm], batch: dict[str, Any], tcfg: TrainConfig, dtype: torch.dtype | None,
    device: torch.device, num_classes: int, denom: float, rng: np.random.Generator,
    syn_weights: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """The weighted loss of one micro-batch, divided by the nominal per-rank batch weight ``denom``.

    A synthetic sample's loss is scaled by ``train.synthetic_loss_weight`` and, when ``syn_weights`` is given, by its
    own weight; ``denom`` stays the nominal one, so a sample of weight 0 adds nothing to the gradient.
    """
    if batch["images"] is None:  # every sample was corrupt
        if not isinstance(net, nn.parallel.DistributedDataParallel):
            return None
        # the other ranks wait for this one's gradients: a zero-weight forward/backward keeps them in step
        logger.warning("a micro-batch with no readable image on this rank: zero-weight step")
        with route(layers, 2):
            return net(torch.zeros(2, 3, tcfg.img_size, tcfg.img_size, device=device)).float().sum() * 0.0
    fmt = memory_format(tcfg, device)
    images = batch["images"].to(device, non_blocking=True).contiguous(memory_format=fmt)
    labels = batch["labels"].to(device, non_blocking=True)
    n_real = batch["n_real"]
    soft = None
    syn_smoothing = tcfg.synthetic_label_smoothing
    if syn_smoothing == tcfg.label_smoothing:
        syn_smoothing = None  # the same targets: keep the one-call loss (and today's weights, bit for bit)
    if tcfg.mixup_alpha > 0 or tcfg.cutmix_alpha > 0:
        images, soft = mix_within_domains(images, labels, n_real, num_classes, tcfg.label_smoothing,
                                          tcfg.mixup_alpha, tcfg.cutmix_alpha, rng, syn_smoothing)
    autocast = torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
    with route(layers, n_real, images.shape[0]), autocast:
        logits = net(images)
    per_sample = _loss(logits, labels, soft, tcfg.label_smoothing, n_real, syn_smoothing)
    if tcfg.synthetic_loss_weight != 1.0 or syn_weights is not None:
        weights = torch.ones_like(per_sample)
        weights[n_real:] = tcfg.synthetic_loss_weight
        if syn_weights is not None:
            weights[n_real:] *= syn_weights[batch["index"][n_real:].to(device)]
        per_sample = per_sample * weights
    return per_sample.sum() / denom


class _Metrics:
    """``metrics.jsonl`` (rows after the resume step are dropped) and, optionally, TensorBoard."""

    def __init__(self, path: Path, start: int, enabled: bool, tensorboard: bool) -> None:
        self.path, self.enabled, self.tb = path, enabled, None
        if not enabled:
            return

        rows = [r for r in read_jsonl(path) if r.get("step", 0) <= start] if path.exists() else []
        atomic_write_jsonl(path, rows)
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - an append-only log, closed in close()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise MissingDependencyError("train.tensorboard: pip install tensorboard") from None
            self.tb = SummaryWriter(str(path.parent / "tensorboard"), purge_step=start + 1)

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.fh.write(json.dumps(row) + "\n")
        self.fh.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "split") and v is not None:
                    self.tb.add_scalar(f"train/{k}", v, row["step"])
        if row.get("split") == "val":
            logger.info("step %d validation top-1 %s over %d images", row["step"], row["val_top1"], row["val_images"])
            return
        loss = "(not finite)" if row["loss"] is None else f"{row['loss']:.4f}"
        logger.info("step %d loss %s lr %.3g", row["step"], loss, row["lr"])

    def close(self) -> None:
        if self.enabled:
            self.fh.close()
            if self.tb is not None:
                self.tb.close()


class _progress:
    """A rich progress bar on the main rank; a no-op elsewhere. ``with _progress(...) as advance: advance()``."""

    def __init__(self, enabled: bool, name: str, start: int, total: int) -> None:
        self.enabled, self.name, self.start, self.total = enabled, name, start, total

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda: None

        self.bar = Progress(transient=True)
        self.bar.__enter__()
        task = self.bar.add_task(f"train {self.name}", total=self.total, completed=self.start)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)
