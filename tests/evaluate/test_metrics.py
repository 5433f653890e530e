"""Accuracy metrics on inputs with known answers: top-1 / top-5 and per-class accuracy, the long-tail splits, named
confused pairs, and the bootstrap intervals' exact recipe (their statistics are in test_intervals.py)."""

from __future__ import annotations

import numpy as np
import pytest

from synthdiv.metrics.accuracy import (
    accuracy_report,
    bootstrap_ci,
    confused_pairs,
    long_tail_splits,
    named_confused_pairs,
    paired_delta_ci,
)


def test_accuracy_report_counts_top1_top5_and_each_class():
    topk = np.array([[0, 1, 2, 3, 4, 5], [1, 0, 2, 3, 4, 5], [2, 1, 3, 4, 5, 0], [5, 4, 3, 2, 1, 0],
                     [2, 1, 0, 3, 4, 5]])
    labels = np.array([0, 0, 0, 0, 2])  # the true class at ranks 1, 2, 6 (not in the top 5), 6 and 1
    assert accuracy_report(topk, labels, ["a", "b", "c"]) == {
        "images": 5, "top1": 0.4, "top5": 0.6, "per_class": {"a": 0.25, "b": None, "c": 1.0},
        "per_class_images": {"a": 4, "b": 0, "c": 1},
    }
    assert accuracy_report(topk[:, :1], labels, ["a", "b", "c"])["top5"] == 0.4  # k = 1: top-5 is top-1
    empty = accuracy_report(np.zeros((0, 5), int), np.zeros(0, int), ["a"])
    assert empty == {"images": 0, "top1": None, "top5": None, "per_class": {"a": None}, "per_class_images": {"a": 0}}


def test_long_tail_splits_follow_the_thresholds():
    train_counts = [150, 101, 100, 20, 19, 0]  # many: > 100; medium: 20..100; few: < 20
    labels = np.array([0, 0, 1, 2, 2, 3, 4, 4, 4])
    hit1 = np.array([1, 0, 1, 1, 1, 0, 1, 0, 0], dtype=bool)
    assert long_tail_splits(hit1, labels, train_counts) == {
        "many": {"classes": 2, "images": 3, "top1": pytest.approx(2 / 3)},
        "medium": {"classes": 2, "images": 3, "top1": pytest.approx(2 / 3)},
        "few": {"classes": 2, "images": 3, "top1": pytest.approx(1 / 3)},
    }
    custom = long_tail_splits(hit1, labels, train_counts, many=19, few=1)
    assert [custom[k]["classes"] for k in ("many", "medium", "few")] == [4, 1, 1]
    assert custom["few"] == {"classes": 1, "images": 0, "top1": None}  # class 5 has no test image
    none = long_tail_splits(np.zeros(0, bool), np.zeros(0, int), train_counts)
    assert none["many"] == {"classes": 2, "images": 0, "top1": None}


def test_named_confused_pairs_name_both_classes_and_keep_the_k_most_frequent():
    labels = np.repeat(np.arange(6), 6)
    top1 = np.array([(c + 1 + i % 5) % 6 for c in range(6) for i in range(6)])  # every error, class c -> 5 others
    names = [f"c{i}" for i in range(6)]
    pairs = named_confused_pairs(top1, labels, names)
    assert len(pairs) == 20 and len(confused_pairs(top1, labels)) == 10  # the defaults: 20 and 10 pairs
    assert pairs[0] == {"true": 0, "pred": 1, "count": 2, "share": pytest.approx(2 / 6), "true_name": "c0",
                        "pred_name": "c1"}
    assert all(p["true_name"] == names[p["true"]] and p["pred_name"] == names[p["pred"]] for p in pairs)
    assert named_confused_pairs(top1[:0], labels[:0], names) == []


def test_bootstrap_intervals_are_percentiles_of_seeded_binomial_and_multinomial_draws():
    # 10M images: the replicates are nearly continuous, so one more draw, another seed or another level moves the
    # interval, and the exact comparisons pin the defaults (2000 draws, 95 %, seed 0)
    n = 10_000_000
    hits = np.zeros(n, dtype=bool)
    hits[:7_000_000] = True
    for args, (n_boot, level, seed) in (((), (2000, 0.95, 0)), ((500, 0.5, 3), (500, 0.5, 3))):
        draws = np.random.default_rng(seed).binomial(n, 0.7, n_boot) / n
        expected = tuple(np.quantile(draws, [(1 - level) / 2, (1 + level) / 2]))
        assert bootstrap_ci(hits, *args) == pytest.approx(expected, abs=0)
    b = hits.copy()
    b[7_000_000:7_500_000] = True  # b right on 500,000 more images
    b[:200_000] = False  # and wrong on 200,000 that a gets
    draws = np.random.default_rng(0).multinomial(n, [0.02, 0.93, 0.05], 2000)
    expected = tuple(np.quantile((draws[:, 2] - draws[:, 0]) / n, [0.025, 0.975]))
    assert paired_delta_ci(b, hits) == pytest.approx(expected, abs=0)
    with pytest.raises(ValueError, match=r"^bootstrap_ci: no test images$"):
        bootstrap_ci(hits[:0])
    with pytest.raises(ValueError, match=r"^paired_delta_ci: expected two equal, non-empty hit arrays, got 0 and 0$"):
        paired_delta_ci(hits[:0], hits[:0])
