"""Budget arithmetic: per-class budgets, the fair global cap and the split across prompt kinds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdiv.config.prompts import DEFAULT_IMAGES_PER_CLASS, PlanConfig
from synthdiv.stages.plan.budget import cap_fairly, class_budgets, split_by_kind, training_real_counts

KINDS = ("base", "context", "style")


def test_fixed_budget_ignores_real_counts():
    assert class_budgets(PlanConfig(images_per_class=7), [0, 3, 100]).tolist() == [7, 7, 7]
    assert class_budgets(PlanConfig(images_per_class=0), [5, 5]).tolist() == [0, 0]


def test_default_budget_is_documented_constant():
    assert class_budgets(PlanConfig(), [1, 2]).tolist() == [DEFAULT_IMAGES_PER_CLASS] * 2


def test_multiple_of_real_rounds_half_up_and_zero_real_gets_zero():
    assert class_budgets(PlanConfig(multiple_of_real=1.5), [0, 1, 3, 1300]).tolist() == [0, 2, 5, 1950]
    assert class_budgets(PlanConfig(multiple_of_real=6), [1281]).tolist() == [7686]


def test_top_up_gives_tail_classes_more_and_floors_at_zero():
    assert class_budgets(PlanConfig(top_up_to=100), [0, 10, 100, 250]).tolist() == [100, 90, 0, 0]


def test_negative_or_nested_real_counts_rejected():
    for bad in ([-1], [[1, 2]]):
        with pytest.raises(ValueError, match=r"^real_counts must be a 1-d array of non-negative counts$"):
            class_budgets(PlanConfig(), bad)


def test_budgets_are_int64_in_every_mode():
    for plan in (PlanConfig(), PlanConfig(multiple_of_real=1.5), PlanConfig(top_up_to=9)):
        assert class_budgets(plan, [0, 3, 10]).dtype == np.int64
    counts = split_by_kind(np.array([7]), np.ones((1, 3), int), {"base": 1.0, "context": 1.0}, KINDS)
    assert counts.dtype == np.int64 and cap_fairly([4, 5], 6).dtype == np.int64


def test_cap_water_fills_small_classes_first():
    assert cap_fairly([10, 2, 10, 5], 20).tolist() == [7, 2, 6, 5]
    assert cap_fairly([10, 2, 10, 5], 100).tolist() == [10, 2, 10, 5]
    assert cap_fairly([10, 2, 10, 5], 0).tolist() == [0, 0, 0, 0]
    assert cap_fairly([10, 2, 10, 5], None).tolist() == [10, 2, 10, 5]
    assert cap_fairly([], 5).tolist() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=30), st.integers(0, 1500))
def test_cap_properties(budgets, cap):
    out = cap_fairly(budgets, cap)
    b = np.array(budgets)
    assert out.sum() == min(cap, b.sum())
    assert (out <= b).all() and (out >= 0).all()
    # max-min fair: a class below its budget never has more than one fewer image than any other class
    below = out < b
    if below.any():
        assert out[below].min() >= out.max() - 1


def test_split_by_kind_largest_remainder():
    counts = split_by_kind(np.array([10, 3, 0]), np.ones((3, 3), int), {"base": 0.2, "context": 0.5, "style": 0.3},
                           KINDS)
    assert counts.tolist() == [[2, 5, 3], [1, 1, 1], [0, 0, 0]]


def test_a_kind_the_proportions_do_not_name_gets_nothing_and_ties_go_to_the_earlier_kind():
    counts = split_by_kind(np.array([5, 1, 2]), np.ones((3, 3), int), {"context": 0.5, "style": 0.5}, KINDS)
    assert counts.tolist() == [[0, 3, 2], [0, 1, 0], [0, 1, 1]]


def test_split_moves_share_of_missing_kind_to_others():
    available = np.array([[1, 0, 4], [1, 0, 0], [0, 0, 0]])
    counts = split_by_kind(np.array([10, 4, 5]), available, {"base": 0.2, "context": 0.5, "style": 0.3}, KINDS)
    assert counts[0].tolist() == [4, 0, 6]
    assert counts[1].tolist() == [4, 0, 0]
    assert counts[2].tolist() == [0, 0, 0]  # no usable kind: reported by the caller


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 1000), min_size=1, max_size=20),
    st.tuples(st.floats(0, 5), st.floats(0, 5), st.floats(0, 5)).filter(lambda w: sum(w) > 0),
)
def test_split_rows_sum_to_budget(budgets, weights):
    props = dict(zip(KINDS, weights, strict=True))
    counts = split_by_kind(np.array(budgets), np.ones((len(budgets), 3), int), props, KINDS)
    assert counts.sum(axis=1).tolist() == budgets
    assert (counts[:, np.array(weights) == 0] == 0).all()


def test_training_real_counts_follow_the_synthetic_variants_protocol():
    from synthdiv.config.train import TrainConfig
    from synthdiv.data.protocols import RealProtocol, protocol_counts

    real = np.array([100, 90, 80, 70, 60])
    assert training_real_counts(TrainConfig(), real, seed=0).tolist() == real.tolist()
    lt = TrainConfig(long_tail=True, long_tail_min=3)
    expected = protocol_counts(real, RealProtocol(long_tail=True, long_tail_min=3), seed=4)
    assert training_real_counts(lt, real, seed=4).tolist() == expected.tolist() != real.tolist()
    # the protocol of a variant without synthetic images does not count
    only_real = TrainConfig(variants={"real": {"synthetic_fraction": 0, "low_data": 0.1}, "syn": {}})
    assert training_real_counts(only_real, real, seed=0).tolist() == real.tolist()


def test_the_protocol_used_is_logged(caplog):
    from synthdiv.config.train import TrainConfig

    caplog.set_level("INFO", logger="synthdiv")
    counts = training_real_counts(TrainConfig(low_data=2), np.array([10, 10, 10]), seed=0)
    assert counts.tolist() == [2, 2, 2]
    assert "plan: budgets from the real set after train's protocol: 6 of 30 real images" in caplog.messages


def test_variants_with_different_real_protocols_are_refused_naming_two():
    from synthdiv.config.train import TrainConfig
    from synthdiv.errors import ConfigError

    train = TrainConfig(variants={"a": {"low_data": 2}, "b": {"low_data": 3}, "c": {"long_tail": True}})
    with pytest.raises(ConfigError) as err:
        training_real_counts(train, np.array([10, 10]), seed=0)
    assert str(err.value) == (
        "train.variants: 'a' and 'b' train on synthetic images with different real-set protocols (low_data / "
        "long_tail keys), so plan.top_up_to / plan.multiple_of_real has no single real count to plan from; give them "
        "the same protocol or use one run per protocol")
