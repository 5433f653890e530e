"""The generate stage: plan.parquet -> shards/*.tar + manifest.parquet/, exactly once, by any runner.

On every start the stage scans the shards this worker owns: complete shards are skipped, temporary leftovers of a
killed process are removed, and half-made shards (a tar without its manifest part, a part without its tar, a
truncated or garbage tar) are reported and redone. A SIGKILL at any moment therefore loses at most the shards in
flight, and a rerun makes exactly what is missing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.generate.shards import clean_shard, shard_state

if TYPE_CHECKING:
    from synthdiv.config import RunConfig
    from synthdiv.run import RunDir

logger = logging.getLogger(__name__)

__all__ = ["generate_images", "progress", "is_complete", "pending_shards"]


def pending_shards(run: RunDir, shards: list[int], verify: str) -> list[int]:
    """Scan ``shards``: clean leftovers, report and remove broken ones; returns those still to make."""
    todo = []
    for shard in shards:
        state = shard_state(run, shard, verify)
        clean_shard(run, shard, state)
        if state != "complete":
            todo.append(shard)
    return todo


def generate_images(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """The generate stage: make every planned image of this worker's shards that is not already in the manifest."""
    from synthdiv.generate.producer import PlannedWork
    from synthdiv.generate.runners import DistEnv, assigned_shards, dist_env, run_local, run_ray

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
    if runner == "ray":
        made = run_ray(cfg, run, work, todo)
    else:
        made = run_local(cfg, run, work, todo, env) if todo else {"made_images": 0, "made_shards": 0}
    return {"runner": runner, "rank": env.rank, "world_size": env.world_size, "planned_images": work.total_images,
            "planned_shards": len(work.shards), **made}


def _plan_counts(run: RunDir) -> tuple[np.ndarray, np.ndarray]:
    from synthdiv.generate.producer import plan_shard_counts

    return plan_shard_counts(run.plan)


def progress(cfg: RunConfig, run: RunDir) -> str | None:
    """``"123/456 images, 2/5 shards"`` from the manifest parts present (cheap: a stat and a footer per shard)."""
    if not run.plan.exists():
        return None
    shards, counts = _plan_counts(run)
    done = np.array([shard_state(run, int(s), "size") == "complete" for s in shards], dtype=bool)
    return f"{int(counts[done].sum())}/{int(counts.sum())} images, {int(done.sum())}/{len(shards)} shards"


def is_complete(cfg: RunConfig, run: RunDir) -> bool:
    """Whether every planned shard is complete (the engine marks the stage done only then)."""
    if not run.plan.exists():
        return False
    shards, _ = _plan_counts(run)
    return all(shard_state(run, int(s), "size") == "complete" for s in shards)
