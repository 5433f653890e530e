"""The filter decisions (``synthdiv.stages.score.filters``), each pinned by its outcome on small hand-made inputs:
which images a threshold, a per-class quantile, a cross-class rank or probability, near-duplicate groups and the
real-data classifier keep, the keep rates per class, and the names a config resolves."""

from __future__ import annotations

import numpy as np
import pytest

from synthdiv.errors import ConfigError
from synthdiv.stages.score.filters import (
    classifier_mask,
    cross_class_mask,
    duplicate_mask,
    keep_mask,
    keep_rates,
    resolve_filters,
)

NAN = float("nan")


def test_keep_mask_threshold_is_inclusive_and_unscored_images_are_dropped():
    sim = np.array([0.1, 0.2, 0.3, NAN])
    labels = np.zeros(4, dtype=int)
    assert keep_mask(sim, labels, None, None).tolist() == [True, True, True, False]
    assert keep_mask(sim, labels, 0.2, None).tolist() == [False, True, True, False]


@pytest.mark.parametrize(("q", "kept"), [
    (0.5, [False, True, True, False, False, True]),  # class 0: ceil(0.5 * 3) = 2 of 3; class 1: 1 of 2 (NaN unscored)
    (0.34, [False, True, True, False, False, True]),  # ceil(1.02) = 2; ceil(0.68) = 1
    (0.33, [False, False, True, False, False, True]),  # ceil(0.99) = 1
    (1.0, [True, True, True, True, False, True]),
    (0.01, [False, False, True, False, False, True]),  # at least one per class
])
def test_keep_quantile_keeps_the_top_share_of_each_class_scored_images(q, kept):
    sim = np.array([0.1, 0.5, 0.9, 0.2, NAN, 0.4])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert keep_mask(sim, labels, None, q).tolist() == kept


def test_keep_quantile_keeps_ties_at_the_cut_and_combines_with_the_threshold():
    sim = np.array([0.5, 0.5, 0.1, 0.7])
    labels = np.array([0, 0, 0, 1])
    assert keep_mask(sim, labels, None, 0.34).tolist() == [True, True, False, True]
    assert keep_mask(sim, labels, 0.6, 0.34).tolist() == [False, False, False, True]
    # a class whose images are all unscored keeps none and does not break the others
    assert keep_mask(np.array([NAN, 0.3]), np.array([0, 1]), None, 0.5).tolist() == [False, True]


def test_cross_class_rank_probability_and_their_combination():
    prob = np.array([0.9, 0.3, 0.2, NAN])
    rank = np.array([0, 1, 3, 0])
    assert cross_class_mask(prob, rank, 4, 1, None).tolist() == [True, False, False, False]
    assert cross_class_mask(prob, rank, 4, 2, None).tolist() == [True, True, False, False]
    assert cross_class_mask(prob, rank, 4, None, 0.3).tolist() == [True, True, False, False]
    assert cross_class_mask(prob, rank, 4, None, 0.5).tolist() == [True, False, False, False]  # not 1/4
    assert cross_class_mask(prob, rank, 4, None, "auto").tolist() == [True, True, False, False]  # 1/4
    assert cross_class_mask(prob, rank, 5, None, "auto").tolist() == [True, True, True, False]  # 1/5 = 0.2
    assert cross_class_mask(prob, rank, 4, 1, 0.25).tolist() == [True, False, False, False]
    assert cross_class_mask(prob, rank, 4, 1, 0.25, "or").tolist() == [True, True, False, False]
    assert cross_class_mask(prob, rank, 4, 4, 0.0, "or").tolist() == [True, True, True, False]  # NaN: unscored


def test_duplicates_keep_each_groups_representative_and_drop_memorized_copies():
    ids = np.array(["a", "b", "c", "d"], dtype=object)
    dup_of = np.array(["a", "a", "c", None], dtype=object)
    memorized = np.array([False, False, True, False])
    assert duplicate_mask(ids, dup_of, memorized, True, False).tolist() == [True, False, True, False]
    assert duplicate_mask(ids, dup_of, memorized, False, True).tolist() == [True, True, False, False]
    assert duplicate_mask(ids, dup_of, memorized, True, True).tolist() == [True, False, False, False]
    assert duplicate_mask(ids, dup_of, memorized, False, False).tolist() == [True, True, True, False]


def test_the_classifier_filter_drops_what_it_names_and_unscored_images():
    mislabeled = [False, True, False, None]
    easy = [False, False, True, None]
    assert classifier_mask(mislabeled, easy, ["mislabeled", "easy"]).tolist() == [True, False, False, False]
    assert classifier_mask(mislabeled, easy, ["mislabeled"]).tolist() == [True, False, True, False]
    assert classifier_mask(mislabeled, easy, ["easy"]).tolist() == [True, True, False, False]


def test_keep_rates_per_class_and_per_filter():
    labels = np.array([0, 0, 0, 2, 2])
    masks = {"a": np.array([True, True, False, True, False]), "b": np.array([True, False, True, True, True])}
    table = keep_rates(labels, masks, 4).to_pydict()
    assert table["class"] == [0, 1, 2, 3] and table["images"] == [3, 0, 2, 0]
    assert str(keep_rates(labels, masks, 4).schema.field("class").type) == "int32"  # the class index of every table
    assert keep_rates(np.array([1]), {"a": np.array([True])}).to_pydict()["keep_rate"] == [None, 1.0]
    assert table["kept_a"] == [2, 0, 1, 0] and table["kept_b"] == [2, 0, 2, 0]
    assert table["kept"] == [1, 0, 1, 0]
    assert table["keep_rate"] == [pytest.approx(1 / 3), None, 0.5, None]  # a class with no image has no rate
    assert keep_rates(labels, {}).to_pydict()["class"] == [0, 1, 2]  # classes up to the largest label
    assert keep_rates(labels, {}).to_pydict()["keep_rate"] == [1.0, None, 1.0]
    assert keep_rates(np.array([], dtype=int), {}).num_rows == 0


def test_filter_names_resolve_to_definitions_then_built_ins(make_config):
    cfg = make_config(filters={"strict": {"kind": "similarity", "min_similarity": 0.3},
                               "dedup": {"kind": "duplicates", "within": False, "real": True}})
    specs = resolve_filters(cfg, ["strict", "dedup", "clip-top1"])
    assert specs["strict"].min_similarity == 0.3
    assert (specs["dedup"].within, specs["dedup"].real) == (False, True)  # the definition replaces the built-in
    assert specs["clip-top1"].kind == "cross_class" and specs["clip-top1"].top_k == 1
    with pytest.raises(ConfigError, match=r"^train.filters: unknown filter 'nope'; expected one of: classifier, "
                                          r"clip-prob, clip-top1, dedup, memorized, strict$"):
        resolve_filters(cfg, ["nope"])
