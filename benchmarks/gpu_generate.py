"""GPU benchmark of generation: Stable Diffusion 1.5's architecture with random weights, measured in ONE run.

(a) plain diffusers, one prompt per call; (b) plain diffusers at the fastest batch size (same dtype, SDPA: diffusers'
default attention); (c) synthdiv ``generate`` end to end (plan -> checked images -> JPEG -> shards + manifest) in
several arms: its default (on CUDA: channels_last, fused QKV, compiled denoiser and VAE decoder, fixed batch shapes),
everything off, and each optimisation alone. Each arm first makes a warm-up run of two batches in its own run
directory (compilation happens there and is reported separately, as ``compile_s``); the timed run that follows
reuses the persistent compile cache, and the dynamo graphs it compiles are counted (a recompile from a changed shape
would show as extra graphs). Every rate is set against a FLOP bound measured in
the same run: FLOPs per image counted with ``torch.utils.flop_counter`` over one pipeline call (text encoder, 2 x
steps UNet passes for classifier-free guidance, VAE decode), and the matmul peak of this device timed on a large
matmul in the benchmark dtype. Random weights can overflow in float16, so the default dtype is bfloat16 (retries stay
on and their count is printed; ``--no-retries`` switches them off).

Full size (H100/H200): the SD 1.5 UNet (859.5M parameters), 512x512, 25 DPM-Solver++ steps, guidance 7.5.
``--small`` builds a scaled-down model of the same layout (64x64 images, few steps) so the script runs on a CPU.

    python benchmarks/gpu_generate.py [--images 256] [--batch-sizes 1,4,8,16,32,48] [--arms default,none,compile]
    python benchmarks/gpu_generate.py --small --device cpu --compile-backend eager   # a CPU check of the script
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench_run import write_bench_run  # benchmarks/ is the script's folder

logger = logging.getLogger(__name__)

__all__ = ["main", "build_pipeline"]

FULL = {
    "unet": {"sample_size": 64, "layers_per_block": 2, "block_out_channels": (320, 640, 1280, 1280),
             "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
             "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, "cross_attention_dim": 768,
             "attention_head_dim": 8},
    "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "sample_size": 512,
            "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4},
    "text": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
             "projection_dim": 768, "hidden_act": "quick_gelu"},
    "size": 512, "steps": 25,
}
SMALL = {
    "unet": {**FULL["unet"], "sample_size": 8, "layers_per_block": 1, "block_out_channels": (32, 64, 64, 64),
             "cross_attention_dim": 64},
    "vae": {**FULL["vae"], "block_out_channels": (32, 32, 64, 64), "layers_per_block": 1, "sample_size": 64},
    "text": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
             "projection_dim": 64, "hidden_act": "quick_gelu"},
    "size": 64, "steps": 4,
}


def build_pipeline(out: Path, spec: dict[str, Any]) -> int:
    """Save a random-weight StableDiffusionPipeline of ``spec``'s architecture to ``out`` (float32; loaded in the
    benchmark dtype); returns the UNet's parameter count."""
    import torch
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from synthdiv.models.embedded import tiny_diffusion_dir

    torch.manual_seed(0)
    unet = UNet2DConditionModel(in_channels=4, out_channels=4, **spec["unet"])
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, **spec["vae"])
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, bos_token_id=49406,
                                        eos_token_id=49407, pad_token_id=49407, **spec["text"]))
    tokenizer = CLIPTokenizer.from_pretrained(tiny_diffusion_dir() / "tokenizer")  # the real CLIP BPE, 77 tokens
    scheduler = DPMSolverMultistepScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
        algorithm_type="dpmsolver++", solver_order=2,
    )
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out)
    return sum(p.numel() for p in unet.parameters())


def _si(x: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if x >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f} "


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _plain(pipe: Any, device: str, batch: int, calls: int, steps: int, size: int) -> float:
    """Images/s of ``calls`` pipeline calls of ``batch`` prompts (after one warm-up call)."""
    import torch

    def call(seed0: int) -> None:
        gens = [torch.Generator("cpu").manual_seed(seed0 + i) for i in range(batch)]
        pipe(["a photo of a goldfish in a bowl"] * batch, num_inference_steps=steps, guidance_scale=7.5,
             width=size, height=size, generator=gens, output_type="pil")

    call(0)
    _sync(device)
    start = time.perf_counter()
    for c in range(calls):
        call(1000 * (c + 1))
    _sync(device)
    return batch * calls / (time.perf_counter() - start)


