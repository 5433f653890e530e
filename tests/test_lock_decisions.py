"""The lock's decisions in-process, where mutation testing reaches them (tests/test_lock.py proves the same
behaviour across real processes, which a mutant in this process cannot reach): which environments are one launch
of many ranks, and the line a refused writer reads about the holder."""

from __future__ import annotations

import fcntl
import json
import os
import time

import pytest

from synthdiv.core.lock import _holder_text, launch_id, run_lock
from synthdiv.core.rundir import RunDir
from synthdiv.errors import RunLockedError


@pytest.mark.parametrize("env", [
    {"RANK": "0"},  # a lone RANK is no launch
    {"WORLD_SIZE": "4"},  # nor a lone WORLD_SIZE
    {"RANK": "0", "WORLD_SIZE": ""},
    {"RANK": "0", "WORLD_SIZE": "0"},
    {"SLURM_JOB_ID": "42"},  # a lone Slurm job id (an sbatch script's single process) is no launch
    {"SLURM_NTASKS": "4"},
    {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "1"},
    {"SLURM_JOB_ID": "42", "SLURM_NTASKS": ""},
    {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "0"},
], ids=repr)
def test_a_partial_or_single_process_environment_is_no_launch(env):
    assert launch_id(env) is None


def test_launch_ids_leave_missing_parts_empty():
    assert launch_id({"RANK": "1", "WORLD_SIZE": "2"}) == "torchrun:::"
    assert launch_id({"SLURM_JOB_ID": "42", "SLURM_NTASKS": "2"}) == "slurm:42."


def _record(tmp_path, **holder):
    path = tmp_path / "lock.json"
    path.write_text(json.dumps(holder), encoding="utf-8")
    return path


def test_the_holder_line_names_pid_host_stage_time_and_launch(tmp_path):
    since = time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1))
    path = _record(tmp_path, pid=7, host="h", stage="generate", since=since, launch="slurm:42.0")
    assert _holder_text(path) == "pid 7 on h (stage generate, since 2026-01-02 03:04:05, launch slurm:42.0)"
    path = _record(tmp_path, pid=7, host="h", stage="plan", since=since, launch=None)
    assert _holder_text(path) == "pid 7 on h (stage plan, since 2026-01-02 03:04:05)"


def test_an_unreadable_holder_record_is_named_as_such(tmp_path):
    unrecorded = "another process (its pid and host were not recorded)"
    assert _holder_text(tmp_path / "missing.json") == unrecorded
    assert _holder_text(_record(tmp_path, pid=7, host="h")) == unrecorded


def _holder(tmp_path, launch):
    """Another rank's hold on the run at tmp_path/run: a shared flock on a second open of the lock file (flock is per
    open file, so this process's run_lock sees it as another holder) and the record naming ``launch``."""
    folder = tmp_path / "run" / ".synthdiv"
    folder.mkdir(parents=True)
    _record(folder, pid=7, host="h", stage="generate", since=0.0, launch=launch)
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def test_a_rank_of_the_holding_launch_joins_and_others_are_refused(tmp_path, monkeypatch):
    torch = {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1", "TORCHELASTIC_RUN_ID": "r"}
    for key, value in torch.items():
        monkeypatch.setenv(key, value)
    fd = _holder(tmp_path, "torchrun:r:h:1")
    try:
        with run_lock(RunDir(tmp_path / "run"), "generate"):
            record = json.loads((tmp_path / "run" / ".synthdiv" / "lock.json").read_text(encoding="utf-8"))
            assert record["pid"] == 7  # a joining rank leaves the holder's record alone
        monkeypatch.setenv("MASTER_PORT", "2")  # another launch
        with pytest.raises(RunLockedError, match="pid 7 on h .stage generate.*launch torchrun:r:h:1"), \
                run_lock(RunDir(tmp_path / "run"), "generate"):
            pass
    finally:
        os.close(fd)



@pytest.fixture
def no_launch(monkeypatch):
    """This process outside any torchrun or Slurm launch, whatever the shell running the tests set."""
    for key in ("RANK", "WORLD_SIZE", "SLURM_NTASKS", "SLURM_JOB_ID"):
        monkeypatch.delenv(key, raising=False)

def test_a_nested_stage_is_named_in_the_record_until_it_ends(tmp_path, no_launch):
    run = RunDir(tmp_path / "run")
    path = tmp_path / "run" / ".synthdiv" / "lock.json"

    def stage() -> str:
        return json.loads(path.read_text(encoding="utf-8"))["stage"]

    with run_lock(run, "run"):
        assert (stage(), json.loads(path.read_text(encoding="utf-8"))["launch"]) == ("run", None)
        with run_lock(run, "plan"):
            assert stage() == "plan"
            with run_lock(run, "plan"):
                assert stage() == "plan"
            assert stage() == "plan"
        assert stage() == "run"


@pytest.mark.parametrize("launched", [True, False], ids=["rank of a launch", "lone process"])
def test_only_a_launch_leaves_its_lock_open_to_its_other_ranks(tmp_path, monkeypatch, no_launch, launched):
    if launched:
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("WORLD_SIZE", "2")
    with run_lock(RunDir(tmp_path / "run"), "generate"):
        fd = os.open(tmp_path / "run" / ".synthdiv" / "lock", os.O_RDWR)
        try:
            if launched:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            else:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_a_damaged_record_never_stops_the_holder(tmp_path, no_launch):
    run = RunDir(tmp_path / "run")
    with run_lock(run, "run"):
        (tmp_path / "run" / ".synthdiv" / "lock.json").write_text("[]", encoding="utf-8")
        with run_lock(run, "plan"):
            pass
