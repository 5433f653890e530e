"""``synthdiv adapt``: spend the adaptive budget of the ``adapt`` section in rounds.

A round brings the run up to date (:func:`synthdiv.engine.runner.run_all`: the images of every round so far are made,
scored, trained on and evaluated; what is done is skipped), then reads the chosen variant's per-class error on
``adapt.eval_set`` and the keep rate of its filters, gives each class a need
(:func:`synthdiv.stages.plan.adaptive.class_need`), splits ``adapt.images_per_round`` images by need within the
per-class bounds (:func:`~synthdiv.stages.plan.adaptive.allocate`) and appends them to the plan
(:func:`synthdiv.stages.plan.rounds.grow_plan`). After the last round the run is brought up to date once more.

It can be killed at any moment and rerun: a round is in the plan whole or not at all, a round in the plan is never
planned again, and the stages resume where they stopped, so every image is still made exactly once. The per-class
error is that of the evaluate stage on ``adapt.eval_set``: add a validation folder to ``evaluate.ood`` (e.g. named
``val``) and set ``adapt.eval_set: val`` when the rounds must not see the test set.
"""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.compute as pc

from synthdiv.config.models import generator_id
from synthdiv.core.lock import run_lock
from synthdiv.core.rundir import RunDir
from synthdiv.engine.runner import run_all
from synthdiv.errors import ConfigError, InputError
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.evaluate.reader import read_result
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.plan.adaptive import allocate, append_round, class_need, prompt_yields
from synthdiv.stages.plan.reader import plan_rounds, read_plan
from synthdiv.stages.plan.rounds import grow_plan
from synthdiv.stages.prompts.reader import read_prompts
from synthdiv.stages.score.filters import keep_rates
from synthdiv.stages.score.reader import filter_masks, selected_manifest
from synthdiv.utils.devices import dist_env

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["adapt_run", "add_round", "adapt_variant", "class_errors"]


def adapt_run(cfg: RunConfig) -> dict[str, Any]:
    """Run rounds until the plan holds ``adapt.rounds`` of them, then bring the run up to date; returns a summary."""
    acfg = cfg.adapt
    if not acfg.rounds:
        raise ConfigError("adapt.rounds: 0 rounds asked; set adapt.rounds and adapt.images_per_round")
    if dist_env().distributed:  # every rank would append its own rounds to the one plan
        raise ConfigError("synthdiv adapt: launched as several ranks (torchrun / srun); launch it once, and spread "
                          "the generation over GPUs with generate.runner: ray")
    variant = adapt_variant(cfg)
    _check_eval_set(cfg)
    run = RunDir(cfg.run_dir)
    added = []
    with run_lock(run, "adapt"):  # re-entrant: run_all takes it again, and nobody writes between a round's steps
        while True:
            run_all(cfg)
            done = plan_rounds(run.plan)
            if len(done) >= acfg.rounds:
                break
            added.append(add_round(cfg, run, variant))
    if not added:
        logger.info("adapt: the plan holds its %d rounds and the run is up to date: nothing to do", len(done))
    return {"rounds": len(done), "added_now": len(added), "images_added": sum(r["images"] for r in done),
            "variant": variant}


def adapt_variant(cfg: RunConfig) -> str:
    """The variant whose errors drive the rounds: ``adapt.variant``, else the first that trains on synthetic images."""
    names = cfg.train.variant_names()
    if cfg.adapt.variant is not None:
        if cfg.adapt.variant not in names:
            raise ConfigError(f"adapt.variant: {cfg.adapt.variant!r} is not a train variant; expected one of: "
                              f"{', '.join(names)}")
        return cfg.adapt.variant
    synthetic = [n for n in names if cfg.train.variant(n).synthetic_fraction > 0]
    return (synthetic or names)[0]


def _check_eval_set(cfg: RunConfig) -> None:
    a, e = cfg.adapt, cfg.evaluate
    sets = ([] if e.test_root is None else ["test", *(f"test-{s}" for s in e.shifts)]) + [o.name for o in e.ood]
    if a.eval_set not in sets:
        there = ", ".join(sets) or "none (set evaluate.test_root, or add a validation folder to evaluate.ood)"
        raise ConfigError(f"adapt.eval_set: {a.eval_set!r} is not an evaluate set of this config; expected one of: "
                          f"{there}")


def class_errors(run: RunDir, variant: str, eval_set: str, names: list[str]) -> np.ndarray:
    """Per-class top-1 error of ``variant`` on ``eval_set`` (``eval/<variant>/<set>.json``); a class without test
    images takes the mean error of the others.

    Raises:
        InputError: The result is missing (naming the sets there are), is not readable JSON, or does not list the
            run's classes.
    """
    path = run.eval / variant / f"{eval_set}.json"
    if not path.is_file():
        there = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        raise InputError(f"{path}: not found; adapt.eval_set names an evaluate set of variant {variant!r} "
                         f"(there are: {', '.join(there) or 'none'})")

    report = read_result(path)
    if report is None:
        raise InputError(f"{path}: cannot read it as an evaluate result (JSON object); run `synthdiv evaluate --redo`")
    per_class = report.get("per_class")
    if not isinstance(per_class, dict) or set(per_class) != set(names):
        raise InputError(f"{path}: per_class does not list the run's {len(names)} classes; run `synthdiv evaluate "
                         "--redo`")
    acc = np.array([np.nan if per_class[n] is None else float(per_class[n]) for n in names], dtype=np.float64)
    errors = 1.0 - acc
    known = ~np.isnan(errors)
    return np.where(known, errors, errors[known].mean() if known.any() else 1.0)


