"""Exactly-once under SIGKILL: ``synthdiv generate`` in subprocesses (two torchrun-style ranks), killed at random
moments several times, then resumed; the manifest must equal the plan, every tar must read, no image twice, and
every tar must hold the bytes an undisturbed run of the same plan writes; the same under a mixture of generators,
where each image must also be made by the generator its plan row names."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from synthdiv.core.rundir import RunDir
from synthdiv.engine.runner import run_stage
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.generate.stage import is_complete
from tests.generate.conftest import mixed_config

pytestmark = pytest.mark.slow


def _start(config: Path, rank: int) -> subprocess.Popen:
    env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": "0", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "synthdiv", "-q", "generate", "-c", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _files(run: RunDir) -> int:
    return sum(1 for d in (run.shards, run.manifest) if d.is_dir() for _ in d.iterdir())


def _kill_and_resume(cfg, tmp_path: Path, seed: int) -> tuple[RunDir, pa.Table]:
    """Two ranks of ``synthdiv generate`` killed at random moments three times, then resumed to the end; checks
    the run holds each planned image once in whole tars and returns the run and its plan."""
    run = RunDir(cfg.run_dir)
    config = tmp_path / "kill.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    rng = random.Random(seed)
    kills = 0
    for _ in range(3):
        procs = [_start(config, rank) for rank in (0, 1)]
        start_files, deadline = _files(run), time.monotonic() + 120
        while _files(run) == start_files and time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.02)  # wait until the ranks are writing shards
        for p in procs:  # each rank dies at its own random moment while it works
            time.sleep(rng.uniform(0.0, 0.3))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
            p.wait(timeout=60)
    assert kills >= 3, f"only {kills} of 6 kills hit a running process: the test did not test resume"
    procs = [_start(config, rank) for rank in (0, 1)]  # resume both ranks
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    plan, manifest = pq.read_table(run.plan), read_manifest(run)
    ids = manifest.column("image_id").to_pylist()
    assert len(ids) == len(set(ids)) == plan.num_rows
    assert sorted(ids) == sorted(plan.column("image_id").to_pylist())
    assert is_complete(cfg, run) and run.read_state("generate").status == "done"
    assert not [p.name for d in (run.shards, run.manifest) for p in d.iterdir() if ".tmp-" in p.name]
    for shard in sorted(set(plan.column("shard").to_pylist())):
        with tarfile.open(run.shard_tar(shard)) as tf:
            members = tf.getmembers()
            assert all(len(tf.extractfile(m).read()) == m.size for m in members)
        # <key>.jpg, <key>.cls and <key>.json per image (a standard classification WebDataset)
        assert len(members) == 3 * plan.filter(plan.column("shard").to_numpy() == shard).num_rows
    return run, plan


def _assert_undisturbed_bytes(cfg, run: RunDir, tmp_path: Path) -> None:
    """Every tar holds the bytes an undisturbed run of the same plan writes (one process, nothing killed)."""
    clean = cfg.model_copy(update={"run_dir": tmp_path / "undisturbed",
                                   "generate": cfg.generate.model_copy(update={"runner": "local"})})
    clean_run = RunDir(clean.run_dir)
    clean_run.root.mkdir()
    for name in ("plan", "prompts", "resolved"):
        shutil.copy(getattr(run, name), getattr(clean_run, name))
    run_stage(clean, "generate")
    shards = sorted(p.name for p in clean_run.shards.glob("*.tar"))
    assert shards == sorted(p.name for p in run.shards.glob("*.tar")) and shards
    for name in shards:
        assert (run.shards / name).read_bytes() == (clean_run.shards / name).read_bytes(), name


def test_sigkill_at_random_moments_then_resume(gen_config, tmp_path):
    # enough work (24 images, 4 steps each) that a rank is still generating when its kill comes, even on a fast CPU
    cfg = gen_config(images_per_class=8, shard_size=1, batch_size=1, runner="torchrun", options={"steps": 4})
    run, _ = _kill_and_resume(cfg, tmp_path, seed=5)
    _assert_undisturbed_bytes(cfg, run, tmp_path)


def test_sigkill_under_a_mixture_of_generators_then_resume(make_config, tiny_model_dir, tmp_path):
    """Issue 22's bar for a mixed run: a killed rank resumes exactly, each image made once by its planned generator."""
    cfg = mixed_config(make_config, tiny_model_dir, steps=4, generate={"batch_size": 1, "runner": "torchrun"},
                       plan={"images_per_class": 8, "shard_size": 1})
    run_stage(cfg, "plan")
    run, plan = _kill_and_resume(cfg, tmp_path, seed=11)
    planned = dict(zip(plan.column("image_id").to_pylist(), plan.column("generator").to_pylist(), strict=True))
    assert len(set(planned.values())) == 2
    manifest = read_manifest(run)
    assert manifest.column("generator_id").to_pylist() == [planned[i] for i in manifest.column("image_id").to_pylist()]
    _assert_undisturbed_bytes(cfg, run, tmp_path)
