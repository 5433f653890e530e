"""The ``train`` stage: train and export every variant of ``train.variants``.

Layout in the run directory, per variant ``V``::

    train/V/checkpoints/step-NNNNNNNN.pt   resumable checkpoints (newest kept)
    train/V/metrics.jsonl                   one row per logged step; a "split": "val" row at each epoch's end
    train/V/data.json                       real / synthetic counts, per-class real counts (long-tail splits)
    train/V/done.json                       the variant's summary, written last: the variant is finished
    export/V/{config.json,model.safetensors}  the plain timm model (aux norms stripped)

A finished variant is skipped when the stage resumes; a started one resumes from its newest checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdiv.core.rundir import RunDir
from synthdiv.data.images import build_transforms
from synthdiv.data.mixed import BatchPlan, block_sizes
from synthdiv.data.protocols import RealProtocol, apply_protocol
from synthdiv.data.real import real_dir_roots, real_samples
from synthdiv.data.sources import SampleSet
from synthdiv.errors import ConfigError
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.generate.reader import require_complete
from synthdiv.stages.score.reader import synthetic_samples, synthetic_weights
from synthdiv.stages.train.reader import PHASE1_DIR, read_data_info
from synthdiv.stages.train.validate import build_validator
from synthdiv.utils.devices import device_name
from synthdiv.utils.io import atomic_write_json, read_jsonl

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.config.train import TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["build", "fit", "progress", "headline", "train_variant", "prepare_data", "build_model"]


def build(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """Train every variant of ``cfg.train`` (stage entry point); returns ``{variant: summary}``."""
    return {name: train_variant(cfg, run, name) for name in cfg.train.variant_names()}


def headline(summary: dict[str, Any]) -> str:
    """The stage's summary on one line, per variant: ``"real: 1,200 steps, loss 0.82, val top-1 41.2%; ..."``."""
    parts = []
    for name, s in summary.items():
        if not isinstance(s, dict):
            continue
        text = f"{name}: {s.get('steps', 0):,} steps"
        if s.get("final_loss") is not None:
            text += f", loss {s['final_loss']:.3g}"
        top1 = s.get("val_top1")
        text += f", val top-1 {100 * top1:.1f}%" if top1 is not None else ", no validation"
        parts.append(text)
    return "; ".join(parts)


def _last_val_top1(metrics: Path) -> float | None:
    """top-1 of the last ``val`` row of a variant's ``metrics.jsonl`` (None without one)."""
    rows = read_jsonl(metrics) if metrics.is_file() else []
    vals = [r.get("val_top1") for r in rows if r.get("split") == "val"]
    return vals[-1] if vals else None


def progress(cfg: RunConfig, run: RunDir) -> str | None:
    """``"real: done, real+syn: step 120"`` from the files of each variant (nothing is imported or loaded)."""
    import re

    parts = []
    for name in cfg.train.variant_names():
        folder = run.train / name
        if (folder / "done.json").exists():
            parts.append(f"{name}: done")
            continue
        def newest(ckpts: Path) -> int:
            return max((int(m.group(1)) for p in ckpts.glob("step-*.pt")
                        if (m := re.match(r"step-(\d+)\.pt$", p.name))), default=0)

        info = read_data_info(run, name)
        total = f"/{info.get('total_steps', '?')}" if info is not None else ""
        step = newest(folder / "checkpoints")
        if info is not None and "phase_steps" in info:  # bridged: phase 1's steps, then phase 2's
            step = info["phase_steps"][0] + step if step else newest(folder / PHASE1_DIR / "checkpoints")
        parts.append(f"{name}: step {step}{total}")
    return ", ".join(parts) or None


def variant_blocks(tcfg: TrainConfig) -> tuple[int, int]:
    """``(n_real, n_syn)``: the real and synthetic blocks of a variant's global batch, decided once per variant
    (what data is loaded, whether aux norms are made, and the batch plan all follow from it)."""
    return block_sizes(tcfg.batch_size, tcfg.synthetic_fraction)


def prepare_data(cfg: RunConfig, tcfg: TrainConfig, run: RunDir, classes: list[dict[str, Any]],
                 blocks: tuple[int, int] | None = None) -> tuple[Any, Any]:
    """The real set (after the low-data / long-tail protocols) and the synthetic set of one variant; a block of
    size 0 (``blocks``, default :func:`variant_blocks`) loads nothing."""
    n_real, n_syn = blocks or variant_blocks(tcfg)
    roots = real_dir_roots(cfg)  # a real_dir outside them (a foreign classes.jsonl) is refused
    real = real_samples(classes, tcfg.real_root, run.cache / "tar-index", roots) if n_real else SampleSet.empty()
    # the plan tops up from the same seeded counts (synthdiv.stages.plan.budget.training_real_counts)
    real = apply_protocol(real, len(classes), RealProtocol.from_train(tcfg), cfg.seed)
    if n_syn and tcfg.synthetic_root is None:
        require_complete(run, "train")  # a lost or damaged shard would silently shrink the synthetic set
    synthetic = (synthetic_samples(cfg, run, len(classes), tcfg.synthetic_root, tcfg.filters) if n_syn
                 else SampleSet.empty())  # the variant's own filters
    return real, synthetic


