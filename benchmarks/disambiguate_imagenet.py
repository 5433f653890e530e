"""Benchmark (CPU): the disambiguate stage on all 1,000 ImageNet-1k classes, and with each LLM backend on a subset.

Counts what the method promises, on the real class list (timm's ImageNet metadata + Debian's WordNet) with the
embedded models (tiny random CLIP; SmolLM2-135M): ambiguous classes found, by reason; how many end on their bare name
(goal 0); distinct descriptions after CLIP tokenization (goal: one per class); sentences chosen as descriptions
(goal 0); stage wall time and LLM calls.

* ``grounded``: all 1,000 classes with ``disambiguate.candidates: 0`` (WordNet candidates and CLIP, no LLM);
* ``transformers``: the embedded SmolLM2 in-process, on a subset (``--llm-classes``; 1,000 classes at ~8 s per
  request on two loaded cores would take hours);
* ``llama.cpp``: the same model behind llama-cpp-python's OpenAI-compatible server (JSON-constrained decoding), on
  the same subset.

    .venv/bin/python benchmarks/disambiguate_imagenet.py                     # all three
    .venv/bin/python benchmarks/disambiguate_imagenet.py --only grounded --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["main", "bench"]

# The homonym pairs of issue 10, then polysemous classes spread over the label range.
SUBSET = ["n02012849", "n03126707", "n03710637", "n03710721", "n02113186", "n02963159", "n01608432", "n04389033",
          "n03793489", "n03000134", "n03110669", "n03141823", "n03201208", "n03482405", "n03532672", "n03584829",
          "n03676483", "n03691459", "n03782006", "n04004767"]
CLIP = {"backend": "open_clip", "model": "embedded", "device": "cpu"}


def _config(root: Path, source: dict[str, Any], llm: dict[str, Any] | None, candidates: int) -> Any:
    from synthdiv.config.loader import config_from_dict

    return config_from_dict({
        "run_dir": str(root), "classes": source,
        "disambiguate": {"candidates": candidates, "confusable": 5, "max_retries": 1},
        "models": {"clip": CLIP, **({"llm": llm} if llm else {})},
    })


def _measure(cfg: Any) -> dict[str, Any]:
    from open_clip.tokenizer import SimpleTokenizer

    from synthdiv.core.rundir import RunDir
    from synthdiv.engine.runner import run_stage
    from synthdiv.stages.disambiguate.validate import sentence_reason
    from synthdiv.utils.io import read_jsonl

    run_stage(cfg, "classes", redo=True)
    start = time.perf_counter()
    summary = run_stage(cfg, "disambiguate", redo=True)
    wall = time.perf_counter() - start
    rows = read_jsonl(RunDir(cfg.run_dir).resolved)
    tokenizer = SimpleTokenizer()
    ambiguous = [r for r in rows if r.get("ambiguity")]
    return {
        "classes": len(rows),
        "ambiguous": len(ambiguous),
        "by_reason": dict(Counter(k for r in ambiguous for k in r["ambiguity"]["kinds"])),
        "settled_by": dict(Counter(r["chosen_by"].split(";")[0] for r in ambiguous)),
        "bare": sum(r["description"].casefold() == r["name"].casefold() for r in ambiguous),
        "distinct_token_descriptions": len({tuple(tokenizer.encode(r["description"])) for r in rows}),
        "sentences": sum(sentence_reason(r["description"]) is not None for r in rows),
        "wall_s": round(wall, 2),
        "llm_requests": summary.get("llm_requests", 0),
        "llm_calls": summary.get("llm_cache_misses", 0),
        "fallbacks": summary.get("fallbacks", 0),
        "examples": {r["wnid"]: r["description"] for r in rows if r["wnid"] in SUBSET[:9]},
    }


def bench(only: list[str], llm_classes: int, candidates: int) -> dict[str, Any]:
    """Run each setting in its own temporary run directory; returns the counts and timings per setting."""
    from synthdiv.models.llm.llama_server import serve_embedded

    subset = {"source": "imagenet-1k", "subset": SUBSET[:llm_classes]}
    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="synthdiv-bench-") as tmp:
        if "grounded" in only:
            result["grounded"] = _measure(_config(Path(tmp) / "grounded", {"source": "imagenet-1k"}, None, 0))
        if "transformers" in only:
            llm = {"backend": "transformers", "model": "embedded", "device": "cpu"}
            result["transformers"] = _measure(_config(Path(tmp) / "tf", subset, llm, candidates))
        if "llama.cpp" in only:
            with serve_embedded(Path(tmp) / "llama-server.log") as url:
                llm = {"backend": "openai", "model": "smollm2",
                       "options": {"base_url": url, "schema_format": "json_object", "timeout_s": 300}}
                result["llama.cpp"] = _measure(_config(Path(tmp) / "llama", subset, llm, candidates))
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=["grounded", "transformers", "llama.cpp"],
                        choices=["grounded", "transformers", "llama.cpp"])
    parser.add_argument("--llm-classes", type=int, default=len(SUBSET), help=f"subset size (at most {len(SUBSET)})")
    parser.add_argument("--candidates", type=int, default=3, help="LLM candidates per class")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    result = bench(args.only, args.llm_classes, args.candidates)
    print(f"disambiguate on ImageNet-1k, embedded models on the CPU, load average at start "
          f"{result['load_avg_1m']:.1f} on {result['cpus']} CPUs")
    print(f"{'setting':13} {'classes':>7} {'ambiguous':>9} {'bare':>5} {'distinct tok':>12} {'sentences':>9} "
          f"{'wall s':>8} {'LLM calls':>9}  by reason / settled by")
    for name in ("grounded", "transformers", "llama.cpp"):
        if name in result:
            r = result[name]
            print(f"{name:13} {r['classes']:7d} {r['ambiguous']:9d} {r['bare']:5d} "
                  f"{r['distinct_token_descriptions']:12d} {r['sentences']:9d} {r['wall_s']:8.1f} "
                  f"{r['llm_calls']:9d}  {r['by_reason']} / {r['settled_by']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
