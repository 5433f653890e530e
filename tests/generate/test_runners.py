"""Runners: rank/world from torchrun or Slurm, disjoint shard assignment, and identical output from every runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from synthdiv.core.rundir import RunDir
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.generate.runners import assigned_shards
from synthdiv.stages.generate.stage import generate_images, is_complete
from synthdiv.utils.devices import DistEnv


def test_shard_assignment_is_a_partition():
    shards = list(range(11))
    parts = [assigned_shards(shards, DistEnv(r, 4)) for r in range(4)]
    assert sorted(s for p in parts for s in p) == shards
    assert all(set(a).isdisjoint(b) for i, a in enumerate(parts) for b in parts[i + 1 :])


def _copy_run(cfg, root: Path):
    """The same config and inputs in another run directory."""
    other = cfg.model_copy(update={"run_dir": root})
    src, dst = RunDir(cfg.run_dir), RunDir(root)
    dst.root.mkdir(parents=True)
    for name in ("plan", "prompts", "resolved"):
        shutil.copy(getattr(src, name), getattr(dst, name))
    return other


def _same_output(a: RunDir, b: RunDir, shards: int) -> None:
    assert read_manifest(a).equals(read_manifest(b))
    for s in range(shards):
        assert a.shard_tar(s).read_bytes() == b.shard_tar(s).read_bytes()


def test_torchrun_ranks_split_the_work_and_match_the_local_runner(gen_config, tmp_path, monkeypatch):
    cfg = gen_config(images_per_class=1, shard_size=1)
    generate_images(cfg, RunDir(cfg.run_dir))
    dist = _copy_run(cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"runner": "torchrun"})}),
                     tmp_path / "dist")
    run = RunDir(dist.run_dir)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    summary = generate_images(dist, run)
    assert summary["made_shards"] == 1 and sorted(p.name for p in run.shards.iterdir()) == ["shard-000001.tar"]
    assert not is_complete(dist, run)
    monkeypatch.setenv("RANK", "0")
    assert generate_images(dist, run)["made_shards"] == 2
    assert is_complete(dist, run)
    _same_output(RunDir(cfg.run_dir), run, 3)


@pytest.mark.slow
def test_ray_runner_matches_the_local_runner(gen_config, tmp_path):
    ray = pytest.importorskip("ray")
    cfg = gen_config(images_per_class=1, shard_size=1, torch_threads=1)  # Ray actors get one CPU each
    generate_images(cfg, RunDir(cfg.run_dir))
    rcfg = _copy_run(cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"runner": "ray",
                                                                                       "ray_actors": 2})}),
                     tmp_path / "ray")
    run = RunDir(rcfg.run_dir)
    (run.shards).mkdir()
    (run.shards / "shard-000002.tar").write_bytes(b"garbage")  # a broken shard is redone by the driver's scan
    try:
        summary = generate_images(rcfg, run)
    finally:
        ray.shutdown()
    assert summary["made_shards"] == 3 and is_complete(rcfg, run)
    _same_output(RunDir(cfg.run_dir), run, 3)


def test_status_shows_a_partial_multi_worker_run(gen_config, monkeypatch):
    from synthdiv.core.status import stage_status
    from synthdiv.engine.runner import run_stage

    cfg = gen_config(images_per_class=1, shard_size=1, runner="torchrun")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert run_stage(cfg, "generate")["made_shards"] == 1  # rank 1 owns shard 1 only
    row = next(s for s in stage_status(cfg) if s.stage == "generate")
    assert row.state == "partial" and row.detail.startswith("1/3 images, 1/3 shards")
    assert "generate (rank 1/2): 1/1" in row.detail  # the rank's heartbeat: its rate, ETA and last progress
    monkeypatch.setenv("RANK", "0")
    run_stage(cfg, "generate")
    row = next(s for s in stage_status(cfg) if s.stage == "generate")
    assert (row.state, row.detail) == ("done", "3/3 images, 3/3 shards")
