"""Benchmark: the per-image metadata of ``synthdiv publish`` for a large run, against a plain pyarrow write.

``publish`` writes one metadata file per shard: the shard's manifest rows joined to their prompts, classes and scores,
their filter flags, and where each image lies in the published tar (:class:`synthdiv.publish.metadata.
MetadataBuilder`). This writes that metadata for ``--rows`` synthetic manifest rows (1,000 classes, 71 prompts per
class, shards of 1,000 images, a ``scores.parquet`` of every row streamed in order, two filter flags), and times it
against the baseline in the same run: a plain ``pyarrow.parquet.write_table`` of tables of the same rows and columns
with no join. Each measurement runs in its own process, so its peak RSS is its own. It runs at a quarter of
``--rows`` and at ``--rows``: streaming shows as a time that grows 4x and a peak RSS that grows by the flag arrays
(a byte per image and filter) only.

    .venv/bin/python benchmarks/publish_metadata.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

CLASSES, PROMPTS_PER_CLASS, SHARD = 1000, 71, 1000


def _setup(root: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthdiv.core.schemas import PROMPTS_SCHEMA, SCORES_SCHEMA, with_format

    n = CLASSES * PROMPTS_PER_CLASS
    cls = np.arange(n) // PROMPTS_PER_CLASS
    prompts = pa.table({"prompt_id": [f"p{i:07d}" for i in range(n)], "class": cls.astype(np.int32),
                        "class_name": [f"class {c}" for c in cls], "kind": ["context"] * n,
                        "text": [f"a photo of class {c} in a scene number {i}" for i, c in enumerate(cls)],
                        "negative": [""] * n, "context": [f"scene number {i}" for i in range(n)],
                        "style": pa.nulls(n, pa.string()), "template_id": ["t"] * n, "llm_id": ["llm"] * n},
                       schema=PROMPTS_SCHEMA)
    pq.write_table(prompts, root / "prompts.parquet")
    schema = with_format(SCORES_SCHEMA, "scores")
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(root / "scores.parquet", schema) as writer:
        for start in range(0, rows, 100_000):
            ids = [_image_id(i) for i in range(start, min(rows, start + 100_000))]
            k = len(ids)
            writer.write_table(pa.table({
                "image_id": ids, "similarity": rng.random(k, np.float32), "class_rank": rng.integers(0, 5, k, np.int32),
                "margin": rng.random(k, np.float32), "prob": rng.random(k, np.float32),
                "best_other": rng.integers(0, CLASSES, k, np.int32), "nn_id": ids,
                "nn_cosine": rng.random(k, np.float32), "dup_of": ids, "real_nn": pa.nulls(k, pa.string()),
                "real_nn_cosine": pa.nulls(k, pa.float32()),
                "memorized": np.zeros(k, bool)}, schema=schema))


def _image_id(i: int) -> str:
    return f"{i:024x}"


def _part(shard: int, rows: int):
    import numpy as np
    import pyarrow as pa

    start = shard * SHARD
    idx = np.arange(start, min(rows, start + SHARD))
    k = len(idx)
    cls = (idx % CLASSES).astype(np.int32)
    return pa.table({
        "image_id": [_image_id(i) for i in idx], "class": cls,
        "prompt_id": [f"p{c * PROMPTS_PER_CLASS + i % PROMPTS_PER_CLASS:07d}" for c, i in zip(cls, idx, strict=True)],
        "seed": idx.astype(np.int64), "shard": np.full(k, shard, np.int32), "retries": np.zeros(k, np.int32),
        "width": np.full(k, 512, np.int32), "height": np.full(k, 512, np.int32),
        "generator_id": ["diffusers:stabilityai/stable-diffusion-2-1@main"] * k, "tar": [f"shard-{shard:06d}.tar"] * k,
        "ext": ["jpg"] * k, "degenerate": np.zeros(k, bool), "offset": (idx % SHARD) * 60_000 + 512,
        "size": np.full(k, 55_000, np.int64), "source": pa.nulls(k, pa.string()), "strength": pa.nulls(k, pa.float32()),
    })


def _members(part):
    from synthdiv.publish.folder import Member

    settings = {"revision": "main", "guidance": 7.5, "steps": 30, "scheduler": "DPMSolverMultistepScheduler"}
    return {key: Member(f"{key}.jpg", f"{i:064x}", 512 + i * 60_000, 55_000, True, settings)
            for i, key in enumerate(part.column("image_id").to_pylist())}


def _child(mode: str, root: Path, rows: int) -> dict[str, float]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthdiv.core.rundir import RunDir
    from synthdiv.publish.metadata import MetadataBuilder, ScoreCursor, write_metadata
    from synthdiv.publish.privacy import Scrubber
    from synthdiv.publish.tally import Tally
    from synthdiv.stages.score.reader import iter_scores

    out = root / f"out-{mode}-{rows}"
    out.mkdir()
    shards = -(-rows // SHARD)
    started = time.perf_counter()
    if mode == "publish":
        run = RunDir(root)
        classes = [{"index": c, "name": f"class {c}", "wnid": f"n{c:08d}", "description": f"a class {c}"}
                   for c in range(CLASSES)]
        rng = np.random.default_rng(1)
        flags = {"clip-top1": rng.random(rows) < 0.8, "dedup": rng.random(rows) < 0.95}
        builder = MetadataBuilder(classes, pq.read_table(run.prompts), ScoreCursor(iter_scores(run), run.scores),
                                  flags, flags["clip-top1"], Scrubber(root))
        tally = Tally()
        for shard in range(shards):
            part = _part(shard, rows)
            table = builder.shard(shard, part, _members(part), None)
            write_metadata(table, out / f"shard-{shard:06d}.parquet")
            tally.add(table)
        assert tally.images == rows
    else:  # the baseline: the same rows and columns, written as they come, no join
        scores = pq.ParquetFile(root / "scores.parquet").iter_batches(batch_size=SHARD)
        for shard in range(shards):
            part = _part(shard, rows)
            members = _members(part)
            batch = pa.Table.from_batches([next(scores)]).drop_columns(["image_id"])
            cols = {"sha256": [m.sha256 for m in members.values()], "marked": [m.marked for m in members.values()]}
            table = pa.table({**{n: part.column(n) for n in part.column_names},
                              **{n: batch.column(n) for n in batch.column_names}, **cols})
            pq.write_table(table, out / f"shard-{shard:06d}.parquet", compression="zstd")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "ROOT", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, root, rows = args.child
        print(json.dumps(_child(mode, Path(root), int(rows))))
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="publish-bench-") as tmp:
        root = Path(tmp)
        _setup(root, args.rows)
        for rows in (args.rows // 4, args.rows):
            for mode in ("baseline", "publish"):
                done = subprocess.run([sys.executable, __file__, "--child", mode, str(root), str(rows)],
                                      capture_output=True, text=True, check=True)
                results[(mode, rows)] = json.loads(done.stdout.strip().splitlines()[-1])
                r = results[(mode, rows)]
                print(f"{mode:8s} {rows:>9,d} rows: {r['seconds']:7.1f} s, peak RSS {r['peak_rss_mb']:7.0f} MB",
                      flush=True)
    small, big = args.rows // 4, args.rows
    pub, base = results[("publish", big)], results[("baseline", big)]
    print(f"publish / baseline at {big:,d} rows: time {pub['seconds'] / base['seconds']:.2f}x, "
          f"peak RSS {pub['peak_rss_mb'] / base['peak_rss_mb']:.2f}x")
    grow = pub["seconds"] / results[("publish", small)]["seconds"]
    rss = pub["peak_rss_mb"] - results[("publish", small)]["peak_rss_mb"]
    print(f"publish {small:,d} -> {big:,d} rows (4x): time {grow:.2f}x, peak RSS +{rss:.0f} MB")


if __name__ == "__main__":
    main()
