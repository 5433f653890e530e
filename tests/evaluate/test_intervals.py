"""Bootstrap intervals of an accuracy and of a paired difference, and confused pairs, on inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from synthdiv.metrics.accuracy import bootstrap_ci, confused_pairs, paired_delta_ci


def _naive_bootstrap(stat, n: int, n_boot: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)])


def test_the_interval_of_a_known_accuracy():
    hits = np.zeros(10_000, dtype=bool)
    hits[:8_000] = True
    lo, hi = bootstrap_ci(hits, 4000, 0.95, seed=0)
    half = 1.96 * np.sqrt(0.8 * 0.2 / 10_000)  # the normal approximation: 0.0078
    assert lo == pytest.approx(0.8 - half, abs=0.0015) and hi == pytest.approx(0.8 + half, abs=0.0015)
    naive = _naive_bootstrap(lambda i: hits[i].mean(), len(hits), 1000)  # resampling the images themselves
    assert lo == pytest.approx(np.quantile(naive, 0.025), abs=0.0015)
    assert hi == pytest.approx(np.quantile(naive, 0.975), abs=0.0015)
    assert bootstrap_ci(hits, 500, 0.5, seed=0)[1] - bootstrap_ci(hits, 500, 0.5, seed=0)[0] < hi - lo


def test_a_paired_difference_cancels_what_both_models_share():
    rng = np.random.default_rng(0)
    a = rng.random(10_000) < 0.6
    b = a.copy()
    b[np.flatnonzero(~a)[:300]] = True  # b is right wherever a is, and on 300 more images
    lo, hi = paired_delta_ci(b, a, 4000, 0.95, seed=0)
    half = 1.96 * np.sqrt(0.03 * 0.97 / 10_000)  # the differences are 300 ones and 9,700 zeros
    assert lo == pytest.approx(0.03 - half, abs=0.001) and hi == pytest.approx(0.03 + half, abs=0.001)
    assert lo > 0  # an unpaired interval (two independent ±0.0096) would straddle zero
    naive = _naive_bootstrap(lambda i: b[i].mean() - a[i].mean(), len(a), 1000)
    assert lo == pytest.approx(np.quantile(naive, 0.025), abs=0.001)
    lo0, hi0 = paired_delta_ci(a, a, 1000, seed=0)
    assert lo0 == hi0 == 0.0
    with pytest.raises(ValueError, match="equal"):
        paired_delta_ci(a, a[:-1])


def test_confused_pairs_of_a_known_confusion_matrix():
    counts = np.array([[5, 3, 0], [1, 4, 0], [2, 2, 6]])  # rows: true class, columns: predicted
    labels = np.repeat(np.arange(3), counts.sum(1))
    top1 = np.concatenate([np.repeat(np.arange(3), row) for row in counts])
    pairs = confused_pairs(top1, labels, k=3)
    assert [(p["true"], p["pred"], p["count"]) for p in pairs] == [(0, 1, 3), (2, 0, 2), (2, 1, 2)]
    assert [p["share"] for p in pairs] == [pytest.approx(3 / 8), pytest.approx(0.2), pytest.approx(0.2)]
    assert confused_pairs(labels, labels) == []
