"""The plan's contract is checked before generation writes anything: one line naming the file and the problem."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthdiv.core.rundir import RunDir
from synthdiv.engine.runner import run_stage
from synthdiv.errors import InputError
from synthdiv.stages.generate.plan_check import check_plan_file
from synthdiv.utils.io import write_parquet_atomic
from tests.generate.conftest import write_inputs


def test_a_duplicated_plan_row_is_refused_before_anything_is_written(gen_config):
    cfg = gen_config(images_per_class=2, shard_size=4)
    run = RunDir(cfg.run_dir)
    plan = pq.read_table(run.plan)
    write_parquet_atomic(pa.concat_tables([plan, plan.slice(3, 1)]), run.plan)  # a hand-edited plan: row 3 twice
    dup = plan.column("image_id")[3].as_py()
    with pytest.raises(InputError, match=rf"plan.parquet: image_id '{dup}' is in row 3 and row 6") as info:
        run_stage(cfg, "generate")
    assert "\n" not in str(info.value)
    assert not run.shards.exists() and not run.manifest.exists() and run.read_state("generate") is None


@pytest.fixture
def plan_table(tmp_path):
    run = RunDir(tmp_path)
    run.root.mkdir(exist_ok=True)
    write_inputs(run, images_per_class=3, shard_size=2, gen_id="g")
    return run, pq.read_table(run.plan)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop_columns(["seed"]), "column 'seed' is missing"),
        (lambda t: t.set_column(3, "seed", pa.array(["x"] * t.num_rows)), "column 'seed' is string, expected int64"),
        (lambda t: t.set_column(1, "class", pa.array([0, None] + [1] * (t.num_rows - 2), pa.int32())),
         "row 1: class is null"),
        (lambda t: t.set_column(4, "shard", pa.array([0, 0, -1] + [1] * (t.num_rows - 3), pa.int32())),
         "row 2: shard -1 is negative"),
    ],
)
def test_plan_contract_violations_name_the_column_and_row(plan_table, change, message):
    run, table = plan_table
    pq.write_table(change(table), run.plan)
    with pytest.raises(InputError, match=message):
        check_plan_file(run.plan)


def test_a_valid_plan_passes_and_ids_that_only_share_a_hash_bucket_are_not_duplicates(plan_table, monkeypatch):
    run, table = plan_table
    assert check_plan_file(run.plan) == table.num_rows
    import synthdiv.stages.generate.plan_check as plan_check

    monkeypatch.setattr(plan_check, "hash", lambda s: 7, raising=False)  # every id collides: the exact pass decides
    assert check_plan_file(run.plan) == table.num_rows
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), run.plan)
    with pytest.raises(InputError, match="is in row 0 and row 9"):
        check_plan_file(run.plan)
