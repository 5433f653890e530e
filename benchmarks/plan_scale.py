"""Benchmark: plan 6x ImageNet-1k (7,687,002 images over 1,000 classes) and report time and peak memory.

Each measurement runs in a fresh child process so that its peak RSS is its own. The baseline, run in the same
invocation, writes a table of the same rows (five columns, same schema) straight to Parquet with pyarrow: the
floor any columnar planner pays. Goal (issue 4): under 60 s and 2 GB peak on a 2-core CPU machine.

    .venv/bin/python benchmarks/plan_scale.py [--classes 1000] [--multiple 6] [--contexts 50] [--styles 20]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["main"]

IMAGENET_1K_TRAIN = 1_281_167


def _real_counts(n_classes: int) -> list[int]:
    base, extra = divmod(IMAGENET_1K_TRAIN * n_classes // 1000, n_classes)
    return [base + (1 if i < extra else 0) for i in range(n_classes)]


def _setup(root: Path, n_classes: int, contexts: int, styles: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthdiv.core.ids import prompt_id
    from synthdiv.core.rundir import RunDir
    from synthdiv.core.schemas import PROMPTS_SCHEMA
    from synthdiv.utils.io import atomic_write_jsonl

    run = RunDir(root)
    rows = [
        {"index": i, "name": f"class {i}", "wnid": None, "definition": None, "real_images": n, "real_dir": None,
         "description": f"thing {i}", "candidates": [], "status": "ok", "llm_id": None, "template_id": None}
        for i, n in enumerate(_real_counts(n_classes))
    ]
    atomic_write_jsonl(run.resolved, rows)
    cols: dict[str, list] = {name: [] for name in PROMPTS_SCHEMA.names}
    for i in range(n_classes):
        texts = [("base", f"a photo of a thing {i}")]
        texts += [("context", f"a photo of thing {i} in scene {j}") for j in range(contexts)]
        texts += [("style", f"a style {j} of a thing {i}") for j in range(styles)]
        for kind, text in texts:
            for name, value in zip(PROMPTS_SCHEMA.names, (prompt_id(i, kind, text), i, f"class {i}", kind, text,
                                                          "", None, None, "bench", None), strict=True):
                cols[name].append(value)
    pq.write_table(pa.table(cols, schema=PROMPTS_SCHEMA), run.prompts)


def _child(mode: str, root: Path, multiple: float) -> dict:
    import pyarrow.parquet as pq

    from synthdiv.config.loader import config_from_dict
    from synthdiv.core.rundir import RunDir

    run = RunDir(root)
    start = time.perf_counter()
    if mode == "plan":
        from synthdiv.stages.plan.stage import build_plan

        cfg = config_from_dict({"run_dir": str(root), "plan": {"multiple_of_real": multiple}})
        summary = build_plan(cfg, run)
        result = {"images": summary["images"], "shards": summary["shards"]}
    else:
        table = pq.read_table(run.plan)  # the same rows, already made
        start = time.perf_counter()
        pq.write_table(table, root / "baseline.parquet", compression="zstd", row_group_size=1 << 20)
        result = {"images": table.num_rows}
    result["seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _spawn(mode: str, root: Path, multiple: float) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--root", str(root), "--multiple", str(multiple)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--multiple", type=float, default=6.0)
    parser.add_argument("--contexts", type=int, default=50)
    parser.add_argument("--styles", type=int, default=20)
    parser.add_argument("--child", choices=["plan", "baseline"])
    parser.add_argument("--root", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.root, args.multiple)))
        return
    with tempfile.TemporaryDirectory(prefix="plan-bench-") as tmp:
        root = Path(tmp)
        _setup(root, args.classes, args.contexts, args.styles)
        plan = _spawn("plan", root, args.multiple)
        base = _spawn("baseline", root, args.multiple)
    print(f"plan:     {plan['images']:,} images, {plan['shards']:,} shards, {plan['seconds']:.1f} s, "
          f"peak RSS {plan['peak_rss_mb']:.0f} MB")
    print(f"baseline: pyarrow write of the same {base['images']:,} rows, {base['seconds']:.1f} s, "
          f"peak RSS {base['peak_rss_mb']:.0f} MB")
    time_ratio, rss_ratio = plan["seconds"] / base["seconds"], plan["peak_rss_mb"] / base["peak_rss_mb"]
    print(f"ratio:    time {time_ratio:.2f}x, peak RSS {rss_ratio:.2f}x (goal: < 60 s and < 2048 MB)")


if __name__ == "__main__":
    main()
