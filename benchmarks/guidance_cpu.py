"""Benchmark: time per image of per-image guidance and of the guidance interval against the model's own guidance,
on the same embedded tiny model, in the same run.

Three arms through synthdiv's DiffusersGenerator, same prompts, seeds, batch size, steps and one torch thread:
``model`` (the pipeline's one guidance scale on every step: the baseline), ``per-image`` (a scale per image from
``generate.sampling.guidance_range``: the same denoiser work, combined per row) and ``interval`` (per-image scales,
guided only over ``--interval`` of the schedule: the conditional half alone elsewhere). The rows entering the UNet
are counted by a hook on its first layer. Rounds alternate and the best round of each arm is compared; the median of
the per-round ratios is printed too. The text encoder and the VAE do not shrink with the interval, so on the tiny
model (where they weigh more than on SD 1.5) the time saved is less than the UNet rows saved.

    .venv/bin/python benchmarks/guidance_cpu.py [--images 64] [--batch-size 8] [--steps 8] [--interval 0.25 0.75]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--interval", type=float, nargs=2, default=(0.25, 0.75))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("SYNTHDIV_CACHE", str(Path(tempfile.gettempdir()) / "synthdiv-bench-cache"))
    import numpy as np
    import torch

    from synthdiv.config.models import GeneratorSpec
    from synthdiv.config.sampling import SamplingConfig
    from synthdiv.models.generators import create_generator
    from synthdiv.stages.generate.sampling import draw_guidance

    torch.set_num_threads(args.threads)
    gen = create_generator(GeneratorSpec(model="embedded", device="cpu", options={"steps": args.steps}))
    prompts = [f"a photo of a bag, variant {i}" for i in range(args.images)]
    seeds = list(range(args.images))
    scales = draw_guidance(SamplingConfig(guidance_range=(1.5, 7.5)), np.asarray(seeds)).tolist()
    rows = {"n": 0}
    gen.pipe.unet.conv_in.register_forward_pre_hook(lambda m, a: rows.__setitem__("n", rows["n"] + a[0].shape[0]))
    arms = {"model": {}, "per-image": {"guidances": scales}, "interval": {"guidances": scales,
                                                                        "interval": tuple(args.interval)}}
    bs = args.batch_size

    def run(arm: str) -> float:
        extra = arms[arm]
        t0 = time.perf_counter()
        for lo in range(0, args.images, bs):
            part = {k: (v[lo : lo + bs] if k == "guidances" else v) for k, v in extra.items()}
            gen.generate(prompts[lo : lo + bs], seeds[lo : lo + bs], None, **part)
        return (time.perf_counter() - t0) / args.images

    unet_rows = {}
    for arm in arms:  # warm-up, and the rows each arm sends through the UNet
        rows["n"] = 0
        run(arm)
        unet_rows[arm] = rows["n"] / args.images
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    for _ in range(args.rounds):
        for arm in arms:
            times[arm].append(run(arm))
    base = times["model"]
    print(f"embedded tiny SD, {args.steps} steps, batch {bs}, {args.images} images, {args.threads} thread(s); "
          f"interval {list(args.interval)}")
    for arm in arms:
        ratios = [t / b for t, b in zip(times[arm], base, strict=True)]
        rel = unet_rows[arm] / unet_rows["model"]
        print(f"  {arm:<10} best {1000 * min(times[arm]):7.2f} ms/image  UNet rows/image {unet_rows[arm]:5.1f} "
              f"({rel:.2f}x)  time/image vs model: best {min(times[arm]) / min(base):.2f}, "
              f"median per round {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    sys.exit(main())
