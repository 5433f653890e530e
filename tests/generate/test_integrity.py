"""A finished generate stage whose shards were damaged or lost afterwards (a deleted manifest part, a truncated
tar): ``status`` shows it incomplete, ``generate`` redoes exactly those shards with the same bytes, ``score``
refuses to score part of the images, and ``synthdiv verify`` reads every tar and names each damaged shard."""

from __future__ import annotations

import pytest

from synthdiv.core.rundir import RunDir
from synthdiv.core.status import stage_status
from synthdiv.engine.runner import run_stage
from synthdiv.errors import InputError
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.generate.stage import is_complete, progress


def _state(cfg, stage: str):
    return next(row for row in stage_status(cfg) if row.stage == stage)


@pytest.fixture
def finished(gen_config):
    """A finished generate stage of 6 images in 3 shards and the bytes of its tars."""
    cfg = gen_config(images_per_class=2, shard_size=2)
    run = RunDir(cfg.run_dir)
    run_stage(cfg, "generate")
    return cfg, run, {s: run.shard_tar(s).read_bytes() for s in range(3)}


def test_lost_or_damaged_shards_of_a_finished_stage_show_and_are_redone(finished):
    cfg, run, before = finished
    assert _state(cfg, "generate").state == "done"
    stamp = run.shard_tar(0).stat().st_mtime_ns
    run.manifest_part(1).unlink()
    run.shard_tar(2).write_bytes(before[2][:1000])
    row = _state(cfg, "generate")
    assert row.state == "partial" and row.detail.startswith("2/6 images, 1/3 shards")
    assert not is_complete(cfg, run)
    summary = run_stage(cfg, "generate")
    assert not summary.get("skipped") and summary["made_shards"] == 2 and summary["made_images"] == 4
    assert {s: run.shard_tar(s).read_bytes() for s in range(3)} == before
    assert run.shard_tar(0).stat().st_mtime_ns == stamp  # the intact shard was not touched
    assert _state(cfg, "generate").state == "done" and progress(cfg, run) == "6/6 images, 3/3 shards"
    assert run_stage(cfg, "generate")["skipped"]


def test_score_refuses_an_incomplete_generate_stage(finished):
    cfg, run, _ = finished
    run.shard_tar(1).unlink()
    with pytest.raises(InputError, match=r"1 of 3 planned shards .*shard-000001: part without tar.*synthdiv generate"):
        run_stage(cfg, "score")
    assert not run.scores.exists() and read_manifest(run).num_rows == 4
