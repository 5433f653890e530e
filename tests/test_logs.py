"""Logs a cluster can read (issue 12, item 4): output to a file has timestamps, unfolded lines, periodic progress
lines and a summary line per stage; ``status`` shows a running stage's rate, ETA and last progress."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthdiv.config.loader import config_from_dict
from synthdiv.core.rundir import RunDir
from synthdiv.core.status import stage_status
from synthdiv.utils.progress import Progress, heartbeat

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")

LOOP = """
import logging, sys, time
from synthdiv.utils.logs import setup_logging
from synthdiv.utils.progress import Progress
setup_logging(logging.INFO)
logging.getLogger("synthdiv.test").info("a long line " + "x" * 150 + " end")
with Progress() as bar:
    task = bar.add_task("making things", total=30)
    for _ in range(30):
        time.sleep(0.05)
        bar.advance(task)
"""


def _run_to_file(tmp_path: Path, args: list[str], **env: str) -> list[str]:
    log = tmp_path / "stderr.log"
    with open(log, "w") as fh:
        subprocess.run(args, stderr=fh, stdout=subprocess.DEVNULL, check=True, cwd=tmp_path,
                       env={**os.environ, "COLUMNS": "80", **env})
    return log.read_text().splitlines()


def test_a_loop_logged_to_a_file_prints_periodic_lines_with_timestamps(tmp_path: Path):
    lines = _run_to_file(tmp_path, [sys.executable, "-c", LOOP], SYNTHDIV_PROGRESS_SECONDS="0.3")
    assert lines and all(STAMP.match(line) for line in lines), lines
    long = [line for line in lines if "a long line" in line]
    assert len(long) == 1 and long[0].endswith(" end")  # one line, not folded at 80 columns
    periodic = [line for line in lines if re.search(r"making things: \d+/30 \(\d+%\), [\d.]+/s, ETA ", line)]
    assert len(periodic) >= 2, lines  # ~1.5 s of work at one line per 0.3 s
    assert re.search(r"making things: 30/30 in \d+ s \([\d.]+/s\)$", lines[-1]), lines[-1]
    assert not any("\x1b" in line or "━" in line for line in lines)  # no rich bar in a file


def test_a_stage_logged_to_a_file_ends_with_a_summary_line(tmp_path: Path):
    (tmp_path / "c.txt").write_text("goldfish\ntiger shark\n")
    (tmp_path / "c.yaml").write_text("run_dir: run\nclasses: {source: c.txt}\n")
    lines = _run_to_file(tmp_path, [sys.executable, "-m", "synthdiv", "classes", "-c", "c.yaml"])
    assert lines and all(STAMP.match(line) for line in lines), lines
    assert re.search(r"INFO synthdiv\.stages: stage classes done in [\d.]+ s: classes=2, .*real_images=0", lines[-1])


def test_status_shows_rate_eta_and_last_progress_of_a_running_stage(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("synthdiv.utils.progress._BEAT_SECONDS", 0.0)
    cfg = config_from_dict({"run_dir": str(tmp_path / "run")})
    run = RunDir(cfg.run_dir)
    run.begin("prompts", "f")
    with heartbeat(run.root, "prompts"), Progress() as bar:
        task = bar.add_task("writing prompts", total=1000)
        for _ in range(5):
            time.sleep(0.02)
            bar.advance(task, 10)
        detail = next(r for r in stage_status(cfg) if r.stage == "prompts").detail
    pattern = r"writing prompts: 50/1,000, [\d.]+/s, ETA [\d.]+ (s|min), last progress [\d.]+ s ago"
    assert re.fullmatch(pattern, detail), detail
    run.clear_state("prompts")
    run.begin("prompts", "f")  # a new attempt: the old heartbeat is not its progress
    assert next(r for r in stage_status(cfg) if r.stage == "prompts").detail == ""



@pytest.mark.parametrize(("env", "expected"), [
    ({}, 0),
    ({"RANK": "3", "WORLD_SIZE": "4"}, 3),
    ({"SLURM_PROCID": "5", "SLURM_NTASKS": "8"}, 5),
    ({"RANK": "x", "WORLD_SIZE": "4"}, 0),  # a malformed launch reads as rank 0: progress never stops the work
])
def test_heartbeat_files_are_named_by_the_launch_rank(tmp_path: Path, monkeypatch, env, expected):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with heartbeat(tmp_path, "generate"), Progress() as bar:
        bar.add_task("making things", total=1)
    assert [p.name for p in (tmp_path / ".synthdiv" / "progress").iterdir()] == [f"generate.{expected}.json"]

@pytest.mark.slow
@pytest.mark.timeout(600)
def test_generate_logged_to_a_file(tmp_path: Path):
    import yaml

    from synthdiv.config.models import generator_id
    from synthdiv.models.embedded import tiny_diffusion_dir
    from tests.generate.conftest import write_inputs

    data = {"run_dir": str(tmp_path / "run"),
            "models": {"generator": {"model": str(tiny_diffusion_dir()), "device": "cpu", "options": {"steps": 1}}},
            "generate": {"batch_size": 2, "torch_threads": 1}, "plan": {"shard_size": 4}}
    cfg = config_from_dict(data)
    write_inputs(RunDir(cfg.run_dir), 4, 4, generator_id(cfg.models.generator))
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(data))
    lines = _run_to_file(tmp_path, [sys.executable, "-m", "synthdiv", "generate", "-c", "g.yaml"],
                         SYNTHDIV_PROGRESS_SECONDS="0.5")
    assert all(STAMP.match(line) for line in lines), lines
    assert not any("it/s]" in line or "Loading pipeline components" in line for line in lines)  # no tqdm
    final = r"synthdiv\.progress: generate: 12/12 in [\d.]+ s \([\d.,]+/(s|min)\)$"
    assert any(re.search(final, line) for line in lines)
    assert re.search(r"stage generate done in [\d.]+ (s|min): .*made_images=12", lines[-1]), lines[-1]
