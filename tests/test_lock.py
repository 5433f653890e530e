"""One writer per run: a second process is refused naming the holder, ranks of one launch share, status reads."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthdiv.cli.app import main
from synthdiv.core.lock import launch_id
from synthdiv.core.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]

# A `synthdiv classes` whose stage waits for a release file: a writer caught in the middle of its work.
HOLDER = """
import dataclasses, sys, time
from pathlib import Path
from synthdiv import pipeline
from synthdiv.stages.classes.stage import build_classes

def slow(cfg, run):
    Path(sys.argv[2]).write_text("started")
    while not Path(sys.argv[3]).exists():
        time.sleep(0.02)
    return build_classes(cfg, run)

pipeline._BY_NAME["classes"] = dataclasses.replace(pipeline.get_spec("classes"), impl=slow)
from synthdiv.cli.app import main
sys.exit(main(["classes", "-c", sys.argv[1]]))
"""

# Take the run's lock as one rank and hold it until a release file appears.
RANK = """
import sys, time
from pathlib import Path
from synthdiv.core.lock import run_lock
from synthdiv.core.rundir import RunDir
from synthdiv.errors import RunLockedError
try:
    with run_lock(RunDir(sys.argv[1]), "generate"):
        Path(sys.argv[2]).write_text("in")
        while not Path(sys.argv[3]).exists():
            time.sleep(0.02)
except RunLockedError as exc:
    print(exc)
    sys.exit(3)
"""


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process exited early: {proc.communicate()}")
        if time.monotonic() > end:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


@pytest.fixture
def run_cfg(tmp_path: Path) -> Path:
    (tmp_path / "c.txt").write_text("goldfish\ncrane\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: {tmp_path / 'run'}\nclasses:\n  source: {tmp_path / 'c.txt'}\n")
    return cfg


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "SLURM_NTASKS", "SLURM_JOB_ID")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return {**env, **extra}


@pytest.mark.timeout(180)
def test_second_writer_is_refused_naming_the_holder_and_the_first_finishes(run_cfg, tmp_path, capsys):
    started, release = tmp_path / "started", tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_cfg), str(started), str(release)],
                              env=_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(started, holder)
        assert main(["classes", "-c", str(run_cfg)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0, err
        assert f"pid {holder.pid} on {socket.gethostname()}" in err and "stage classes" in err
        assert main(["run", "-c", str(run_cfg), "--until", "classes"]) == 2  # `run` too
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert main(["status", "-c", str(run_cfg)]) == 0  # read-only commands never take the lock
        assert "partial" in capsys.readouterr().out
        assert main(["show", "rounds", "-c", str(run_cfg)]) == 2  # show answers from the run (no plan yet)...
        err = capsys.readouterr().err
        assert "plan.parquet: not found" in err and "being written by" not in err  # ...instead of being refused
    finally:
        release.write_text("go")
        out, errs = holder.communicate(timeout=120)
    assert holder.returncode == 0, errs
    run = RunDir(tmp_path / "run")
    assert run.read_state("classes").status == "done"
    assert len(run.classes.read_text().splitlines()) == 2
    assert main(["classes", "-c", str(run_cfg)]) == 0  # the lock went with its holder


@pytest.mark.timeout(180)
def test_a_killed_writer_leaves_no_lock_behind(run_cfg, tmp_path, capsys):
    started = tmp_path / "started"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_cfg), str(started), str(tmp_path / "never")],
                              env=_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(started, holder)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert main(["classes", "-c", str(run_cfg)]) == 0
    assert RunDir(tmp_path / "run").read_state("classes").status == "done"


LAUNCHES = {  # (the launch's variables, the rank variable, another launch of the same kind, its recorded id)
    "torchrun": ({"WORLD_SIZE": "2", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "job7"},
                 "RANK", {"MASTER_PORT": "29501"}, "torchrun:job7:10.0.0.1:29500"),
    "slurm": ({"SLURM_NTASKS": "2", "SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0"}, "SLURM_PROCID",
              {"SLURM_STEP_ID": "1"}, "slurm:42.0"),
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("launcher", sorted(LAUNCHES))
def test_ranks_of_one_launch_share_the_lock_and_others_are_refused(tmp_path, launcher):
    launch, rank_key, other_launch, recorded = LAUNCHES[launcher]
    run_root = tmp_path / "run"
    release = tmp_path / "release"
    ranks = []
    try:
        for rank in (0, 1):
            inside = tmp_path / f"in{rank}"
            proc = subprocess.Popen([sys.executable, "-c", RANK, str(run_root), str(inside), str(release)],
                                    env=_env(**launch, **{rank_key: str(rank)}), cwd=REPO,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            ranks.append(proc)
            _wait_for(inside, proc)  # rank 1 gets in while rank 0 holds the lock
        other = {**launch, **other_launch}  # another launch on the same run
        for env in (_env(**other, **{rank_key: "0"}), _env()):
            out = subprocess.run([sys.executable, "-c", RANK, str(run_root), str(tmp_path / "x"), str(release)],
                                 env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
            assert out.returncode == 3, out
            assert f"pid {ranks[0].pid}" in out.stdout and f"launch {recorded}" in out.stdout
    finally:
        release.write_text("go")
        results = [p.communicate(timeout=120) for p in ranks]
    assert [p.returncode for p in ranks] == [0, 0], results
    holder = json.loads((run_root / ".synthdiv" / "lock.json").read_text())
    assert holder["pid"] == ranks[0].pid and holder["launch"] == recorded


def test_launch_ids():
    assert launch_id({}) is None
    assert launch_id({"RANK": "0", "WORLD_SIZE": "1"}) is None
    torch = {"RANK": "3", "WORLD_SIZE": "4", "MASTER_ADDR": "h", "MASTER_PORT": "1", "TORCHELASTIC_RUN_ID": "r"}
    assert launch_id(torch) == "torchrun:r:h:1"
    assert launch_id({"SLURM_NTASKS": "8", "SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0"}) == "slurm:42.0"


# Try to take the run's lock from another process: exit 3 and the holder's line when refused, 0 when taken.
TRY = """
import sys
from synthdiv.errors import RunLockedError
from synthdiv.core.lock import run_lock
from synthdiv.core.rundir import RunDir
try:
    with run_lock(RunDir(sys.argv[1]), "probe"):
        pass
