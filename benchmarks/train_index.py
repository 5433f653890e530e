"""Benchmark: find the synthetic training images at train start, from the manifest's byte ranges vs a tar scan.

Writes ``--shards`` shards of ``--per-shard`` images each with the generate stage's ShardWriter (small stand-in
image bytes: the index does not decode), then times :func:`synthdiv.data.synthetic_samples` twice in the same run:
once as it runs now (each image's byte range read from the manifest, no tar opened), and once on a copy of the
manifest without the ``offset``/``size`` columns, which makes it index every tar (the baseline: what every train
start cost before the columns existed). Both must return the same samples. 6x ImageNet-1k is 7.7k shards of 1k.

The same shards read as real data (``train.real_root``: a folder of WebDataset shards) are timed too: indexing every
tar (the baseline), then the first call with an index folder (indexes and keeps each shard's index), then a second
(reads the kept indexes).

    .venv/bin/python benchmarks/train_index.py [--shards 200] [--per-shard 1000]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _write_shards(root: Path, shards: int, per_shard: int, classes: int) -> None:
    import pyarrow as pa

    from synthdiv.core.rundir import RunDir
    from synthdiv.stages.generate.shards import MANIFEST_COLUMNS, ShardWriter

    run = RunDir(root)
    image = bytes(range(256)) * 12  # ~3 KB, about a 64 px JPEG
    for s in range(shards):
        writer = ShardWriter(run, s).open()
        ids = [f"{s:06d}{i:06d}" for i in range(per_shard)]
        for i, image_id in enumerate(ids):
            writer.add(image_id, "jpg", image, {"class": i % classes, "image_id": image_id})
        n = len(ids)
        writer.commit(pa.table({
            "image_id": ids, "class": [i % classes for i in range(n)], "prompt_id": ["p"] * n,
            "seed": list(range(n)), "shard": [s] * n, "retries": [0] * n, "width": [64] * n, "height": [64] * n,
            "generator_id": ["bench"] * n, "tar": [f"shard-{s:06d}.tar"] * n, "ext": ["jpg"] * n,
            "degenerate": [False] * n,
        }, schema=MANIFEST_COLUMNS))


def _strip_ranges(manifest: Path) -> None:
    import pyarrow.parquet as pq

    for part in manifest.glob("*.parquet"):
        table = pq.read_table(part)
        pq.write_table(table.drop_columns(["offset", "size"]).replace_schema_metadata(table.schema.metadata), part)


def _timed(cfg: Any, root: Path, classes: int) -> tuple[float, Any]:
    from synthdiv.core.rundir import RunDir
    from synthdiv.stages.score.reader import synthetic_samples

    t = time.perf_counter()
    samples = synthetic_samples(cfg, RunDir(root), classes)
    return time.perf_counter() - t, samples


def _time_real_shards(shards: Path, index: Path, classes: int) -> dict[str, Any]:
    from synthdiv.data.real import shard_samples

    times, results = {}, {}
    for name, index_dir in (("no_index", None), ("first_with_index", index), ("kept_index", index)):
        t = time.perf_counter()
        results[name] = shard_samples(shards, classes, index_dir)
        times[f"{name}_s"] = time.perf_counter() - t
    times["kept_vs_no_index_speedup"] = times["no_index_s"] / times["kept_index_s"]
    times["same_samples"] = all(getattr(results["kept_index"], k).tolist() == getattr(results["no_index"], k).tolist()
                                for k in ("paths", "offsets", "sizes", "labels", "keys"))
    return times


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=200)
    parser.add_argument("--per-shard", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=1000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from synthdiv.config.loader import config_from_dict

    with tempfile.TemporaryDirectory() as tmp:
        ranged, scanned = Path(tmp) / "ranged", Path(tmp) / "scanned"
        _write_shards(ranged, args.shards, args.per_shard, args.classes)
        shutil.copytree(ranged, scanned)
        _strip_ranges(scanned / "manifest.parquet")
        cfgs = {name: config_from_dict({"run_dir": str(root), "seed": 0}) for name, root in
                (("ranged", ranged), ("scanned", scanned))}
        _timed(cfgs["ranged"], ranged, args.classes)  # warm the page cache for both
        _timed(cfgs["scanned"], scanned, args.classes)
        t_scan, by_scan = _timed(cfgs["scanned"], scanned, args.classes)
        t_range, by_range = _timed(cfgs["ranged"], ranged, args.classes)
        real = _time_real_shards(ranged / "shards", Path(tmp) / "index", args.classes)
    same = all(getattr(by_scan, k).tolist() == getattr(by_range, k).tolist()
               for k in ("offsets", "sizes", "labels", "keys"))
    images = args.shards * args.per_shard
    out = {"shards": args.shards, "images": images, "tar_scan_s": t_scan, "manifest_ranges_s": t_range,
           "speedup": t_scan / t_range, "same_samples": same,
           "tar_scan_s_per_1k_shards": t_scan / args.shards * 1000,
           "manifest_ranges_s_per_1k_shards": t_range / args.shards * 1000, "real_shards": real}
    print(json.dumps(out, indent=2))  # noqa: T201 - a benchmark script's output
    return out


if __name__ == "__main__":
    main()
