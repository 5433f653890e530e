"""Low-data and long-tail protocols: seeded, per class, and within what each class has."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdiv.data.protocols import RealProtocol, apply_protocol, long_tail, low_data, pareto_profile, protocol_counts
from synthdiv.data.sources import SampleSet


def _samples(per_class: list[int]) -> SampleSet:
    rows = [(f"c{c}/{i}.png", -1, -1, c, f"c{c}/{i}") for c, n in enumerate(per_class) for i in range(n)]
    return SampleSet.from_rows(rows)


@pytest.mark.parametrize(
    ("keep", "expected"), [(0.5, [50, 10, 1]), (0.01, [1, 1, 1]), (5, [5, 5, 1]), (30, [30, 20, 1])]
)
def test_low_data_keeps_a_fraction_or_n_per_class(keep, expected):
    out = low_data(_samples([100, 20, 1]), 3, keep, seed=0)
    assert out.class_counts(3).tolist() == expected
    assert len(set(out.keys.tolist())) == len(out)


def test_low_data_is_seeded():
    s = _samples([40, 40])
    a, b, c = (low_data(s, 2, 0.25, seed) for seed in (1, 1, 2))
    assert a.keys.tolist() == b.keys.tolist()
    assert a.keys.tolist() != c.keys.tolist()


def test_pareto_profile_spans_max_to_min_and_is_heavy_tailed():
    counts = pareto_profile(100, alpha=6, max_count=1280, min_count=5, seed=0)
    assert counts.max() == 1280 and counts.min() == 5
    assert np.median(counts) < 1280 / 4  # most classes are small: a long tail
    assert not np.array_equal(counts, np.sort(counts)[::-1])  # class order is shuffled
    assert np.array_equal(counts, pareto_profile(100, 6, 1280, 5, seed=0))


def test_long_tail_subsamples_to_the_profile_within_what_each_class_has():
    s = _samples([200] * 30)
    out = long_tail(s, 30, alpha=6, seed=0, max_count=150, min_count=3)
    counts = out.class_counts(30)
    assert counts.max() == 150 and counts.min() == 3
    assert np.array_equal(counts, pareto_profile(30, 6, 150, 3, seed=0))
    small = long_tail(_samples([10] * 30), 30, alpha=6, seed=0, max_count=150, min_count=3)
    assert small.class_counts(30).max() == 10


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 60), min_size=1, max_size=12),
    st.one_of(st.none(), st.floats(0.01, 0.99), st.integers(1, 70).map(float)),
    st.booleans(), st.one_of(st.none(), st.integers(1, 80)), st.integers(1, 10), st.integers(0, 5),
)
def test_protocol_counts_are_the_counts_apply_protocol_keeps(have, keep, lt, lt_max, lt_min, seed):
    protocol = RealProtocol(low_data=keep, long_tail=lt, long_tail_alpha=3.0, long_tail_max=lt_max,
                            long_tail_min=lt_min)
    counts = protocol_counts(have, protocol, seed)
    out = apply_protocol(_samples(have), len(have), protocol, seed)
    assert out.class_counts(len(have)).tolist() == counts.tolist()
    assert (counts <= np.asarray(have)).all() and (counts >= 0).all()
    assert len(set(out.keys.tolist())) == len(out)


def test_low_data_then_long_tail_compose():
    have = [100, 80, 60, 40]
    protocol = RealProtocol(low_data=0.5, long_tail=True, long_tail_alpha=6, long_tail_min=2)
    low = protocol_counts(have, RealProtocol(low_data=0.5), seed=0)
    assert low.tolist() == [50, 40, 30, 20]
    both = protocol_counts(have, protocol, seed=0)
    assert np.array_equal(both, np.minimum(pareto_profile(4, 6, 50, 2, seed=0), low))


def test_protocol_of_a_train_section():
    from synthdiv.config.loader import config_from_dict

    cfg = config_from_dict({"run_dir": "r", "train": {"long_tail": True, "long_tail_max": 9, "low_data": 0.5}})
    protocol = RealProtocol.from_train(cfg.train.variant("main"))
    assert protocol == RealProtocol(low_data=0.5, long_tail=True, long_tail_max=9)
    assert protocol.active and not RealProtocol().active
    assert apply_protocol(_samples([3, 4]), 2, RealProtocol(), seed=0).class_counts(2).tolist() == [3, 4]


def test_a_pareto_profile_is_pinned_by_its_seed_and_a_single_class_gets_the_maximum():
    profile = pareto_profile(6, 2.0, 100, 5, 3)
    assert profile.tolist() == [52, 11, 5, 100, 13, 9] and profile.dtype == np.int64  # golden: draw, scale, order
    assert pareto_profile(1, 2.0, 40, 5, 0).tolist() == [40]  # no spread to scale: every class at the maximum


def test_protocol_counts_read_a_count_from_one_up_and_refuse_bad_counts():
    assert protocol_counts([10, 3, 4], RealProtocol(low_data=1), 0).tolist() == [1, 1, 1]  # 1 is a count, not 100 %
    assert protocol_counts([10, 3, 4], RealProtocol(low_data=1.5), 0).tolist() == [1, 1, 1]  # int(1.5)
    counts = protocol_counts([10, 3, 4], RealProtocol(low_data=0.5), 0)
    assert counts.tolist() == [5, 2, 2] and counts.dtype == np.int64
    assert protocol_counts(np.array([10.0, 3.0]), RealProtocol(), 0).dtype == np.int64
    for bad in ([[1, 2], [3, 4]], [3, -1]):
        with pytest.raises(ValueError, match=r"^have must be a 1-d array of non-negative counts$"):
            protocol_counts(bad, RealProtocol(low_data=2), 0)


def test_which_images_a_protocol_keeps_is_pinned_by_the_seed_and_logged(caplog):
    samples = _samples([6, 6])
    with caplog.at_level("INFO", logger="synthdiv.data.protocols"):
        kept = apply_protocol(samples, 2, RealProtocol(low_data=2), 7)
    assert kept.keys.tolist() == ["c0/1", "c0/3", "c1/1", "c1/4"]  # golden: the images drawn with seed + 1
    assert caplog.messages == ["real-set protocol (low_data 2, long_tail False): kept 4 of 12 real images (2 to 2 "
                               "per class)"]
    caplog.clear()
    with caplog.at_level("INFO", logger="synthdiv.data.protocols"):
        none = apply_protocol(_samples([]), 0, RealProtocol(low_data=2), 7)
    assert len(none) == 0 and none.keys.tolist() == []
    assert caplog.messages == ["real-set protocol (low_data 2, long_tail False): kept 0 of 0 real images (0 to 0 "
                               "per class)"]


def test_long_tail_keeps_at_least_five_images_of_a_class_by_default():
    kept = long_tail(_samples([40] * 8), 8, 2.0, seed=1, max_count=40)
    assert kept.class_counts(8).min() == 5 and kept.class_counts(8).max() == 40


def test_long_tail_follows_the_alpha_it_is_given():
    for alpha in (1.0, 3.0):
        kept = long_tail(_samples([40] * 8), 8, alpha, seed=1, max_count=40)
        assert kept.class_counts(8).tolist() == pareto_profile(8, alpha, 40, 5, 1).tolist()
