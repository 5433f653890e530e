"""Benchmark: synthdiv ``generate`` images/s against a bare loop of diffusers pipeline calls, in the same run.

Both use the embedded tiny pipeline (random weights, 32x32), the same batch size, steps, guidance, per-image seeded
generators, prompts and torch thread count. The bare loop only calls the pipeline (PIL output, nothing stored);
synthdiv also checks every image, encodes JPEGs and writes shards and manifest parts. Rounds alternate (bare,
synthdiv, bare, ...) so load from other processes hits both alike; the best round of each is compared, and the
median of the per-round ratios is printed as well.
synthdiv's rate is the stage's own (model loaded, first image to last shard committed); its wall time with start-up
is printed too. Goal (issue 5): ratio >= 0.9.

    .venv/bin/python benchmarks/generate_cpu.py [--images 96] [--batch-size 8] [--steps 4] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench_run import write_bench_run  # benchmarks/ is the script's folder

logger = logging.getLogger(__name__)

__all__ = ["main"]

def _bare(pipe: Any, work: list[tuple[str, int]], batch: int, steps: int, guidance: float, size: int) -> float:
    import torch

    start = time.perf_counter()
    for lo in range(0, len(work), batch):
        chunk = work[lo : lo + batch]
        gens = [torch.Generator("cpu").manual_seed(s) for _, s in chunk]
        pipe([p for p, _ in chunk], num_inference_steps=steps, guidance_scale=guidance, width=size, height=size,
             generator=gens)
    return len(work) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--shard-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for both (1 on a shared machine)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)

    import torch
    from diffusers import AutoPipelineForText2Image

    from synthdiv.config.loader import config_from_dict
    from synthdiv.config.models import generator_id
    from synthdiv.core.rundir import RunDir
    from synthdiv.models.embedded import tiny_diffusion_dir
    from synthdiv.stages.generate.reader import read_manifest
    from synthdiv.stages.generate.stage import generate_images

    torch.set_num_threads(args.threads)
    model_dir = tiny_diffusion_dir()
    pipe = AutoPipelineForText2Image.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    tmp = Path(tempfile.mkdtemp(prefix="synthdiv-bench-"))
    bare, ours, walls = [], [], []
    try:
        for r in range(args.rounds):
            cfg = config_from_dict({
                "run_dir": str(tmp / f"run{r}"),
                "models": {"generator": {"model": "embedded", "device": "cpu", "options": {"steps": args.steps}}},
                "generate": {"batch_size": args.batch_size, "torch_threads": args.threads},
                "plan": {"shard_size": args.shard_size},
            })
            run = RunDir(cfg.run_dir)
            work = write_bench_run(run, args.images, args.shard_size, generator_id(cfg.models.generator))
            if r == 0:  # warm-up of the bare loop (first calls allocate)
                _bare(pipe, work[: args.batch_size], args.batch_size, args.steps, 7.5, 32)
            bare.append(_bare(pipe, work, args.batch_size, args.steps, 7.5, 32))
            start = time.perf_counter()
            summary = generate_images(cfg, run)
            walls.append(args.images / (time.perf_counter() - start))
            ours.append(summary["images_per_second"])
            assert read_manifest(run).num_rows == args.images
            print(f"round {r}: bare {bare[-1]:.2f} img/s, synthdiv {ours[-1]:.2f} img/s "
                  f"({walls[-1]:.2f} img/s with model load and resume scan)", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "images": args.images, "batch_size": args.batch_size, "steps": args.steps, "threads": args.threads,
        "bare_images_per_second": round(max(bare), 3), "synthdiv_images_per_second": round(max(ours), 3),
        "synthdiv_with_startup_images_per_second": round(max(walls), 3), "ratio": round(max(ours) / max(bare), 3),
        "median_round_ratio": round(statistics.median(o / b for o, b in zip(ours, bare, strict=True)), 3),
        "rounds": {"bare": bare, "synthdiv": ours},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
