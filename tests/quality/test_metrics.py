"""Diversity and fidelity metrics on embeddings whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from synthdiv.metrics.diversity import (
    frechet_distance,
    group_metrics,
    kid,
    mean_pairwise_distance,
    precision_recall,
    vendi_score,
)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_vendi_counts_distinct_images():
    eye = np.eye(8)
    assert vendi_score(eye) == pytest.approx(8.0)  # orthogonal: 8 different images
    assert vendi_score(np.repeat(eye[:1], 10, axis=0)) == pytest.approx(1.0)  # one image ten times
    assert vendi_score(np.repeat(eye[:4], 5, axis=0)) == pytest.approx(4.0)  # four images, five copies each
    x = _unit(np.random.default_rng(0).standard_normal((50, 16)))
    k = x @ x.T  # the published definition: eigenvalues of K / n
    lam = np.clip(np.linalg.eigvalsh(k / 50), 1e-15, None)
    assert vendi_score(x) == pytest.approx(np.exp(-(lam * np.log(lam)).sum()), rel=1e-6)


def test_mean_pairwise_distance_matches_the_pairs():
    x = _unit(np.random.default_rng(1).standard_normal((40, 8)))
    d = 1 - x @ x.T
    assert mean_pairwise_distance(x) == pytest.approx(d[~np.eye(40, dtype=bool)].mean())
    assert mean_pairwise_distance(np.eye(5)) == pytest.approx(1.0)
    assert mean_pairwise_distance(np.ones((3, 4)) / 2) == pytest.approx(0.0)


def test_fidelity_of_identical_and_shifted_sets():
    rng = np.random.default_rng(2)
    x = _unit(rng.standard_normal((400, 8)))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert abs(kid(x, x, subset=400, subsets=1)) < 0.005  # unbiased: about 0 (the diagonal's share, O(1/n))
    assert precision_recall(x, x, k=3) == (1.0, 1.0)
    shifted = x + np.array([0.5] + [0.0] * 7)
    assert frechet_distance(x, shifted) == pytest.approx(0.25, rel=1e-6)  # |mean difference|^2, same covariance
    assert kid(x, shifted, subset=200, subsets=3) > 0.05 > 10 * abs(kid(x, x[::-1], subset=200, subsets=3))
    far = x + 10.0
    precision, recall = precision_recall(x, far, k=3)
    assert precision == 0.0 and recall == 0.0


def test_precision_without_recall_for_a_collapsed_set():
    rng = np.random.default_rng(3)
    real = rng.standard_normal((500, 2))
    corner = np.argsort(np.linalg.norm(real - 1.5, axis=1))[:50]
    fake = real[corner]  # mode collapse: one corner of the real manifold, all of it real-looking
    precision, recall = precision_recall(real, fake, k=3)
    assert precision == 1.0 and recall < 0.3
    assert precision_recall(real, real[:50], k=3)[1] > 0.9  # the same count spread over the manifold recalls it


def test_group_metrics_without_real_images_and_tiny_groups():
    out = group_metrics(np.eye(4), None)
    assert out["images"] == 4 and out["vendi"] == pytest.approx(4.0) and "kid" not in out
    tiny = group_metrics(np.eye(4)[:1], np.eye(4))
    assert tiny["mean_distance"] is None and tiny["precision"] is None  # too few images: no number, no NaN
