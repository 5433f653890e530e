"""Benchmark: near-duplicate search and diversity metrics of one class, blocked vs a naive full matrix, same run.

Each method runs in a fresh child process on the same seeded embeddings (n unit vectors of dimension d in float16,
as ``embeddings/synthetic.npy`` stores them, with planted duplicates); the child reports its wall time and its peak
RSS above what it held once the inputs were made. Methods:

- ``blocked``: :func:`synthdiv.metrics.near_duplicates.nearest_within` (torch, ``--block`` rows at a time);
- ``naive``: the whole n x n cosine matrix in numpy float32, argmax per row, pairs above the threshold;
- ``metrics``: :func:`synthdiv.metrics.diversity.group_metrics` without real images (mean distance from the sum
  vector, Vendi from the d x d Gram matrix);
- ``metrics-naive``: the same two numbers from the n x n matrix (mean of its off-diagonal, eigenvalues of K / n).

    .venv/bin/python benchmarks/near_duplicates.py [--n 4000] [--d 768] [--block 1024]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

__all__ = ["main"]

METHODS = ("blocked", "naive", "metrics", "metrics-naive")


def _inputs(n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[1::50] = x[0::50][: len(x[1::50])] + 0.01 * rng.standard_normal((len(x[1::50]), d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(method: str, n: int, d: int, block: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    emb = _inputs(n, d)
    if method.startswith("metrics"):
        from synthdiv.metrics.diversity import group_metrics  # noqa: F401  (import cost outside the timing)
    base = _rss_mb()
    start = time.perf_counter()
    if method == "blocked":
        from synthdiv.metrics.near_duplicates import nearest_within

        nn, groups = nearest_within(emb, 0.95, block, "cpu")
        out = {"dup_rows": int((groups != np.arange(n)).sum()), "nn0": int(nn.index[0])}
    elif method == "naive":
        x = emb.astype(np.float32)
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        nn_index = sims.argmax(axis=1)
        pairs = np.argwhere(np.triu(sims >= 0.95, 1))
        out = {"dup_rows": int(len(np.unique(pairs[:, 1]))), "nn0": int(nn_index[0])}
    elif method == "metrics":
        from synthdiv.metrics.diversity import group_metrics

        m = group_metrics(emb, None)
        out = {"mean_distance": m["mean_distance"], "vendi": m["vendi"]}
    else:
        x = emb.astype(np.float64)
        k = x @ x.T
        mean = float(1 - k[~np.eye(n, dtype=bool)].mean())
        lam = np.clip(np.linalg.eigvalsh(k / n), 1e-12, None)
        lam = lam[lam > 1e-12]
        out = {"mean_distance": round(mean, 6), "vendi": round(float(np.exp(-(lam * np.log(lam)).sum())), 6)}
    return {"seconds": time.perf_counter() - start, "peak_mb": _rss_mb() - base, **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="synthetic images of the class")
    parser.add_argument("--d", type=int, default=768, help="embedding dimension (ViT-L/14: 768)")
    parser.add_argument("--block", type=int, default=1024)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.n, args.d, args.block)))
        return
    results = {}
    for method in args.methods.split(","):
        cmd = [sys.executable, __file__, "--child", method, "--n", str(args.n), "--d", str(args.d),
               "--block", str(args.block)]
        results[method] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(method, results[method], flush=True)
    for fast, slow in (("blocked", "naive"), ("metrics", "metrics-naive")):
        if fast in results and slow in results:
            a, b = results[fast], results[slow]
            print(f"{fast} vs {slow}: time {a['seconds'] / b['seconds']:.3f}x, peak memory "
                  f"{a['peak_mb'] / max(b['peak_mb'], 1e-9):.3f}x ({a['peak_mb']:.0f} vs {b['peak_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
