"""Benchmark (CPU): the cost of auxiliary norms, and the mixed loader against a bare decode loop.

1. Step time (forward + backward + AdamW) of a small timm CNN with ``aux_norm: aux`` divided by the same with
   ``none``, at synthetic fraction 0.5. The two are timed interleaved, step by step, in one process, and the ratio
   of medians is reported, so that load from other processes hits both alike. Goal (issue 6): <= 1.05.
2. Images/s of the mixed loader (real PNG files + synthetic images in WebDataset shards, block order, per-sample
   seeded transform, corrupt-sample handling, collate) divided by images/s of a bare loop that reads, decodes and
   applies the same minimal transform (resize + to-tensor) to the same files in the same order, both in the main
   process. Goal: >= 0.85. The loader with worker processes is reported too.
3. Step time with the loop's non-finite guard (saving the norm statistics, the gradient norm, and the finite check
   that decides whether the update runs) divided by the same step with a bare optimizer update, interleaved.

    .venv/bin/python benchmarks/train_cpu.py [--model resnet10t] [--img-size 64] [--batch 32] [--steps 30]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["main", "bench_aux_ratio", "bench_loader_ratio", "bench_guard_ratio"]


def _step_fn(model: Any, n_real: int, x: Any, y: Any) -> Any:
    import torch
    import torch.nn.functional as F

    from synthdiv.stages.train.auxnorm import aux_layers, route

    layers = aux_layers(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> float:
        t = time.perf_counter()
        with route(layers, n_real):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    return step


def bench_aux_ratio(model_name: str, img_size: int, batch: int, steps: int, threads: int) -> dict[str, Any]:
    """Median step time with aux norms / without, interleaved in one process."""
    import timm
    import torch

    from synthdiv.stages.train.auxnorm import convert_aux_norm

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    fmt = torch.contiguous_format  # as the loop runs on CPU (channels_last BatchNorm is ~3x slower there)
    x = torch.randn(batch, 3, img_size, img_size).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    plain = timm.create_model(model_name, num_classes=10).to(memory_format=fmt).train()
    aux = convert_aux_norm(timm.create_model(model_name, num_classes=10)).to(memory_format=fmt)
    steps_fn = {"none": _step_fn(plain, batch // 2, x, y), "aux": _step_fn(aux.train(), batch // 2, x, y)}
    for fn in steps_fn.values():  # warm-up
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {"none": [], "aux": []}
    for i in range(steps):
        order = ("none", "aux") if i % 2 == 0 else ("aux", "none")
        for name in order:
            times[name].append(steps_fn[name]())
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"model": model_name, "img_size": img_size, "batch": batch, "steps": steps, "threads": threads,
            "step_s_none": med["none"], "step_s_aux": med["aux"], "ratio": med["aux"] / med["none"], "goal": 1.05}


def bench_guard_ratio(model_name: str, img_size: int, batch: int, steps: int, threads: int) -> dict[str, Any]:
    """Median step time with the loop's guarded update (``_TrainState.step``) / a bare AdamW update."""
    import timm
    import torch
    import torch.nn.functional as F

    from synthdiv.config.train import TrainConfig
    from synthdiv.stages.train.loop import _TrainState

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x, y = torch.randn(batch, 3, img_size, img_size), torch.randint(0, 10, (batch,))
    tcfg = TrainConfig(model=model_name, amp="none")
    states = {name: _TrainState(tcfg, timm.create_model(model_name, num_classes=10).train(), 10**6,
                                torch.device("cpu")) for name in ("bare", "guarded")}

    def step(name: str, i: int) -> float:
        state = states[name]
        t = time.perf_counter()
        if name == "guarded":
            state.save_buffers()
        F.cross_entropy(state.model(x), y).backward()
        if name == "guarded":
            state.step(i)
        else:
            state.optimizer.step()
            state.optimizer.zero_grad(set_to_none=True)
            state.scheduler.step()
        return time.perf_counter() - t

    for i in range(3):  # warm-up
        step("bare", i), step("guarded", i)
    times: dict[str, list[float]] = {"bare": [], "guarded": []}
    for i in range(steps):
        for name in ("bare", "guarded") if i % 2 == 0 else ("guarded", "bare"):
            times[name].append(step(name, i))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"model": model_name, "img_size": img_size, "batch": batch, "steps": steps, "threads": threads,
            "step_s_bare": med["bare"], "step_s_guarded": med["guarded"], "ratio": med["guarded"] / med["bare"]}


