"""Benchmark: requests/s of the openai backend against a local llama.cpp server at concurrency 1, 4 and 16.

Starts llama-cpp-python's OpenAI-compatible server on a free loopback port with the embedded SmolLM2-135M GGUF
(as tests/llm/test_llama_server.py does), then sends the same set of context-style requests (distinct seeds, no
cache) through ``complete_many`` at each concurrency; concurrency 1 is the sequential path, the baseline of the
same run. A second part times the same requests through the transformers backend (in process): one by one, then
through ``complete_many`` (batched generation). Rates are medians over rounds.

    .venv/bin/python benchmarks/llm_concurrency.py [--requests 16] [--max-tokens 24] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["main"]

CLASSES = ("goldfish", "tabby cat", "school bus", "crane", "volcano", "espresso", "harp", "lighthouse")


def _requests(n: int, max_tokens: int, offset: int) -> list[Any]:
    from synthdiv.models.llm import templates
    from synthdiv.models.llm.base import Request

    out = []
    for i in range(n):
        messages, _ = templates.render("contexts.v1", k=3, description=CLASSES[i % len(CLASSES)])
        out.append(Request(messages, temperature=0.8, seed=1000 * offset + i, max_tokens=max_tokens))
    return out


def _rate(llm: Any, requests: list[Any], batched: bool) -> tuple[float, float]:
    """(requests/s, mean characters per answer: the answers must be as long on every path)."""
    from synthdiv.models.llm.base import complete_many

    start = time.perf_counter()
    answers = complete_many(llm, requests) if batched else [r.send(llm) for r in requests]
    assert len(answers) == len(requests)
    return len(requests) / (time.perf_counter() - start), statistics.mean(len(a[0]) for a in answers)


def bench_openai(n: int, max_tokens: int, rounds: int, threads: int, levels: list[int]) -> dict[str, Any]:
    from synthdiv.config.models import LLMSpec
    from synthdiv.models.llm import create_llm

    out: dict[str, Any] = {}
    from synthdiv.models.llm.llama_server import serve_embedded

    with tempfile.TemporaryDirectory() as tmp, serve_embedded(Path(tmp) / "server.log", threads=threads) as url:
        llms = {c: create_llm(LLMSpec(backend="openai", model="smollm2", options={
            "base_url": url, "concurrency": c, "schema_format": "none", "timeout_s": 600})) for c in levels}
        _rate(llms[levels[0]], _requests(2, max_tokens, 99), batched=False)  # warm-up
        runs: dict[int, list[tuple[float, float]]] = {c: [] for c in levels}
        for r in range(rounds):
            for c in levels if r % 2 == 0 else levels[::-1]:
                runs[c].append(_rate(llms[c], _requests(n, max_tokens, r), batched=True))
    base = statistics.median(x for x, _ in runs[levels[0]])
    for c in levels:
        med, chars = statistics.median(x for x, _ in runs[c]), statistics.mean(y for _, y in runs[c])
        out[f"concurrency_{c}"] = {"requests_per_s": round(med, 3), "vs_concurrency_1": round(med / base, 3),
                                   "mean_answer_chars": round(chars, 1)}
        print(f"openai -> llama-cpp-python server, concurrency {c:2d}: {med:.3f} requests/s "
              f"({med / base:.2f}x concurrency {levels[0]}), {chars:.0f} characters per answer", flush=True)
    return out


def bench_transformers(n: int, max_tokens: int, rounds: int, threads: int) -> dict[str, Any]:
    from synthdiv.config.models import LLMSpec
    from synthdiv.models.llm import create_llm

    llm = create_llm(LLMSpec(backend="transformers", model="embedded", device="cpu",
                             options={"batch_size": 8, "torch_threads": threads}))
    _rate(llm, _requests(1, 4, 99), batched=False)  # load the model outside the timing
    runs: dict[str, list[tuple[float, float]]] = {"one_by_one": [], "complete_many": []}
    for r in range(rounds):
        for name in ("one_by_one", "complete_many") if r % 2 == 0 else ("complete_many", "one_by_one"):
            runs[name].append(_rate(llm, _requests(n, max_tokens, r), batched=name == "complete_many"))
    med = {k: statistics.median(x for x, _ in v) for k, v in runs.items()}
    chars = {k: statistics.mean(y for _, y in v) for k, v in runs.items()}
    ratio = med["complete_many"] / med["one_by_one"]
    print(f"transformers in process: one by one {med['one_by_one']:.3f} requests/s ({chars['one_by_one']:.0f} "
          f"characters per answer), complete_many (batch 8) {med['complete_many']:.3f} requests/s "
          f"({chars['complete_many']:.0f} characters) ({ratio:.2f}x)", flush=True)
    return {**{k: round(v, 3) for k, v in med.items()}, "ratio": round(ratio, 3)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="server / torch CPU threads")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--skip-transformers", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    out = {"openai": bench_openai(args.requests, args.max_tokens, args.rounds, args.threads, args.levels)}
    if not args.skip_transformers:
        out["transformers"] = bench_transformers(args.requests, args.max_tokens, args.rounds, args.threads)
    print(json.dumps(out, indent=2))  # noqa: T201 - a benchmark script's output
    return out


if __name__ == "__main__":
    main()
