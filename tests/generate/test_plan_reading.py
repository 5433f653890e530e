"""A generate worker reads only its own shards' plan rows and prompts (issue 16, item 4: a lean rank)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthdiv.core.rundir import RunDir
from synthdiv.errors import InputError
from synthdiv.stages.generate.producer import PlannedWork
from synthdiv.stages.plan.reader import plan_shard_counts
from tests.generate.conftest import write_inputs


def _rewrite_plan(run: RunDir, row_group_size: int, statistics: bool = True) -> pa.Table:
    plan = pq.read_table(run.plan)
    pq.write_table(plan, run.plan, row_group_size=row_group_size, write_statistics=statistics)
    return plan


@pytest.mark.parametrize("statistics", [True, False])
def test_rows_of_a_shard_match_the_whole_plan_in_plan_order(tmp_path, statistics):
    run = RunDir(tmp_path)
    run.root.mkdir(exist_ok=True)
    write_inputs(run, images_per_class=5, shard_size=4, gen_id="g")  # 15 rows, shards 0-3
    plan = _rewrite_plan(run, row_group_size=3, statistics=statistics)  # shards straddle row groups
    work = PlannedWork(run)
    assert work.shards.tolist() == [0, 1, 2, 3] and work.total_images == 15
    assert [work.shard_size(s) for s in range(4)] == [4, 4, 4, 3]
    for shard in (2, 0, 3):
        rows = work.rows(shard)
        expect = plan.filter(pa.compute.equal(plan.column("shard"), shard))
        assert rows.image_id == expect.column("image_id").to_pylist()
        assert rows.seed == expect.column("seed").to_pylist()
        assert rows.prompt_id == expect.column("prompt_id").to_pylist()
    assert plan_shard_counts(run.plan)[1].tolist() == [4, 4, 4, 3]


def test_a_worker_holds_only_its_shards_and_their_prompts(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    run.root.mkdir(exist_ok=True)
    write_inputs(run, images_per_class=4, shard_size=4, gen_id="g")  # shard s holds class s only
    _rewrite_plan(run, row_group_size=4)
    read: list[int] = []
    original = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        if "seed" in (kwargs.get("columns") or []):
            read.extend(kwargs["row_groups"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    work = PlannedWork(run)
    work.load([1])
    assert read == [1]  # the other row groups were skipped by their shard statistics
    assert set(work._prompts) == {"p1-0", "p1-1"}
    assert work.rows(1).cls == [1, 1, 1, 1]


def test_a_missing_prompt_is_named_when_its_shard_is_loaded(tmp_path):
    run = RunDir(tmp_path)
    run.root.mkdir(exist_ok=True)
    write_inputs(run, images_per_class=2, shard_size=2, gen_id="g")
    plan = pq.read_table(run.plan)
    ids = plan.column("prompt_id").to_pylist()
    ids[-1] = "nope"  # in the last shard only
    pq.write_table(plan.set_column(2, "prompt_id", pa.array(ids)), run.plan, row_group_size=2)
    work = PlannedWork(run)
    work.load([0, 1])
    with pytest.raises(InputError, match="prompt_id 'nope' is not in prompts.parquet"):
        work.load([2])


def test_a_plan_without_the_shard_column_is_an_input_error(tmp_path):
    run = RunDir(tmp_path)
    run.root.mkdir(exist_ok=True)
    write_inputs(run, images_per_class=1, shard_size=1, gen_id="g")
    pq.write_table(pq.read_table(run.plan).drop_columns(["shard"]), run.plan)
    with pytest.raises(InputError, match="column 'shard' is missing"):
        PlannedWork(run)