except RunLockedError as exc:
    print(exc)
    sys.exit(3)
"""


@pytest.mark.timeout(180)
def test_run_keeps_the_lock_between_its_stages_and_takes_it_again_itself(make_config, tmp_path, monkeypatch):
    """`run` holds the lock from its first stage to its last: between two stages (after the first one finished, before
    the second one locks) another process is refused, and the second stage's own lock is re-entrant."""
    import dataclasses

    from synthdiv.core import pipeline
    from synthdiv.engine import runner as stages

    (tmp_path / "c.txt").write_text("goldfish\ncrane\n")
    cfg = make_config(classes={"source": str(tmp_path / "c.txt")})
    probes: list[subprocess.CompletedProcess] = []

    def probe_between(cfg, run: RunDir) -> None:  # the second stage's check runs before it takes the lock
        assert run.read_state("classes").status == "done"
        probes.append(subprocess.run([sys.executable, "-c", TRY, str(run.root)], env=_env(), cwd=REPO,
                                     capture_output=True, text=True, timeout=120))

    def resolve(cfg, run: RunDir) -> dict:
        run.resolved.write_text(run.classes.read_text())
        return {"resolved": 2}

    spec = dataclasses.replace(stages.get_spec("disambiguate"), impl=resolve, check=probe_between)
    monkeypatch.setitem(pipeline._BY_NAME, "disambiguate", spec)
    results = stages.run_all(cfg, stop_after="disambiguate")
    assert list(results) == ["classes", "disambiguate"] and results["disambiguate"] == {"resolved": 2}
    (probe,) = probes
    assert probe.returncode == 3, probe
    assert f"pid {os.getpid()} on {socket.gethostname()} (stage classes" in probe.stdout
    assert subprocess.run([sys.executable, "-c", TRY, str(cfg.run_dir)], env=_env(), cwd=REPO,
                          timeout=120).returncode == 0  # and gives it back when it ends