def _make_data(root: Path, n_real: int, n_syn: int, size: int) -> tuple[Any, Any]:
    """Real PNG class folders and synthetic JPEG shards (random pictures, 10 classes)."""
    import numpy as np
    import webdataset as wds
    from PIL import Image

    from synthdiv.data.real import shard_samples
    from synthdiv.data.sources import SampleSet

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_real):
        folder = root / "real" / f"c{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:05d}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
        rows.append((str(path), -1, -1, i % 10, str(path)))
    (root / "shards").mkdir()
    with wds.ShardWriter(str(root / "shards" / "shard-%06d.tar"), maxcount=200, verbose=0) as sink:
        for i in range(n_syn):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="JPEG")
            sink.write({"__key__": f"s{i:06d}", "jpg": buf.getvalue(), "cls": i % 10})
    return SampleSet.from_rows(rows), shard_samples(root / "shards", 10)


def bench_loader_ratio(n_images: int, img_size: int, batch: int, workers: int) -> dict[str, Any]:
    """Images/s of the mixed loader / a bare read+decode+transform loop over the same files, in the same order."""
    import torch
    from torchvision import transforms

    from synthdiv.data.images import decode_rgb
    from synthdiv.data.mixed import BatchPlan, make_loader

    torch.set_num_threads(1)
    transform = transforms.Compose([transforms.Resize((img_size, img_size)), transforms.ToTensor()])
    with tempfile.TemporaryDirectory() as tmp:
        real, syn = _make_data(Path(tmp), n_images // 2, n_images // 2, img_size)
        plan = BatchPlan(len(real), len(syn), batch, 0.5, seed=0)
        steps = plan.steps_per_epoch
        keys = [k for keys in plan.batches(0, steps) for k in keys]
        sources = (real, syn)

        def bare() -> float:
            t = time.perf_counter()
            for j in range(0, len(keys), batch):
                imgs = [transform(decode_rgb(sources[s].read(i))) for s, i, _ in keys[j : j + batch]]
                torch.stack(imgs)
            return len(keys) / (time.perf_counter() - t)

        def loader(nw: int) -> float:
            t = time.perf_counter()
            n = sum(b["images"].shape[0] for b in make_loader(real, syn, plan, transform, 0, steps, nw))
            return n / (time.perf_counter() - t)

        bare(), loader(0)  # warm the page cache
        runs = {"bare": [], "loader": [], "loader_workers": []}
        for _ in range(3):
            runs["bare"].append(bare())
            runs["loader"].append(loader(0))
            runs["loader_workers"].append(loader(workers))
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"images": len(keys), "img_size": img_size, "batch": batch, "bare_img_s": med["bare"],
            "loader_img_s": med["loader"], "ratio": med["loader"] / med["bare"],
            f"loader_{workers}_workers_img_s": med["loader_workers"],
            "ratio_workers": med["loader_workers"] / med["bare"], "goal": 0.85}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet10t")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loader-images", type=int, default=2048)
    parser.add_argument("--loader-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = {
        "aux_norm": bench_aux_ratio(args.model, args.img_size, args.batch, args.steps, args.threads),
        "loader": bench_loader_ratio(args.loader_images, args.loader_size, args.batch, args.workers),
        "nonfinite_guard": bench_guard_ratio(args.model, args.img_size, args.batch, args.steps, args.threads),
    }
    print(json.dumps(out, indent=2))  # noqa: T201 - a benchmark script's output
    return out


if __name__ == "__main__":
    main()
