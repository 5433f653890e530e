"""Benchmark (CPU): does the shard producer hide its host work behind the model? Pipeline efficiency per device time.

The real :class:`~synthdiv.stages.generate.producer.ShardProducer` (degenerate-image checks, JPEG encoding on
``writer_threads`` threads, tar writing, manifest parts, shard commits) runs against a generator whose device time
is simulated: ``generate`` waits ``device_ms`` per image with ``time.sleep`` (which releases the GIL, as a CUDA
kernel does) and returns ready-made 512-px photo-like images. Pipeline efficiency = achieved images/s divided by
``1 / device time per image``: 1.0 means every millisecond of host work was overlapped with the device. The host
work per image is measured in the same run (check + encode + tar, no device), so the device-to-host ratio is
printed beside each result. Goal (issue 16, item 2): >= 0.95 at SD1.5-like ratios (device time per image on an
H100/H200, ~80 ms at 12 img/s, against a few ms of host work per 512-px image). ``--baseline REF`` also runs the
producer module of git revision REF (loaded from ``git show``) in the same run, alternating with the current one.

    .venv/bin/python benchmarks/producer_overlap.py [--images 192] [--device-ms 80 40 20] [--baseline HEAD]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _bench_run import write_bench_run  # benchmarks/ is the script's folder

logger = logging.getLogger(__name__)

__all__ = ["main"]


class SimulatedDevice:
    """A generator whose batch takes ``device_ms`` per image of GIL-free waiting and returns prepared images."""

    generator_id = "simulated:device"

    def __init__(self, device_ms: float, pool: list[Any]) -> None:
        self.device_s, self.pool = device_ms / 1000.0, pool

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], negative_prompts: Any = None,
                 **_: Any) -> list[Any]:
        time.sleep(self.device_s * len(prompts))
        return [self.pool[int(s) % len(self.pool)] for s in seeds]

    def settings(self) -> dict[str, Any]:
        return {"generator_id": self.generator_id, "steps": 25, "guidance": 7.5, "scheduler": "simulated"}


def _pool(size: int, n: int) -> list[Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    import numpy as np
    from loader_workers import _picture

    rng = np.random.default_rng(0)
    return [_picture(rng, size) for _ in range(n)]


def _baseline_module(ref: str) -> Any:
    """``synthdiv/stages/generate/producer.py`` as of git revision ``ref``, imported under another name."""
    import importlib.util
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{ref}:src/synthdiv/stages/generate/producer.py"], cwd=repo, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="producer-baseline-")) / "producer_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("producer_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["producer_baseline"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _run(root: Path, images: int, shard_size: int, device_ms: float, pool: list[Any], gcfg: Any,
         module: Any = None) -> float:
    import shutil

    from synthdiv.core.rundir import RunDir
    from synthdiv.stages.generate import producer

    PlannedWork, ShardProducer = (module or producer).PlannedWork, (module or producer).ShardProducer

    run = RunDir(root)
    for folder in (run.shards, run.manifest):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    work = PlannedWork(run)
    work.load(work.shards.tolist())
    start = time.perf_counter()
    with ShardProducer(work, SimulatedDevice(device_ms, pool), gcfg) as producer:
        for shard in work.shards.tolist():
            producer.produce(int(shard))
        producer.drain()
    return images / (time.perf_counter() - start)


def _host_ms_per_image(pool: list[Any], gcfg: Any) -> float:
    """Host work of one image on one thread: the degenerate check and the JPEG encoding (the tar append is ~0)."""
    from synthdiv.stages.generate.degenerate import degenerate_reason
    from synthdiv.stages.generate.producer import encode_image

    start = time.perf_counter()
    for img in pool:
        degenerate_reason(img)
        encode_image(img, gcfg.image_format, gcfg.quality, gcfg.max_side)
    return 1000 * (time.perf_counter() - start) / len(pool)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--writer-threads", type=int, default=2)
    parser.add_argument("--device-ms", type=float, nargs="+", default=[80.0, 40.0, 20.0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--baseline", default=None, help="also run the producer of this git revision")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from synthdiv.config.generate import GenerateConfig

    gcfg = GenerateConfig(batch_size=args.batch_size, writer_threads=args.writer_threads)
    pool = _pool(args.size, 16)
    out: dict[str, Any] = {"images": args.images, "batch_size": args.batch_size,
                           "writer_threads": args.writer_threads, "px": args.size}
    with tempfile.TemporaryDirectory() as tmp:
        from synthdiv.core.rundir import RunDir

        write_bench_run(RunDir(tmp), args.images, args.shard_size, SimulatedDevice.generator_id)
        host_ms = _host_ms_per_image(pool, gcfg)
        out["host_ms_per_image"] = round(host_ms, 2)
        print(f"host work per image (check + JPEG encode, one thread): {host_ms:.1f} ms", flush=True)
        variants = {"current": None}
        if args.baseline:
            variants[f"baseline {args.baseline}"] = _baseline_module(args.baseline)
        for device_ms in args.device_ms:
            for name, module in variants.items():
                rate = _run(Path(tmp), args.images, args.shard_size, device_ms, pool, gcfg, module)
                eff = rate * device_ms / 1000.0
                out[f"{name} device_{device_ms:g}ms"] = {
                    "img_s": round(rate, 2), "ideal_img_s": round(1000 / device_ms, 2), "efficiency": round(eff, 3),
                    "device_to_host": round(device_ms / host_ms, 1)}
                print(f"{name}: device {device_ms:g} ms/image ({device_ms / host_ms:.1f}x host work): {rate:.2f} "
                      f"img/s of {1000 / device_ms:.2f} ideal, pipeline efficiency {eff:.3f} (goal >= 0.95)",
                      flush=True)
    print(json.dumps(out, indent=2))  # noqa: T201 - a benchmark script's output
    return out


if __name__ == "__main__":
    main()