def build_model(tcfg: TrainConfig, num_classes: int, blocks: tuple[int, int] | None = None) -> Any:
    """The timm model of a variant, with auxiliary norms when ``aux_norm: aux`` and both domains are in a batch
    (``blocks``, default :func:`variant_blocks`)."""
    import timm

    from synthdiv.stages.train.auxnorm import convert_aux_norm

    kwargs = dict(tcfg.model_kwargs)
    default = timm.models.get_pretrained_cfg(tcfg.model)
    if default is not None and default.fixed_input_size and tuple(default.input_size[-2:]) != (tcfg.img_size,) * 2:
        kwargs.setdefault("img_size", tcfg.img_size)  # a ViT's patch grid is fixed at build time
    try:
        model = timm.create_model(tcfg.model, pretrained=False, num_classes=num_classes, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise ConfigError(f"train.model: {tcfg.model!r} is not a timm model (see timm.list_models())") from None
        raise
    except TypeError as exc:
        raise ConfigError(f"train.model_kwargs: {exc}") from None
    n_real, n_syn = blocks or variant_blocks(tcfg)
    if tcfg.aux_norm == "aux":
        if n_real and n_syn:
            convert_aux_norm(model, tcfg.aux_norm_layers)
        else:
            logger.info("aux norm: batches hold one domain only (synthetic_fraction %s); not converted",
                        tcfg.synthetic_fraction)
    return model


def train_variant(cfg: RunConfig, run: RunDir, name: str) -> dict[str, Any]:
    """Train, checkpoint and export one variant; a finished variant returns its recorded summary."""
    import torch

    from synthdiv.stages.train.auxnorm import aux_norm_counts
    from synthdiv.stages.train.bridge import bridge_plans, run_bridged
    from synthdiv.stages.train.distributed import setup_distributed
    from synthdiv.stages.train.export import export_model
    from synthdiv.stages.train.loop import LoopSetup, memory_format, run_loop

    tcfg = cfg.train.variant(name)
    out = run.train / name
    if (out / "done.json").exists():
        import json

        logger.info("train %s: done earlier; skipped", name)
        return json.loads((out / "done.json").read_text(encoding="utf-8"))
    if tcfg.torch_threads:
        torch.set_num_threads(tcfg.torch_threads)
    dist = setup_distributed(tcfg.device)
    classes = read_classes(run.classes)
    num_classes = len(classes)
    # bridged: both domains, one phase each (the aux norms are made, and both sets are loaded)
    blocks = (tcfg.batch_size, tcfg.batch_size) if tcfg.bridged else variant_blocks(tcfg)
    real, synthetic = prepare_data(cfg, tcfg, run, classes, blocks)
    if tcfg.bridged:
        plan, total1, real_plan, total2 = bridge_plans(tcfg, len(real), len(synthetic), cfg.seed, dist.world_size,
                                                       dist.rank)
        total = total1 + total2
    else:
        plan = BatchPlan(len(real), len(synthetic), tcfg.batch_size, tcfg.synthetic_fraction, cfg.seed,
                         dist.world_size, dist.rank, tcfg.accum_steps)
        total = tcfg.max_steps or tcfg.epochs * plan.steps_per_epoch
    torch.manual_seed(cfg.seed)
    model = build_model(tcfg, num_classes, blocks)
    model.to(dist.device, memory_format=memory_format(tcfg, dist.device))
    mean, std = model.pretrained_cfg.get("mean"), model.pretrained_cfg.get("std")
    transform = build_transforms(tcfg, True, mean, std)
    counts = real.class_counts(num_classes).tolist()
    if dist.is_main:
        atomic_write_json(out / "data.json", {
            "real_images": len(real), "synthetic_images": len(synthetic), "real_per_class": counts,
            "synthetic_per_class": synthetic.class_counts(num_classes).tolist(), "block_sizes": [plan.n_real,
            plan.n_syn], "steps_per_epoch": plan.steps_per_epoch, "total_steps": total,
            **({"phase_steps": [total1, total2]} if tcfg.bridged else {}),
        })
    logger.info("train %s: %d real + %d synthetic images, blocks %d+%d, %d steps", name, len(real), len(synthetic),
                plan.n_real, plan.n_syn, total)

    validate = build_validator(cfg, tcfg, classes, build_transforms(tcfg, False, mean, std))
    weights = None
    if tcfg.synthetic_weight and len(synthetic):
        weights = torch.from_numpy(synthetic_weights(run, tcfg.synthetic_weight, synthetic.keys)).to(dist.device)
    if tcfg.bridged:
        result, final = run_bridged(LoopSetup(tcfg, model, plan, real, synthetic, transform, out, dist, num_classes,
                                              total1, cfg.seed, validate, weights), real_plan, total2)
    else:
        result, final = run_loop(LoopSetup(tcfg, model, plan, real, synthetic, transform, out, dist, num_classes,
                                           total, cfg.seed, validate, weights))
    summary = {
        "steps": total, "real_images": len(real), "synthetic_images": len(synthetic), "corrupt": result.corrupt,
        "skipped_steps": result.skipped, "final_loss": result.last_loss, "aux_norm": tcfg.aux_norm,
        "aux_norm_layers": aux_norm_counts(model),
        "synthetic_fraction": tcfg.synthetic_fraction, "model": tcfg.model, "export": str(run.export / name),
        "val_top1": _last_val_top1(out / "metrics.jsonl"),
        # this rank's rate on its own device, where it was measured (``synthdiv estimate`` reads both)
        "images_per_second": round(result.images / result.seconds, 2) if result.images and result.seconds else None,
        "device": device_name(dist.device),
    }
    if dist.is_main:
        data_config = {"input_size": (3, tcfg.img_size, tcfg.img_size), "crop_pct": tcfg.eval_crop_pct,
                       "mean": tuple(mean), "std": tuple(std)}
        export_model(final, run.export / name, [c["name"] for c in classes], data_config,
                     extra={"synthdiv": {"variant": name, "run": str(run.root)}})
        atomic_write_json(out / "done.json", summary)
    if dist.distributed:
        torch.distributed.barrier()
    return summary


fit = build  # the name callers used in synthdiv 0.1
