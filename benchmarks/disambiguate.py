"""Benchmark (CPU): the disambiguate stage on 10 Fashion-MNIST classes with the embedded models, cold and warm.

Cold: a fresh run directory, so every LLM request goes to SmolLM2-135M (transformers backend). Warm: the same
stage again in the same run directory, so every request is served from the on-disk LLM cache and the model is
never asked. Both are timed in one process, wall clock, model loading included; the ratio cold / warm is what the
cache saves on a rerun. Also printed: LLM requests per class (ask_list attempts, retries included) and real LLM
calls per class (cache misses).

    .venv/bin/python benchmarks/disambiguate.py                 # 10 classes, K=3 (the quickstart's settings)
    .venv/bin/python benchmarks/disambiguate.py --classes 3 --candidates 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["main", "bench"]

SMOKE_TRAIN = Path(__file__).resolve().parents[1] / "data" / "fashion-mnist-smoke" / "train"


def _config(root: Path, candidates: int, max_tokens: int | None, max_retries: int) -> Any:
    from synthdiv.config.loader import config_from_dict

    return config_from_dict({
        "run_dir": str(root),
        "disambiguate": {"candidates": candidates, "confusable": 3, "images_per_class": 8, "max_retries": max_retries,
                         "max_tokens": max_tokens},
        "models": {"llm": {"backend": "transformers", "model": "embedded"},
                   "clip": {"backend": "open_clip", "model": "embedded"}},
    })


def _write_classes(root: Path, n: int) -> list[str]:
    folders = sorted(p for p in SMOKE_TRAIN.iterdir() if p.is_dir())[:n]
    if len(folders) < n:
        raise SystemExit(f"{SMOKE_TRAIN} has {len(folders)} classes, {n} asked")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "classes.jsonl", "w", encoding="utf-8") as fh:
        for i, folder in enumerate(folders):
            row = {"index": i, "name": folder.name.replace("_", " "), "wnid": None, "definition": None,
                   "real_images": sum(1 for _ in folder.iterdir()), "real_dir": str(folder)}
            fh.write(json.dumps(row) + "\n")
    return [f.name for f in folders]


def bench(
    n_classes: int = 10, candidates: int = 3, max_tokens: int | None = None, max_retries: int = 1
) -> dict[str, Any]:
    """Run the stage cold then warm in a temporary run directory; returns timings and counts."""
    from synthdiv.core.rundir import RunDir
    from synthdiv.stages.disambiguate.stage import resolve_classes
    from synthdiv.utils.io import read_jsonl

    with tempfile.TemporaryDirectory(prefix="synthdiv-bench-") as tmp:
        root = Path(tmp) / "run"
        _write_classes(root, n_classes)
        cfg, run = _config(root, candidates, max_tokens, max_retries), RunDir(root)
        result: dict[str, Any] = {"classes": n_classes, "candidates": candidates, "max_retries": max_retries,
                                  "max_tokens": max_tokens, "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
        for phase in ("cold", "warm"):
            start = time.perf_counter()
            summary = resolve_classes(cfg, run)
            result[phase] = {
                "wall_s": round(time.perf_counter() - start, 2),
                "llm_requests_per_class": summary["llm_requests"] / n_classes,
                "llm_calls_per_class": summary["llm_cache_misses"] / n_classes,
                "cache_hits": summary["llm_cache_hits"],
                "fallbacks": summary["fallbacks"],
                "changed": summary["changed"],
            }
        result["cold_over_warm"] = round(result["cold"]["wall_s"] / max(result["warm"]["wall_s"], 1e-9), 1)
        result["descriptions"] = {r["name"]: r["description"] for r in read_jsonl(run.resolved)}
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=None, help="LLM token budget (default: 48 per K + 32)")
    parser.add_argument("--max-retries", type=int, default=1, help="corrective LLM retries per class")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = bench(args.classes, args.candidates, args.max_tokens, args.max_retries)
    print(f"disambiguate, {result['classes']} classes, K={result['candidates']}, embedded SmolLM2 + tiny CLIP (CPU), "
          f"load average at start {result['load_avg_1m']:.1f} on {result['cpus']} CPUs")
    print(f"{'':6} {'wall s':>8} {'requests/class':>15} {'LLM calls/class':>16} {'cache hits':>11} {'fallbacks':>10}")
    for phase in ("cold", "warm"):
        r = result[phase]
        print(f"{phase:6} {r['wall_s']:8.2f} {r['llm_requests_per_class']:15.2f} {r['llm_calls_per_class']:16.2f} "
              f"{r['cache_hits']:11d} {r['fallbacks']:10d}")
    print(f"cold / warm wall time: {result['cold_over_warm']}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
