"""Benchmark (GPU): training throughput of ResNet-50 and ViT-B/16 at 224 px with and without auxiliary norms.

Random weights, AMP (bf16 where supported, else fp16), channels_last, AdamW, synthetic fraction 0.5 (the first half
of each batch is the real block). For each model, ``none`` and ``aux`` steps are timed interleaved in one process
and reported as images/s, with the fraction of the FLOP bound: measured FLOPs per step (forward + backward, counted
by ``torch.utils.flop_counter``) times steps/s, over the card's dense peak (``--peak-tflops``, defaulted for H100 /
H200 bf16). Inputs are tensors already on the device: this measures the model side; the loader is measured by
``train_cpu.py``.

    .venv/bin/python benchmarks/gpu_train.py                   # H100 / H200
    .venv/bin/python benchmarks/gpu_train.py --small           # CPU check: tiny timm models at 64 px, few steps
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["main", "bench_model"]

FULL = {"resnet50": {}, "vit_base_patch16_224": {}}
SMALL = {"test_resnet": {}, "test_vit": {"img_size": 64}}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16 tensor-core peaks


def _peak(device: Any, given: float | None) -> float | None:
    import torch

    if given is not None or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def _count_flops(step: Any) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(count=True)
    return counter.get_total_flops()


def bench_model(name: str, kwargs: dict[str, Any], img_size: int, batch: int, steps: int, warmup: int,
                device: Any, dtype: Any) -> dict[str, Any]:
    """Images/s and FLOPs per step of ``none`` and ``aux`` for one timm model."""
    import timm
    import torch
    import torch.nn.functional as F

    from synthdiv.stages.train.auxnorm import aux_layers, convert_aux_norm, route

    torch.manual_seed(0)
    x = torch.randn(batch, 3, img_size, img_size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)
    layers_of = {"batchnorm": ["batchnorm"], "layernorm": ["layernorm"]}
    results: dict[str, Any] = {"model": name, "img_size": img_size, "batch": batch}
    fns = {}
    for mode in ("none", "aux"):
        model = timm.create_model(name, num_classes=1000, **kwargs)
        if mode == "aux":
            kinds = "layernorm" if "vit" in name else "batchnorm"
            convert_aux_norm(model, layers_of[kinds])
        model = model.to(device, memory_format=torch.channels_last).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
        layers = aux_layers(model)

        def step(count: bool = False, model: Any = model, opt: Any = opt, layers: Any = layers) -> None:
            with route(layers, batch // 2), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            if not count:
                opt.step()
            opt.zero_grad(set_to_none=True)

        fns[mode] = step
        results[f"flops_per_step_{mode}"] = _count_flops(step)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {"none": [], "aux": []}
    for i in range(steps):
        for mode in (("none", "aux") if i % 2 == 0 else ("aux", "none")):
            sync()
            t = time.perf_counter()
            fns[mode]()
            sync()
            times[mode].append(time.perf_counter() - t)
    for mode, ts in times.items():
        med = statistics.median(ts)
        results[f"images_per_s_{mode}"] = batch / med
        results[f"tflops_{mode}"] = results[f"flops_per_step_{mode}"] / med / 1e12
    results["aux_over_none_time"] = results["images_per_s_none"] / results["images_per_s_aux"]
    return results


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny models at 64 px on any device (CPU check)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense peak of the card (default: by name)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        torch.backends.cudnn.benchmark = True
    else:
        dtype = None  # CPU autocast is not what a GPU run measures; keep fp32 for the small check
    models, img_size = (SMALL, 64) if args.small else (FULL, 224)
    batch = args.batch or (16 if args.small else 256)
    steps = args.steps or (6 if args.small else 30)
    peak = _peak(device, args.peak_tflops)
    out = []
    for name, kwargs in models.items():
        r = bench_model(name, kwargs, img_size, batch, steps, 2 if args.small else 10, device, dtype)
        r.update(device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                 dtype=str(dtype).removeprefix("torch.") if dtype else "float32", channels_last=True,
                 synthetic_fraction=0.5)
        if peak:
            for mode in ("none", "aux"):
                r[f"flop_bound_fraction_{mode}"] = r[f"tflops_{mode}"] / peak
        out.append(r)
        print(json.dumps(r))  # noqa: T201 - a benchmark script's output
    return out


if __name__ == "__main__":
    main()
