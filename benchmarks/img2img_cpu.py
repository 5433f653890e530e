"""Benchmark: image-to-image against text-to-image images/s on the same embedded tiny model, in the same run.

Both go through synthdiv's DiffusersGenerator (the img2img rows through ``AutoPipelineForImage2Image.from_pipe``, the
same weights), with the same prompts, seeds, batch size, steps and one torch thread. img2img runs ``int(steps *
strength)`` denoising steps but also VAE-encodes its init images, so the ratio shows what the encoder costs against
the steps it saves. Rounds alternate (txt2img, img2img, ...) and the best round of each is compared; the median of the
per-round ratios is printed too.

    .venv/bin/python benchmarks/img2img_cpu.py [--images 64] [--batch-size 8] [--steps 4] [--strength 0.6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--strength", type=float, default=0.6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("SYNTHDIV_CACHE", str(Path(tempfile.gettempdir()) / "synthdiv-bench-cache"))
    import torch
    from PIL import Image

    from synthdiv.config.models import GeneratorSpec
    from synthdiv.models.generators import create_generator

    torch.set_num_threads(args.threads)
    gen = create_generator(GeneratorSpec(model="embedded", device="cpu", options={"steps": args.steps}))
    real = sorted((REPO / "data" / "fashion-mnist-smoke" / "train" / "bag").iterdir())
    inits = [Image.open(real[i % len(real)]).convert("RGB") for i in range(args.images)]
    prompts = [f"a photo of a bag, variant {i}" for i in range(args.images)]
    seeds = list(range(args.images))
    bs = args.batch_size

    def run(img2img: bool) -> float:
        t0 = time.perf_counter()
        for lo in range(0, args.images, bs):
            if img2img:
                gen.generate(prompts[lo : lo + bs], seeds[lo : lo + bs], None, inits[lo : lo + bs],
                             [args.strength] * len(prompts[lo : lo + bs]))
            else:
                gen.generate(prompts[lo : lo + bs], seeds[lo : lo + bs])
        return args.images / (time.perf_counter() - t0)

    run(False), run(True)  # warm-up: the img2img pipeline is made on first use
    txt, img = [], []
    for _ in range(args.rounds):
        txt.append(run(False))
        img.append(run(True))
    ratios = [i / t for i, t in zip(img, txt, strict=True)]
    print(f"txt2img  best {max(txt):8.1f} img/s  rounds {', '.join(f'{x:.1f}' for x in txt)}")
    print(f"img2img  best {max(img):8.1f} img/s  rounds {', '.join(f'{x:.1f}' for x in img)}  (strength "
          f"{args.strength}: {int(args.steps * args.strength)} of {args.steps} steps)")
    print(f"ratio img2img/txt2img: best {max(img) / max(txt):.2f}, median per round {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    sys.exit(main())
