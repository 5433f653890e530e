"""Image-level diversity and fidelity of a set of CLIP image embeddings (rows L2-normalised).

Diversity: the mean pairwise cosine distance and the Vendi score (Friedman & Dieng, 2023). Fidelity against the
real images of the class: the Fréchet distance and KID (Bińkowski et al., 2018) in CLIP space, and precision /
recall of the real manifold by k-NN radii (Kynkäänniemi et al., 2019). The formulas are in docs/metrics.md. Every
function is numpy only and never forms more than a block of an n x m matrix, except KID (subset x subset).
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["mean_pairwise_distance", "vendi_score", "frechet_distance", "kid", "precision_recall", "group_metrics"]

_BLOCK = 2048


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean of ``1 - cos(x_i, x_j)`` over pairs ``i != j``, from the sum vector: ``1 - (|sum x|^2 - n) / (n(n-1))``."""
    x = _f64(x)
    n = len(x)
    if n < 2:
        return float("nan")
    s = x.sum(axis=0)
    return float(1.0 - (s @ s - np.einsum("ij,ij->", x, x)) / (n * (n - 1)))


def vendi_score(x: np.ndarray) -> float:
    """``exp(-sum λ log λ)`` over the eigenvalues λ of ``K / n``, ``K = X X^T`` (cosine kernel, unit diagonal).

    The non-zero eigenvalues of ``X X^T / n`` are those of ``X^T X / n`` (d x d), so this costs O(n d^2), not O(n^3).
    It is 1 for n identical images and n for n mutually orthogonal ones.
    """
    x = _f64(x)
    n = len(x)
    if n == 0:
        return float("nan")
    lam = np.linalg.eigvalsh(x.T @ x / n)
    lam = lam[lam > 1e-12]
    lam = lam / lam.sum()  # rows of unit norm make the trace 1 already; this absorbs rounding
    return float(np.exp(-(lam * np.log(lam)).sum()))


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """``|mu_x - mu_y|^2 + Tr(S_x + S_y - 2 (S_x^1/2 S_y S_x^1/2)^1/2)`` of the Gaussians fitted to x and y."""
    x, y = _f64(x), _f64(y)
    if len(x) < 2 or len(y) < 2:
        return float("nan")
    mx, my = x.mean(axis=0), y.mean(axis=0)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = _sqrt_psd(sx)
    cross = np.trace(_sqrt_psd(root @ sy @ root))
    return float(max(0.0, (mx - my) @ (mx - my) + np.trace(sx) + np.trace(sy) - 2 * cross))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid(x: np.ndarray, y: np.ndarray, subset: int = 1000, subsets: int = 10, seed: int = 0) -> float:
    """Kernel Inception Distance in CLIP space: the unbiased MMD^2 with the cubic kernel ``(x.y / d + 1)^3``,
    averaged over ``subsets`` random subsets of ``min(subset, len(x), len(y))`` rows of each."""
    x, y = _f64(x), _f64(y)
    size = min(subset, len(x), len(y))
    if size < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    vals = [_mmd2_unbiased(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
            for _ in range(subsets)]
    return float(np.mean(vals))


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0)


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance of each row to its k-th nearest other row."""
    out = np.empty(len(x))
    for s in range(0, len(x), _BLOCK):
        d = _sq_dists(x[s : s + _BLOCK], x)
        d[np.arange(len(d)), np.arange(s, s + len(d))] = np.inf
        out[s : s + len(d)] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return out


def _coverage(query: np.ndarray, ref: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of query rows inside at least one ball (ref_j, radius_j)."""
    inside = 0
    for s in range(0, len(query), _BLOCK):
        inside += int((_sq_dists(query[s : s + _BLOCK], ref) <= radii[None, :]).any(axis=1).sum())
    return inside / len(query)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision (fake images inside the real manifold) and recall (real images inside the fake manifold);
    a manifold is the union of balls around its points with radius the distance to the k-th nearest neighbour."""
    real, fake = _f64(real), _f64(fake)
    if len(real) <= k or len(fake) <= k:
        return float("nan"), float("nan")
    return (_coverage(fake, real, _knn_radii(real, k)), _coverage(real, fake, _knn_radii(fake, k)))


def group_metrics(fake: np.ndarray, real: np.ndarray | None, k: int = 3, kid_subset: int = 1000,
                  kid_subsets: int = 10, seed: int = 0) -> dict[str, float | int | None]:
    """Every metric of one group of synthetic embeddings (and the real ones of its class, when there are any); a
    NaN (too few images) is None."""
    out: dict[str, float | int] = {"images": int(len(fake)), "mean_distance": mean_pairwise_distance(fake),
                                   "vendi": vendi_score(fake)}
    if real is not None and len(real):
        precision, recall = precision_recall(real, fake, k)
        out.update(real_images=int(len(real)), frechet=frechet_distance(fake, real),
                   kid=kid(fake, real, kid_subset, kid_subsets, seed), precision=precision, recall=recall,
                   real_vendi=vendi_score(real))
    return {key: (v if isinstance(v, int) else round(v, 6) if np.isfinite(v) else None) for key, v in out.items()}
