"""The generate stage: plan.parquet -> shards/*.tar + manifest.parquet/, exactly once, by any runner.

On every start the stage scans the shards this worker owns: complete shards are skipped, temporary leftovers of a
killed process are removed, and half-made shards (a tar without its manifest part, a part without its tar, a
truncated or garbage tar) are reported and redone. A SIGKILL at any moment therefore loses at most the shards in
flight, and a rerun makes exactly what is missing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.errors import DiskFullError
from synthdiv.stages.generate.plan_check import check_plan
from synthdiv.stages.generate.producer import PlannedWork
from synthdiv.stages.generate.reader import _incomplete, _plan_counts, _states, incomplete_shards, known_shards
from synthdiv.stages.generate.runners import assigned_shards, run_local, run_ray
from synthdiv.stages.generate.shards import clean_shard, shard_state, write_wds_info
from synthdiv.stages.plan.reader import plan_base_digest, plan_rounds
from synthdiv.utils.devices import DistEnv, dist_env
from synthdiv.utils.io import DISK_FULL_ERRNOS, disk_full_error

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["build", "generate_images", "progress", "is_complete", "pending_shards", "disk_full"]


def pending_shards(run: RunDir, shards: list[int], verify: str) -> list[int]:
    """Scan ``shards``: clean leftovers, report and remove broken ones; returns those still to make."""
    todo = []
    for shard in shards:
        state = shard_state(run, shard, verify)
        clean_shard(run, shard, state)
        if state != "complete":
            todo.append(shard)
    return todo


def build(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """The generate stage: make every planned image of this worker's shards that is not already in the manifest."""
    work = PlannedWork(run)
    run.shards.mkdir(parents=True, exist_ok=True)
    run.manifest.mkdir(parents=True, exist_ok=True)
    runner = cfg.generate.runner
    env = dist_env() if runner == "torchrun" else DistEnv()
    mine = assigned_shards(work.shards, env)
    todo = pending_shards(run, mine, cfg.generate.verify_shards)
    work.load(todo)  # only this worker's rows and prompts; a plan naming a missing prompt fails before any image
    logger.info(
        "generate: %d planned images in %d shards; %s%d shard(s) to make", work.total_images, len(work.shards),
        f"rank {env.rank}/{env.world_size} owns {len(mine)}, " if env.world_size > 1 else "", len(todo),
    )
    try:
        if runner == "ray":
            made = run_ray(cfg, run, work, todo)
        else:
            made = run_local(cfg, run, work, todo, env) if todo else {"made_images": 0, "made_shards": 0}
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise disk_full(exc, run.shards) from None
        raise
    planned = known_shards(run)
    if not _incomplete(run, planned):  # the last worker to finish lists every shard for timm's and HF's readers
        write_wds_info(run, shards=planned.tolist())
    return {"runner": runner, "rank": env.rank, "world_size": env.world_size, "planned_images": work.total_images,
            "planned_shards": len(work.shards), **made}


def disk_full(exc: OSError, folder: Path) -> DiskFullError:
    """The one-line error for a write that found the disk full: the path, the space left, and how to resume."""
    return disk_full_error(exc, folder, "the complete shards are kept: free some space and rerun `synthdiv generate` "
                                        "to resume")


def progress(cfg: RunConfig, run: RunDir) -> str | None:
    """``"123/456 images, 2/5 shards"`` from the manifest parts present (cheap: a stat and a footer per shard)."""
    if not run.plan.exists():
        return None
    shards, counts = _plan_counts(run)

    done = np.array([s == "complete" for s in _states(run, shards)], dtype=bool)
    rounds = len(plan_rounds(run.plan))
    return (f"{int(counts[done].sum())}/{int(counts.sum())} images, {int(done.sum())}/{len(shards)} shards"
            + (f", {rounds} adaptive round{'s' if rounds > 1 else ''}" if rounds else ""))


def is_complete(cfg: RunConfig, run: RunDir) -> bool:
    """Whether every planned shard is complete. The engine marks the stage done only then, and redoes a done stage
    whose shards were lost or damaged since (``status`` shows it partial)."""
    if not run.plan.exists():
        return False
    return not incomplete_shards(run)


generate_images = build  # the name callers used in synthdiv 0.1


def check(cfg: RunConfig, run: RunDir) -> None:
    """Refuse a plan that does not read as one, before anything is written (:func:`check_plan`)."""
    check_plan(cfg, run)


def input_digests(run: RunDir) -> dict[str, str]:
    """The plan enters the fingerprint by its base digest: a plan that only grew by adaptive rounds leaves the shards
    made so far valid (:mod:`synthdiv.stages.plan.rounds`)."""
    return {"plan": plan_base_digest(run.plan)} if run.plan.exists() else {}
