"""Exactly-once under SIGKILL: ``synthdiv generate`` in subprocesses (two torchrun-style ranks), killed at random
moments several times, then resumed; the manifest must equal the plan, every tar must read, no image twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from synthdiv.generate import is_complete, read_manifest
from synthdiv.generate.shards import tar_path
from synthdiv.run import RunDir

pytestmark = pytest.mark.slow


def _start(config: Path, rank: int) -> subprocess.Popen:
    env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": "0", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "synthdiv", "-q", "generate", "-c", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _files(run: RunDir) -> int:
    return sum(1 for d in (run.shards, run.manifest) if d.is_dir() for _ in d.iterdir())


def test_sigkill_at_random_moments_then_resume(gen_config, tmp_path):
    cfg = gen_config(images_per_class=2, shard_size=1, batch_size=1, runner="torchrun")
    run = RunDir(cfg.run_dir)
    config = tmp_path / "kill.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    rng = random.Random(5)
    kills = 0
    for _ in range(2):
        procs = [_start(config, rank) for rank in (0, 1)]
        start_files, deadline = _files(run), time.monotonic() + 120
        while _files(run) == start_files and time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.05)  # wait until the ranks are writing shards
        for p in procs:  # each rank dies at its own random moment
            time.sleep(rng.uniform(0.0, 1.5))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
            p.wait(timeout=60)
    assert kills >= 2, "the processes finished before they could be killed"
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
        with tarfile.open(tar_path(run, shard)) as tf:
            members = tf.getmembers()
            assert all(len(tf.extractfile(m).read()) == m.size for m in members)
        assert len(members) == 2 * plan.filter(plan.column("shard").to_numpy() == shard).num_rows
