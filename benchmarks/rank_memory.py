"""Benchmark: peak RSS of a generate worker that makes one shard, with a small and a 6x-ImageNet-1k plan.

Each worker is a fresh child process running the real generate stage (``runner=torchrun`` with ``WORLD_SIZE`` set
to the number of shards, so rank 0 owns shard 0 only) with the embedded tiny diffusion pipeline; its peak RSS is
``ru_maxrss``. The plans are made by the real plan stage from 1,000 classes of 71 prompts each (as in
``plan_scale.py``), so only the plan's length differs. The baseline, in the same run, is the same worker told to
load every shard's rows (what every rank did before: the whole plan and every prompt in memory).
Goal (issue 16, item 4): peak RSS at 7.7M rows / at 100k rows <= 1.15.

    .venv/bin/python benchmarks/rank_memory.py [--small 100000] [--shard-size 16]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plan_scale import IMAGENET_1K_TRAIN, _setup  # benchmarks/ is the script's folder

logger = logging.getLogger(__name__)

__all__ = ["main"]


def _config(root: Path, multiple: float, shard_size: int):
    from synthdiv.config.loader import config_from_dict
    from synthdiv.models.embedded import tiny_diffusion_dir

    model = {"backend": "diffusers", "model": str(tiny_diffusion_dir()), "device": "cpu", "options": {"steps": 1}}
    return config_from_dict({
        "run_dir": str(root), "plan": {"multiple_of_real": multiple, "shard_size": shard_size},
        "models": {"generator": model},
        "generate": {"runner": "torchrun", "batch_size": 4, "writer_threads": 1, "torch_threads": 1},
    })


def _child(mode: str, root: Path, multiple: float, shard_size: int) -> dict:
    from synthdiv.core.rundir import RunDir

    cfg, run = _config(root, multiple, shard_size), RunDir(root)
    if mode == "plan":
        from synthdiv.stages.plan.stage import build_plan

        return {"images": build_plan(cfg, run)["images"]}
    from synthdiv.stages.generate import producer
    from synthdiv.stages.generate import stage as engine

    if mode == "eager":  # every shard's rows and prompts, as every rank held them before
        load = producer.PlannedWork.load

        def load_all(self, shards):
            load(self, self.shards.tolist())

        producer.PlannedWork.load = load_all
    from synthdiv.stages.plan.reader import plan_shard_counts

    os.environ.update({"RANK": "0", "WORLD_SIZE": str(len(plan_shard_counts(run.plan)[0])), "LOCAL_RANK": "0"})
    start = time.perf_counter()
    summary = engine.generate_images(cfg, run)
    return {"made": summary["made_images"], "planned": summary["planned_images"],
            "seconds": time.perf_counter() - start,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _spawn(mode: str, root: Path, multiple: float, shard_size: int) -> dict:
    from synthdiv.core.rundir import RunDir

    run = RunDir(root)
    for folder in (run.shards, run.manifest):
        shutil.rmtree(folder, ignore_errors=True)
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--root", str(root), "--multiple", str(multiple),
         "--shard-size", str(shard_size)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000, help="rows of the small plan")
    parser.add_argument("--multiple", type=float, default=6.0, help="the large plan: k x ImageNet-1k")
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--child", choices=["plan", "lean", "eager"])
    parser.add_argument("--root", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        print(json.dumps(_child(args.child, args.root, args.multiple, args.shard_size)))
        return
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="rank-bench-") as tmp:
        for label, multiple in (("small", args.small / IMAGENET_1K_TRAIN), ("large", args.multiple)):
            root = Path(tmp) / label
            root.mkdir()
            _setup(root, 1000, 50, 20)
            planned = _spawn("plan", root, multiple, args.shard_size)["images"]
            for mode in ("lean", "eager"):
                results[f"{label}-{mode}"] = r = _spawn(mode, root, multiple, args.shard_size)
                print(f"{label:5s} plan {planned:>9,} rows, {mode:5s} rank: made {r['made']} images in "
                      f"{r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    for mode in ("lean", "eager"):
        ratio = results[f"large-{mode}"]["peak_rss_mb"] / results[f"small-{mode}"]["peak_rss_mb"]
        print(f"{mode:5s}: peak RSS large / small = {ratio:.3f}" + ("  (goal <= 1.15)" if mode == "lean" else ""))


if __name__ == "__main__":
    main()
