"""Benchmark: what an adaptive round adds, next to generating the round's images (issue 13).

A plan of 1x ImageNet-1k (1,281,167 images, 1,000 classes, 71 prompts per class) is made by the plan stage; then one
round of ``--share`` of it (10 %: 128,117 images) is planned the way ``synthdiv adapt`` plans it: per-class errors
and keep rates (from 1.28M manifest labels and a filter mask), the need, the allocation, the round's rows and the
rewrite of plan.parquet with the round appended. Its time is set against generating the round's images, at the rate
measured in the same run by the generate stage with the embedded tiny diffusion pipeline on this CPU (32x32 images:
a lower bound; a real model on a GPU is far slower per image, see rates.py), and at the rate ``synthdiv estimate``
assumes for Stable Diffusion 1.5 on an H100. The short training of a round is the user's ``train`` config and is
not counted here.

    .venv/bin/python benchmarks/adaptive_round.py [--classes 1000] [--share 0.1] [--gen-images 64]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench_run import write_bench_run  # benchmarks/ is the script's folder
from plan_scale import _setup

logger = logging.getLogger(__name__)

__all__ = ["main"]


def _round(root: Path, share: float) -> dict[str, float]:
    import numpy as np

    from synthdiv.config.loader import config_from_dict
    from synthdiv.config.models import generator_id
    from synthdiv.core.rundir import RunDir
    from synthdiv.stages.plan.adaptive import allocate, append_round, class_need
    from synthdiv.stages.plan.reader import read_plan
    from synthdiv.stages.plan.rounds import grow_plan
    from synthdiv.stages.plan.stage import build_plan
    from synthdiv.stages.prompts.reader import read_prompts
    from synthdiv.stages.score.filters import keep_rates

    run = RunDir(root)
    cfg = config_from_dict({"run_dir": str(root), "plan": {"multiple_of_real": 1}})
    t0 = time.perf_counter()
    planned = build_plan(cfg, run)["images"]
    plan_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    t: dict[str, float] = {}
    start = time.perf_counter()
    labels = read_plan(run, ["class"]).column("class").to_numpy()  # the manifest's labels, once all is made
    n = int(labels.max()) + 1
    errors = rng.beta(2, 5, n)
    rates = keep_rates(labels, {"cross_class": rng.random(len(labels)) < 0.8}, n).column("keep_rate")
    rates = rates.to_numpy(zero_copy_only=False).astype(np.float64)
    t["errors and keep rates"] = time.perf_counter() - start
    start = time.perf_counter()
    total = int(planned * share)
    counts = allocate(total, class_need(errors, rates), 0, None)
    t["need and allocation"] = time.perf_counter() - start
    start = time.perf_counter()
    rows = append_round(read_plan(run, ["prompt_id", "shard"]), read_prompts(run, ["class", "prompt_id"]), counts,
                        cfg.seed, generator_id(cfg.models.generator), cfg.plan.shard_size)
    t["the round's rows"] = time.perf_counter() - start
    start = time.perf_counter()
    grow_plan(run, rows, {"round": 1, "images": total, "counts": counts.tolist()})
    t["plan rewritten with the round"] = time.perf_counter() - start
    return {"planned": planned, "round_images": total, "plan_stage_s": plan_s, **t}


def _generation_rate(root: Path, images: int) -> float:
    """Images per second of the generate stage with the tiny embedded pipeline (4 steps, batch 8), warm."""
    from synthdiv.config.loader import config_from_dict
    from synthdiv.config.models import generator_id
    from synthdiv.core.rundir import RunDir
    from synthdiv.stages.generate.stage import generate_images

    def config(sub: str) -> Any:
        return config_from_dict({
            "run_dir": str(root / sub), "plan": {"shard_size": 16},
            "models": {"generator": {"backend": "diffusers", "model": "embedded", "device": "cpu",
                                     "options": {"steps": 4}}},
            "generate": {"batch_size": 8, "torch_threads": 1},
        })

    warm = config("warm")
    write_bench_run(RunDir(warm.run_dir), 8, 16, generator_id(warm.models.generator))
    generate_images(warm, RunDir(warm.run_dir))  # builds and loads the pipeline once
    cfg = config("timed")
    write_bench_run(RunDir(cfg.run_dir), images, 16, generator_id(cfg.models.generator))
    start = time.perf_counter()
    generate_images(cfg, RunDir(cfg.run_dir))
    return images / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--share", type=float, default=0.1, help="round size as a share of the plan")
    parser.add_argument("--gen-images", type=int, default=64, help="images generated to measure the rate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from synthdiv.engine.throughputs import generation_rate

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _setup(root / "plan", args.classes, 50, 20)
        result = _round(root / "plan", args.share)
        rate = _generation_rate(root, args.gen_images)
    overhead = sum(v for k, v in result.items() if k not in ("planned", "round_images", "plan_stage_s"))
    sd = generation_rate("runwayml/stable-diffusion-v1-5", 512, 512, 25)
    out = {**result, "round_overhead_s": overhead, "tiny_cpu_img_per_s": rate,
           "round_generation_tiny_cpu_s": result["round_images"] / rate,
           "round_generation_sd15_h100_s": result["round_images"] / sd.per_second,
           "sd15_rate_source": sd.source}
    print(json.dumps(out, indent=2, default=str))
    print(f"round of {result['round_images']:,} images on a plan of {result['planned']:,}: overhead "
          f"{overhead:.1f} s; generating it takes {out['round_generation_tiny_cpu_s']:.0f} s with the tiny CPU model "
          f"(ratio {overhead / out['round_generation_tiny_cpu_s']:.4f}) and "
          f"{out['round_generation_sd15_h100_s'] / 3600:.1f} h with SD 1.5 on an H100 at the estimate's rate "
          f"(ratio {overhead / out['round_generation_sd15_h100_s']:.6f})")
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
