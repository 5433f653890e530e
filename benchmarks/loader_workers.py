"""Benchmark: the mixed training loader with W worker processes against a plain torch DataLoader with W workers.

Data: 512-px JPEGs, half as real class-folder files and half as synthetic members of WebDataset shards (the two
sources of a training run). Both loaders turn them into 224-px training tensors with the same timm training
transform (RandomResizedCrop + flip + normalize; no RandAugment, so the loader's own cost is not hidden) and the
same batch size, in the same order (the mixed loader's plan, one epoch). The plain loader is the baseline any
PyTorch user writes: a map-style dataset that opens each file, decodes it with PIL and transforms it, with
``DataLoader(batch_size=B, num_workers=W)``. "mixed, full decode" is the mixed loader with its draft-mode decoding
switched off (what it did before). Rounds rotate the three so load from other processes hits all alike; medians
are compared, of wall-clock images/s and of images per CPU-second (main process plus workers: steadier on a loaded
machine). Goal (issue 16, item 5): mixed / plain >= 0.85 at every W.

    .venv/bin/python benchmarks/loader_workers.py [--images 512] [--size 512] [--workers 0 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["main"]


def _picture(rng: Any, size: int) -> Any:
    """A photo-like picture (smooth shapes plus mild noise): random noise would make JPEGs unusually slow to decode."""
    import numpy as np
    from PIL import Image

    small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), dtype=np.int16)
    img = img + rng.integers(-12, 12, img.shape, dtype=np.int16)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_data(root: Path, n: int, size: int) -> tuple[Any, Any]:
    """``n // 2`` real JPEG files in 10 class folders and ``n // 2`` synthetic JPEGs in WebDataset shards."""
    import numpy as np
    import webdataset as wds

    from synthdiv.data.real import shard_samples
    from synthdiv.data.sources import SampleSet

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n // 2):
        folder = root / "real" / f"c{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:05d}.jpg"
        _picture(rng, size).save(path, quality=90)
        rows.append((str(path), -1, -1, i % 10, str(path)))
    (root / "shards").mkdir()
    with wds.ShardWriter(str(root / "shards" / "shard-%06d.tar"), maxcount=100, verbose=0) as sink:
        for i in range(n // 2):
            buf = io.BytesIO()
            _picture(rng, size).save(buf, format="JPEG", quality=90)
            sink.write({"__key__": f"s{i:06d}", "jpg": buf.getvalue(), "cls": i % 10})
    return SampleSet.from_rows(rows), shard_samples(root / "shards", 10)


class PlainDataset:
    """What a plain PyTorch user writes: open the file, read the bytes, decode with PIL, transform."""

    def __init__(self, items: list[tuple[str, int, int, int]], transform: Any) -> None:
        self.items, self.transform = items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        path, offset, size, label = self.items[i]
        with open(path, "rb") as fh:
            if offset >= 0:
                fh.seek(offset)
            data = fh.read(size if offset >= 0 else -1)
        img = Image.open(io.BytesIO(data)).convert("RGB")
        return self.transform(img), label


def _cpu_seconds() -> float:
    """CPU time of this process and its reaped children (DataLoader workers are joined when a pass ends)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run(n_images: int, size: int, crop: int, scale_min: float, batch: int, workers: list[int],
        rounds: int) -> dict[str, Any]:
    import torch
    import torch.utils.data
    from timm.data import create_transform

    from synthdiv.data import images
    from synthdiv.data.mixed import BatchPlan, make_loader

    torch.set_num_threads(1)
    transform = create_transform(crop, is_training=True, auto_augment=None, color_jitter=0.0, scale=(scale_min, 1.0))
    out: dict[str, Any] = {"images": n_images, "stored_px": size, "crop_px": crop, "scale_min": scale_min,
                           "batch": batch}
    with tempfile.TemporaryDirectory() as tmp:
        real, syn = make_data(Path(tmp), n_images, size)
        plan = BatchPlan(len(real), len(syn), batch, 0.5, seed=0)
        steps = plan.steps_per_epoch
        sources = (real, syn)
        items = [(str(sources[s].paths[i]), int(sources[s].offsets[i]), int(sources[s].sizes[i]),
                  int(sources[s].labels[i])) for keys in plan.batches(0, steps) for s, i, _ in keys]
        plain_ds = PlainDataset(items, transform)

        def plain(nw: int) -> tuple[float, float]:
            t, c = time.perf_counter(), _cpu_seconds()
            loader = torch.utils.data.DataLoader(plain_ds, batch_size=batch, num_workers=nw)
            n = sum(x.shape[0] for x, _ in loader)
            return n / (time.perf_counter() - t), n / (_cpu_seconds() - c)

        def mixed(nw: int, draft: bool = True) -> tuple[float, float]:
            split = images._split_random_crop
            if not draft:
                images._split_random_crop = lambda tr: (None, tr)
            try:
                t, c = time.perf_counter(), _cpu_seconds()
                n = sum(b["images"].shape[0] for b in make_loader(real, syn, plan, transform, 0, steps, nw))
                return n / (time.perf_counter() - t), n / (_cpu_seconds() - c)
            finally:
                images._split_random_crop = split

        loaders = {"plain": plain, "mixed": mixed, "mixed_full_decode": lambda nw: mixed(nw, draft=False)}
        plain(0), mixed(0)  # warm the page cache
        for nw in workers:
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in loaders}
            names = list(loaders)
            for r in range(rounds):
                for name in names[r % 3 :] + names[: r % 3]:
                    runs[name].append(loaders[name](nw))
            wall = {k: statistics.median(x for x, _ in v) for k, v in runs.items()}
            cpu = {k: statistics.median(y for _, y in v) for k, v in runs.items()}
            out[f"workers_{nw}"] = {
                **{f"{k}_img_s": round(v, 1) for k, v in wall.items()},
                **{f"{k}_img_per_cpu_s": round(v, 1) for k, v in cpu.items()},
                "ratio": round(wall["mixed"] / wall["plain"], 3),
                "ratio_full_decode": round(wall["mixed_full_decode"] / wall["plain"], 3),
                "cpu_ratio": round(cpu["mixed"] / cpu["plain"], 3),
                "cpu_ratio_full_decode": round(cpu["mixed_full_decode"] / cpu["plain"], 3), "goal": 0.85,
            }
            for what, m in (("img/s", wall), ("img per CPU-s", cpu)):
                print(f"W={nw} {what}: plain DataLoader {m['plain']:.1f}, mixed loader {m['mixed']:.1f} "
                      f"(ratio {m['mixed'] / m['plain']:.3f}), mixed with full decode (before) "
                      f"{m['mixed_full_decode']:.1f} (ratio {m['mixed_full_decode'] / m['plain']:.3f})", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=512, help="stored JPEG side")
    parser.add_argument("--crop", type=int, default=224, help="training crop side")
    parser.add_argument("--scale-min", type=float, default=0.08, help="RandomResizedCrop's smallest area share")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = run(args.images, args.size, args.crop, args.scale_min, args.batch, args.workers, args.rounds)
    print(json.dumps(out, indent=2))  # noqa: T201 - a benchmark script's output
    return out


if __name__ == "__main__":
    main()