def _keep_rates(cfg: RunConfig, run: RunDir, variant: str, num_classes: int) -> np.ndarray:
    """Per-class share of the synthetic images the variant's filters keep (NaN for a class with none yet)."""
    manifest = read_manifest(run)
    masks = filter_masks(cfg, run, manifest, cfg.train.variant(variant).filters) if manifest.num_rows else {}
    rates = keep_rates(manifest.column("class").to_numpy(), masks, num_classes).column("keep_rate")
    return rates.to_numpy(zero_copy_only=False).astype(np.float64)


def add_round(cfg: RunConfig, run: RunDir, variant: str) -> dict[str, Any]:
    """Plan the next round from the run's current results and append it to the plan; returns its record."""
    a = cfg.adapt
    number = len(plan_rounds(run.plan)) + 1
    names = [c["name"] for c in read_classes(run.classes)]
    errors = class_errors(run, variant, a.eval_set, names)
    rates = _keep_rates(cfg, run, variant, len(names))
    need = class_need(errors, rates, a.alpha, a.beta, a.eps, a.floor)
    prompts = read_prompts(run, ["class", "prompt_id"])
    has_prompts = np.bincount(prompts.column("class").to_numpy(), minlength=len(names)) > 0
    upper = np.where(has_prompts, a.images_per_round if a.max_per_class is None else a.max_per_class, 0)
    lower = np.where(has_prompts, a.min_per_class, 0)
    try:
        counts = allocate(a.images_per_round, need, lower, upper)
    except ValueError as exc:
        raise ConfigError(f"adapt.images_per_round: {a.images_per_round} images cannot be split over the "
                          f"{int(has_prompts.sum())} classes with prompts within adapt.min_per_class / max_per_class"
                          f" ({exc})") from None
    planned = np.ceil(counts * a.pool_factor - 1e-9).astype(np.int64) if a.pool_factor > 1 else counts
    weights = None
    if a.within_class == "yield":
        prompts = read_prompts(run, ["class", "prompt_id", "kind", "context", "style"])
        weights = _prompt_yields(cfg, run, variant, prompts)
    plan = read_plan(run, ["prompt_id", "shard"])
    mixture = cfg.models.mixture_shares()
    rows = append_round(plan, prompts, planned, cfg.seed, generator_id(cfg.models.generator), cfg.plan.shard_size,
                        weights, mixture)
    new_shards = np.unique(rows.column("shard").to_numpy()).tolist()
    _clear_unplanned(run, new_shards)
    record = {
        "round": number, "images": int(planned.sum()), "first_shard": new_shards[0], "shards": len(new_shards),
        "variant": variant, "eval_set": a.eval_set, "filters": list(cfg.train.variant(variant).filters),
        "alpha": a.alpha, "beta": a.beta, "eps": a.eps, "floor": a.floor,
        "min_per_class": a.min_per_class, "max_per_class": a.max_per_class,
        "counts": planned.tolist(), "errors": np.round(errors, 5).tolist(),
        "keep_rates": [None if np.isnan(r) else round(float(r), 5) for r in rates],
    }
    if a.pool_factor > 1:  # the score stage keeps ``keep`` of each class's pool, chosen by the round's model
        _snapshot_model(run, variant, number)
        record.update(pool_factor=a.pool_factor, select=a.select, keep=counts.tolist())
    if weights is not None:
        record["within_class"] = a.within_class
    grow_plan(run, rows, record)
    top = np.argsort(-counts, kind="stable")[:3]
    logger.info("adapt round %d: %d images (most to %s), from %s's errors on %s", number, record["images"],
                ", ".join(f"{names[c]} {counts[c]}" for c in top if counts[c]), variant, a.eval_set)
    return record


def _prompt_yields(cfg: RunConfig, run: RunDir, variant: str, prompts: Any) -> np.ndarray:
    """Per prompt row, the yield of its context or style so far: images the variant trains on (its filters and the
    learner selection) per image generated (:func:`synthdiv.stages.plan.adaptive.prompt_yields`)."""
    manifest = read_manifest(run)
    kept_ids = selected_manifest(cfg, run, cfg.train.variant(variant).filters).column("image_id")
    kept = pc.is_in(manifest.column("image_id"), value_set=kept_ids).to_numpy(zero_copy_only=False)
    return prompt_yields(prompts, manifest.column("prompt_id").to_pylist(), kept)


def _snapshot_model(run: RunDir, variant: str, number: int) -> None:
    """Copy the variant's export to where round ``number`` keeps the model it was planned from (atomically: a copy
    left half-made by a kill is made again)."""
    source, target = run.export / variant, run.round_model(number)
    if not (source / "config.json").is_file():
        raise InputError(f"{source}: no exported model; adapt.pool_factor selects a round's images with the variant's "
                         f"model: run `synthdiv train` first")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)  # left by a round planned and then dropped by a redone plan
    shutil.copytree(source, partial)
    partial.rename(target)


def _clear_unplanned(run: RunDir, shards: list[int]) -> None:
    """Remove the files of ``shards`` left by a plan that was redone without them: the round's new images go there."""

    for shard in shards:
        for path in (run.manifest_part(shard), run.shard_tar(shard)):  # the part first: a tar alone is never read
            if path.exists():
                logger.warning("adapt: %s is not in the plan (left by a dropped round): removed", path)
                path.unlink()
