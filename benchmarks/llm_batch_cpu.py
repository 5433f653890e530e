"""Benchmark of the transformers LLM backend's ``options.batch_size`` on the CPU: the same requests (free decoding,
one sampling setting, each its own seed) at several batch sizes, in one run, as ratios to batch size 8 (the old
default). It also checks that every batch size gives the same answers (a sample depends only on its prompt and seed).

    .venv/bin/python benchmarks/llm_batch_cpu.py                    # 32 requests of up to 128 tokens, sizes 8 16 32
    .venv/bin/python benchmarks/llm_batch_cpu.py --requests 16 --sizes 4 8 16 --rounds 2

Not a test: numbers depend on the machine and on how busy it is. Results go to benchmarks/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from synthdiv.config.models import LLMSpec  # noqa: E402
from synthdiv.models.llm import create_llm  # noqa: E402
from synthdiv.models.llm.base import Request  # noqa: E402

MESSAGES = [{"role": "user", "content": "Write a JSON list of three short descriptions of a crane (the bird)."}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--rounds", type=int, default=1, help="rounds per size, sizes interleaved; the best is kept")
    args = parser.parse_args()
    requests = [Request(MESSAGES, temperature=0.8, seed=s, max_tokens=args.max_tokens) for s in range(args.requests)]
    seconds: dict[int, list[float]] = {size: [] for size in args.sizes}
    answers: dict[int, list[list[str]]] = {}
    for _ in range(args.rounds):
        for size in args.sizes:
            llm = create_llm(LLMSpec(backend="transformers", model="embedded", device="cpu",
                                     options={"constrained": False, "batch_size": size}))
            llm._load()  # one model per process: loaded once, outside the clock
            t0 = time.perf_counter()
            answers[size] = llm.complete_many(requests)
            seconds[size].append(time.perf_counter() - t0)
    base = 8 if 8 in seconds else args.sizes[0]
    print(json.dumps({
        "requests": args.requests, "max_tokens": args.max_tokens, "rounds": args.rounds,
        "seconds": {size: round(min(s), 2) for size, s in seconds.items()},
        f"speed_vs_batch_{base}": {size: round(min(seconds[base]) / min(s), 2) for size, s in seconds.items()},
        "same_answers": all(a == answers[base] for a in answers.values()),
    }, indent=1))


if __name__ == "__main__":
    main()
