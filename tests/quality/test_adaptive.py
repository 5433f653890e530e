"""Adaptive budget: the allocation follows per-class errors and keep rates within bounds, and a round appended to
the plan keeps every earlier row and makes exactly the ids a bigger plan would have made."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from synthdiv.stages.plan.adaptive import allocate, append_round, class_need
from synthdiv.stages.plan.stage import layout_plan, plan_batches


def test_allocation_follows_errors_and_keep_rates():
    errors = np.array([0.1, 0.2, 0.4, 0.4])
    rates = np.array([1.0, 1.0, 1.0, 0.5])
    need = class_need(errors, rates, eps=0.0)
    out = allocate(1500, need)
    assert out.sum() == 1500
    assert out.tolist() == [100, 200, 400, 400 * 2]  # twice the error, twice the images; half kept, twice again
    assert allocate(1100, class_need(errors, np.ones(4), alpha=0.0, eps=0.0)).tolist() == [275] * 4  # alpha 0: even


def test_allocation_respects_bounds_and_total():
    need = np.array([100.0, 1.0, 1.0, 1.0, 0.0])
    out = allocate(1000, need, lower=50, upper=400)
    assert out.sum() == 1000 and out.min() >= 50 and out.max() <= 400
    assert out[0] == 400 and out[4] == 50  # the neediest is capped, the one with no need gets its floor
    assert sorted(out[1:4].tolist()) == [183, 183, 184]  # the equal ones share the rest, 550, evenly
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        lo, hi = rng.integers(0, 20, n), rng.integers(20, 200, n)
        total = int(rng.integers(lo.sum(), hi.sum() + 1))
        got = allocate(total, rng.random(n) * rng.integers(0, 2, n), lo, hi)
        assert got.sum() == total and (got >= lo).all() and (got <= hi).all()
    with pytest.raises(ValueError, match="cannot be split within the bounds"):
        allocate(10, np.ones(3), lower=5)


def _plan(counts: np.ndarray, prompts: pa.Table) -> pa.Table:
    available = np.bincount(prompts.column("class").to_numpy(), minlength=len(counts))[:, None]
    layout = layout_plan(counts[:, None], available)
    batches = plan_batches(layout, prompts.column("class").to_numpy(), prompts.column("prompt_id").combine_chunks(),
                           7, "gen", shard_size=4)
    return pa.Table.from_batches(list(batches))


def test_appended_round_keeps_ids_stable_and_unique():
    prompts = pa.table({"prompt_id": ["a0", "a1", "a2", "b0", "b1"], "class": pa.array([0, 0, 0, 1, 1], pa.int32())})
    first = _plan(np.array([5, 3]), prompts)
    extra = np.array([4, 6])
    added = append_round(first, prompts, extra, 7, "gen", shard_size=4)
    assert np.bincount(added.column("class").to_numpy()).tolist() == [4, 6]
    assert added.column("shard").to_numpy().min() == first.column("shard").to_numpy().max() + 1
    both = pa.concat_tables([first, added])
    assert len(set(both.column("image_id").to_pylist())) == both.num_rows  # exactly once: no id twice
    bigger = _plan(np.array([9, 9]), prompts)  # what one plan of the whole budget names
    assert set(both.column("image_id").to_pylist()) == set(bigger.column("image_id").to_pylist())
    assert set(zip(both.column("prompt_id").to_pylist(), both.column("seed").to_pylist(), strict=True)) == set(
        zip(bigger.column("prompt_id").to_pylist(), bigger.column("seed").to_pylist(), strict=True))
    again = append_round(first, prompts, extra, 7, "gen", shard_size=4)
    assert again.equals(added)  # a resumed round names the same images


def test_least_used_picks_as_one_at_a_time_would():
    from synthdiv.stages.plan.adaptive import least_used

    def one_at_a_time(uses: np.ndarray, m: int) -> list[tuple[int, int]]:
        uses, out = uses.copy(), []
        for _ in range(m):
            i = int(np.argmin(uses))  # least used; ties: the first in table order
            out.append((i, int(uses[i])))
            uses[i] += 1
        return out

    rng = np.random.default_rng(0)
    for _ in range(300):
        uses = rng.integers(0, 6, int(rng.integers(1, 9)))
        m = int(rng.integers(0, 40))
        index, repeat = least_used(uses, m)
        assert list(zip(index.tolist(), repeat.tolist(), strict=True)) == one_at_a_time(uses, m)


def test_class_need_clips_errors_floors_keep_rates_and_counts_a_class_without_images_as_kept():
    need = class_need(np.array([-0.5, 0.0, 0.5, 1.5]), np.array([np.nan, 0.01, 0.5, 1.0]), alpha=2.0, beta=2.0)
    np.testing.assert_allclose(need, [0.001**2, 0.001**2 / 0.05**2, 0.501**2 / 0.5**2, 1.001**2], rtol=1e-12)
    np.testing.assert_allclose(class_need([0.2], [0.5]), [(0.2 + 1e-3) / 0.5], rtol=1e-12)  # alpha = beta = 1


def test_allocation_refuses_bad_needs_and_accepts_tight_bounds():
    for need in ([1.0, -0.5], [1.0, np.inf], [np.nan, 1.0]):
        with pytest.raises(ValueError, match=r"^allocate: need must be finite and non-negative$"):
            allocate(4, np.array(need))
    assert allocate(6, np.array([5.0, 1.0, 0.0]), lower=2, upper=2).tolist() == [2, 2, 2]  # lower == upper == total
    assert allocate(10, np.array([1.0, 0.0]), upper=[6, 10]).tolist() == [6, 4]  # no need, but the rest must go


def test_least_used_of_nothing_is_empty_int64():
    from synthdiv.stages.plan.adaptive import least_used

    for uses, m in ((np.array([2, 0]), 0), (np.array([], np.int64), 3)):
        index, repeat = least_used(uses, m)
        assert index.dtype == repeat.dtype == np.int64 and len(index) == len(repeat) == 0


def test_a_round_on_an_empty_plan_interleaves_classes_and_continues_each_prompts_repeats():
    from synthdiv.core import ids
    from synthdiv.core.schemas import PLAN_SCHEMA

    prompts = pa.table({"prompt_id": ["a0", "a1", "b0", "c0"], "class": pa.array([0, 0, 1, 2], pa.int32())})
    rows = append_round(PLAN_SCHEMA.empty_table(), prompts, np.array([3, 1, 0]), 7, "gen", shard_size=2)
    assert rows.schema == PLAN_SCHEMA
    assert rows.column("class").to_pylist() == [0, 0, 1, 0]  # class 1's one image in the middle of class 0's three
    assert rows.column("prompt_id").to_pylist() == ["a0", "a1", "b0", "a0"]  # least used first: a0 again last
    assert rows.column("shard").to_pylist() == [0, 0, 1, 1]  # the first shard of an empty plan is 0
    keys = ids.prompt_keys(7, [0, 0, 1, 0], ["a0", "a1", "b0", "a0"])
    assert rows.column("seed").to_pylist() == ids.derive_seeds(keys, np.array([0, 0, 0, 1])).tolist()
    with pytest.raises(ValueError, match=r"^append_round: class 2 has no prompts$"):
        append_round(PLAN_SCHEMA.empty_table(), prompts.slice(0, 3), np.array([0, 0, 1]), 7, "gen", shard_size=2)
    # a class given no image needs no prompt
    assert append_round(PLAN_SCHEMA.empty_table(), prompts.slice(0, 3), np.array([1, 0, 0]), 7, "gen", 2).num_rows == 1


def test_allocation_rounds_by_largest_remainder_and_breaks_ties_in_class_order():
    assert allocate(3, np.array([10.0, 20.0])).tolist() == [1, 2]  # a scale below 1: needs larger than the total
    assert allocate(10, np.array([0.52, 0.28, 0.2])).tolist() == [5, 3, 2]  # 5.2, 2.8, 2.0: the 0.8 gets the rest
    need = np.tile([1.0, 2.0, 1.0, 3.0], 10)  # shares 0.64, 1.29, 0.64, 1.93: 25 left after the floors
    out = allocate(45, need)
    assert out.dtype == np.int64 and out.sum() == 45
    ones = np.flatnonzero(need == 1.0)  # the 20 classes of fraction 0.64 share the last 15 images: the first 15
    assert out[ones].tolist() == [1] * 15 + [0] * 5
    assert (out[need == 2.0] == 1).all() and (out[need == 3.0] == 2).all()


def test_a_round_of_many_images_interleaves_classes_with_ties_in_class_order():
    from synthdiv.core.schemas import PLAN_SCHEMA

    prompts = pa.table({"prompt_id": ["a0", "b0"], "class": pa.array([0, 1], pa.int32())})
    rows = append_round(PLAN_SCHEMA.empty_table(), prompts, np.array([10, 10]), 7, "gen", shard_size=4)
    assert rows.column("class").to_pylist() == [0, 1] * 10


def test_a_mixture_round_gives_each_shard_its_generator_and_each_row_that_generator_s_id():
    from synthdiv.core.schemas import PLAN_GENERATOR_FIELD, PLAN_SCHEMA
    from synthdiv.stages.plan.mixture import shard_generators

    prompts = pa.table({"prompt_id": ["a0", "a1", "b0"], "class": pa.array([0, 0, 1], pa.int32())})
    first = _plan(np.array([2, 2]), prompts)  # shards 0 and 1: the round's shards are 1.. after them
    mixture = [("gen-a", 1.0), ("gen-b", 3.0)]
    rows = append_round(first, prompts, np.array([5, 7]), 7, "gen-a", shard_size=2, mixture=mixture)
    assert rows.schema == PLAN_SCHEMA.append(PLAN_GENERATOR_FIELD)
    shard = rows.column("shard").to_numpy()
    names = np.array(["gen-a", "gen-b"])[shard_generators(shard, [1.0, 3.0])]
    assert rows.column("generator").to_pylist() == names.tolist() and set(names) == {"gen-a", "gen-b"}
    # a row's seed is the plan's; its image id is the one that generator alone would have given it
    alone = {g: append_round(first, prompts, np.array([5, 7]), 7, g, shard_size=2) for g in ("gen-a", "gen-b")}
    for g in ("gen-a", "gen-b"):
        mine = pa.array(names == g)
        assert rows.drop_columns(["generator"]).filter(mine).equals(alone[g].filter(mine))