def _flops_per_image(pipe: Any, steps: int, size: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        pipe(["a photo of a goldfish"], num_inference_steps=steps, guidance_scale=7.5, width=size, height=size,
             generator=[torch.Generator("cpu").manual_seed(0)], output_type="np")
    return float(counter.get_total_flops())


def _matmul_peak(device: str, dtype: Any, n: int) -> float:
    """FLOP/s of an n x n x n matmul in ``dtype`` on ``device`` (best of several timed runs)."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    best = 0.0
    for _ in range(5):
        reps = 10
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start))
    return best


ARMS: dict[str, dict[str, Any]] = {
    "default": {},  # every switch on its device default (all on for CUDA)
    "none": {"channels_last": False, "fuse_qkv": False, "compile": False, "static_batch": False},
    "channels_last": {"channels_last": True, "fuse_qkv": False, "compile": False, "static_batch": False},
    "fuse_qkv": {"channels_last": False, "fuse_qkv": True, "compile": False, "static_batch": False},
    "compile": {"channels_last": False, "fuse_qkv": False, "compile": True, "static_batch": True},
    # generate.sampling arms, on the default switches: a guidance scale per image (the same UNet work), and the
    # guidance interval of the SD 1.x family (generate.sampling.diverse): the conditional half alone outside it
    "per_image_guidance": {},
    "guidance_interval": {},
}
SAMPLING: dict[str, dict[str, Any]] = {
    "per_image_guidance": {"guidance_range": [1.5, 4.0]},
    "guidance_interval": {"guidance_range": [1.5, 4.0], "interval": [0.1, 0.9]},
}


def _synthdiv_run(model_dir: Path, root: Path, args: argparse.Namespace, spec: dict[str, Any], batch: int,
                  switches: dict[str, Any], images: int, sampling: dict[str, Any] | None = None,
                  ) -> tuple[dict[str, Any], float, int]:
    """One ``generate`` stage of ``images``; returns (its summary, wall seconds, dynamo graphs compiled in it)."""
    from torch._dynamo.utils import counters

    from synthdiv.config.loader import config_from_dict
    from synthdiv.config.models import generator_id
    from synthdiv.core.rundir import RunDir
    from synthdiv.stages.generate.stage import generate_images

    options = {"steps": spec["steps"], "guidance": 7.5, "width": spec["size"], "height": spec["size"],
               "scheduler": "dpm++", "compile_backend": args.compile_backend, **switches}
    cfg = config_from_dict({
        "run_dir": str(root),
        "models": {"generator": {"model": str(model_dir), "device": args.device, "dtype": args.dtype,
                                 "options": options}},
        "generate": {"batch_size": batch, "max_retries": 0 if args.no_retries else 2,
                     "writer_threads": args.writer_threads, "torch_threads": args.threads,
                     **({"sampling": sampling} if sampling else {})},
        "plan": {"shard_size": args.shard_size},
    })
    write_bench_run(RunDir(root), images, args.shard_size, generator_id(cfg.models.generator))
    graphs = counters["stats"]["unique_graphs"]
    start = time.perf_counter()
    summary = generate_images(cfg, RunDir(root))
    return summary, time.perf_counter() - start, counters["stats"]["unique_graphs"] - graphs


def _synthdiv(model_dir: Path, root: Path, args: argparse.Namespace, spec: dict[str, Any], batch: int,
              arm: str) -> dict[str, Any]:
    from synthdiv.core.rundir import RunDir
    from synthdiv.stages.generate.reader import read_manifest

    switches, sampling = ARMS[arm], SAMPLING.get(arm)
    _, warm_wall, warm_graphs = _synthdiv_run(model_dir, root / "warmup", args, spec, batch, switches, 2 * batch,
                                              sampling)
    summary, wall, graphs = _synthdiv_run(model_dir, root / "timed", args, spec, batch, switches, args.images,
                                          sampling)
    rate = summary["images_per_second"]
    manifest = read_manifest(RunDir(root / "timed"))
    return {"images_per_second": rate, "with_model_load": args.images / wall, "images": manifest.num_rows,
            "retries": int(sum(manifest.column("retries").to_pylist())), "batch_size": batch,
            # the warm-up's wall time beyond what its two batches take at the steady rate: loading + compiling
            "compile_s": round(max(0.0, warm_wall - 2 * batch / rate), 2) if rate else None,
            "graphs_in_warmup": warm_graphs, "graphs_in_timed_run": graphs}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a scaled-down model (runs on a CPU)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    ap.add_argument("--images", type=int, default=256, help="images of the synthdiv run (c)")
    ap.add_argument("--shard-size", type=int, default=128)
    ap.add_argument("--batch-sizes", default="1,4,8,16,32,48")
    ap.add_argument("--calls", type=int, default=4, help="timed calls per batch size in (b); (a) uses 4x as many")
    ap.add_argument("--synthdiv-batch", type=int, default=None, help="batch of (c); default: the fastest of (b)")
    ap.add_argument("--arms", default=",".join(ARMS),
                    help=f"synthdiv arms of (c), from {','.join(ARMS)}")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend ('eager' for a CPU check)")
    ap.add_argument("--no-retries", action="store_true")
    ap.add_argument("--writer-threads", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)

    import torch
    from diffusers import AutoPipelineForText2Image

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = SMALL if args.small else FULL
    dtype = getattr(torch, args.dtype)
    tmp = Path(tempfile.mkdtemp(prefix="synthdiv-gpu-bench-"))
    out: dict[str, Any] = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
                           "dtype": args.dtype, "small": args.small, "size": spec["size"], "steps": spec["steps"],
                           "retries": "off" if args.no_retries else "on (counted)", "guidance": 7.5,
                           "compile_backend": args.compile_backend}
    try:
        model_dir = tmp / "sd15-random"
        out["unet_parameters"] = build_pipeline(model_dir, spec)
        pipe = AutoPipelineForText2Image.from_pretrained(model_dir, dtype=dtype).to(args.device)
        pipe.set_progress_bar_config(disable=True)
        out["flops_per_image"] = _flops_per_image(pipe, spec["steps"], spec["size"])
        out["matmul_peak_flops"] = _matmul_peak(args.device, dtype, 1024 if args.small else 8192)
        bound = out["matmul_peak_flops"] / out["flops_per_image"]
        out["bound_images_per_second"] = bound
        out["a_plain_batch1"] = _plain(pipe, args.device, 1, 4 * args.calls, spec["steps"], spec["size"])
        per_batch = {}
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            try:
                per_batch[bs] = _plain(pipe, args.device, bs, args.calls, spec["steps"], spec["size"])
            except torch.cuda.OutOfMemoryError:
                logger.warning("batch %d does not fit", bs)
                break
            print(f"plain batch {bs}: {per_batch[bs]:.3f} img/s", file=sys.stderr)
        best = max(per_batch, key=per_batch.get)
        out["b_plain_per_batch"] = per_batch
        out["b_plain_best"] = {"batch_size": best, "images_per_second": per_batch[best]}
        del pipe
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
        arms = [a.strip() for a in args.arms.split(",") if a.strip()]
        unknown = [a for a in arms if a not in ARMS]
        if unknown:
            raise SystemExit(f"--arms: unknown arm {unknown[0]!r}; expected some of {', '.join(ARMS)}")
        out["c_synthdiv"] = {arm: _synthdiv(model_dir, tmp / arm, args, spec, args.synthdiv_batch or best, arm)
                             for arm in arms}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [("(a) plain, 1 prompt/call", out["a_plain_batch1"], ""), (f"(b) plain, batch {best}", per_batch[best], "")]
    for arm, r in out["c_synthdiv"].items():
        note = (f"compile+load {r['compile_s']} s, graphs {r['graphs_in_warmup']} warm-up / "
                f"{r['graphs_in_timed_run']} timed, retries {r['retries']}")
        rows.append((f"(c) synthdiv {arm}, batch {r['batch_size']}", r["images_per_second"] or 0.0, note))
    print(f"\n{out['device']} {args.dtype} {spec['size']}x{spec['size']} {spec['steps']} steps, UNet "
          f"{out['unet_parameters'] / 1e6:.1f}M params; {_si(out['flops_per_image'])}FLOP/image; matmul peak "
          f"{_si(out['matmul_peak_flops'])}FLOP/s -> bound {bound:.2f} img/s")
    for name, rate, note in rows:
        ratio = rate / per_batch[best] if per_batch[best] else 0.0
        print(f"  {name:<40} {rate:8.3f} img/s  {100 * rate / bound:5.1f}% of bound  {ratio:5.2f}x plain best  {note}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return out


if __name__ == "__main__":
    main()
