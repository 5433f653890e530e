"""Benchmark of the LLM layer as the disambiguate stage uses it: calls per class and wall time, cold and warm cache.

For 10 ImageNet-1k classes (eight of them ambiguous: two "crane", two "maillot", "Cardigan" and "cardigan", "drake",
"tiger cat") it renders ``disambiguate.v1`` with the WordNet gloss and the other classes' names, and runs
``ask_list`` through ``create_llm`` with an on-disk cache: once with an empty cache (cold), once again (warm).
It prints one JSON object: LLM calls per class, wall seconds, classes answered in full, cache hits and misses.

    .venv/bin/python benchmarks/llm_calls.py                       # embedded SmolLM2 through transformers
    .venv/bin/python benchmarks/llm_calls.py --backend openai --option base_url=http://127.0.0.1:8000/v1 \\
        --option schema_format=json_object                          # e.g. llama-cpp-python's server

Not a test: numbers depend on the machine and on how busy it is. Results go to benchmarks/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from synthdiv.config.models import LLMSpec  # noqa: E402
from synthdiv.models.llm import (
    create_llm,
    templates,  # noqa: E402
)
from synthdiv.models.llm.structured import ask_list  # noqa: E402

logger = logging.getLogger(__name__)

CLASSES = (1, 97, 134, 264, 282, 474, 517, 638, 639, 847)  # ImageNet-1k indices


def _classes() -> list[tuple[str, str]]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    out = []
    for idx in CLASSES:
        names = info.index_to_description(idx)
        gloss = info.index_to_description(idx, detailed=True).split(": ", 1)[-1]
        out.append((names.split(", ")[0], gloss))
    return out


def _pass(llm, classes: list[tuple[str, str]], k: int, max_tokens: int, max_retries: int) -> dict:
    t0 = time.perf_counter()
    attempts, full = 0, 0
    for i, (name, gloss) in enumerate(classes):
        others = [n for j, (n, _) in enumerate(classes) if j != i][:5]
        messages, _ = templates.render("disambiguate.v1", name=name, definition=gloss, others=others, k=k)
        ans = ask_list(llm, messages, n_items=k, max_retries=max_retries, seed=i, max_tokens=max_tokens, max_len=120)
        attempts += ans.attempts
        full += ans.ok
        logger.info("%s: %d attempts, %s", name, ans.attempts, ans.items)
    stats = dict(llm.stats.as_dict())
    return {
        "wall_s": round(time.perf_counter() - t0, 2),
        "llm_calls": stats["misses"],
        "llm_calls_per_class": round(stats["misses"] / len(classes), 2),
        "ask_attempts_per_class": round(attempts / len(classes), 2),
        "classes_with_k_items": full,
        "cache": stats,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="transformers")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--option", action="append", default=[], help="KEY=VALUE backend option (repeatable)")
    ap.add_argument("--k", type=int, default=5, help="candidate descriptions per class")
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--max-retries", type=int, default=2)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)  # numbers, booleans, lists
        except ValueError:
            options[key] = value
    spec = LLMSpec(backend=args.backend, model=args.model, options=options)
    classes = _classes()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cold_llm = create_llm(spec, cache_dir=Path(tmp) / "cache")
        if hasattr(cold_llm.inner, "_load"):  # load the model outside the timed pass (reported separately)
            cold_llm.inner._load()
        load_s = time.perf_counter() - t0
        cold = _pass(cold_llm, classes, args.k, args.max_tokens, args.max_retries)
        warm = _pass(create_llm(spec, cache_dir=Path(tmp) / "cache"), classes, args.k, args.max_tokens,
                     args.max_retries)
    result = {
        "llm": cold_llm.model_id,
        "classes": len(classes),
        "k": args.k,
        "max_tokens": args.max_tokens,
        "max_retries": args.max_retries,
        "model_load_s": round(load_s, 2),
        "cold": cold,
        "warm": warm,
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
