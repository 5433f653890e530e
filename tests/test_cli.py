"""The command line: version, help without torch, one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from synthdiv import __version__
from synthdiv.cli.app import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"synthdiv {__version__}"


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom synthdiv.cli.app import main\n"
        "rc = main(['--help'])\nassert rc == 0, rc\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers', 'open_clip', 'timm') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    for command in ("run", "classes", "status", "show"):
        assert command in out


def test_every_stage_has_a_command(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    for stage in ("classes", "disambiguate", "prompts", "plan", "generate", "score", "train", "evaluate", "report"):
        assert stage in out


def test_classes_then_status_from_the_command_line(tmp_path: Path, capsys):
    (tmp_path / "c.txt").write_text("goldfish\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: run\nclasses:\n  source: c.txt\n")
    assert main(["classes", "-c", str(cfg)]) == 0
    assert (tmp_path / "run" / "classes.jsonl").exists()
    assert main(["status", "-c", str(cfg)]) == 0
    assert "done" in capsys.readouterr().out
    other = tmp_path / "elsewhere"
    assert main(["classes", "-c", str(cfg), "--run-dir", str(other)]) == 0
    assert (other / "classes.jsonl").exists()


def test_bad_input_file_is_one_line_exit_2(tmp_path: Path, capsys):
    (tmp_path / "c.txt").write_text("cat\n\ndog\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: run\nclasses:\n  source: c.txt\n")
    assert main(["classes", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "c.txt: line 2: empty class name" in err
    assert not (tmp_path / "run" / "classes.jsonl").exists()
    assert not (tmp_path / "run" / ".synthdiv" / "stages" / "classes.json").exists()


def test_python_m_synthdiv():
    out = subprocess.run([sys.executable, "-m", "synthdiv", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("synthdiv ")


def _hinted(err: str) -> list[str]:
    """The command a one-line error tells the user to run, as argv (without 'synthdiv')."""
    import re
    import shlex

    match = re.search(r"`(synthdiv [^`]*)`", err)
    assert match, err
    return shlex.split(match[1])[1:]


def test_every_hint_is_a_command_that_works(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.txt").write_text("goldfish\ncrane\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: run\nclasses:\n  source: c.txt\n")
    base = ["-c", str(cfg), "--set", "seed=3"]
    # a stage run before the one it reads: the hint runs that one
    assert main(["disambiguate", *base]) == 2
    hint = _hinted(capsys.readouterr().err)
    assert hint[0] == "classes" and main(hint) == 0
    # a changed config on a single-stage command: the hint redoes that stage (--redo takes no value there)
    changed = [*base, "--set", "classes.max_classes=1"]
    assert main(["classes", *changed]) == 2
    hint = _hinted(capsys.readouterr().err)
    assert hint[:2] == ["classes", "--redo"] and main(hint) == 0
    assert len((tmp_path / "run" / "classes.jsonl").read_text().splitlines()) == 1
    # the same through `run`: the hint is a `run --redo <stage>`
    assert main(["run", *base, "--until", "classes"]) == 2
    hint = _hinted(capsys.readouterr().err)
    assert hint[:3] == ["run", "--redo", "classes"] and "--until" in hint and main(hint) == 0
    assert len((tmp_path / "run" / "classes.jsonl").read_text().splitlines()) == 2


def test_run_until_an_unknown_stage_is_refused(tmp_path: Path, capsys):
    (tmp_path / "c.txt").write_text("goldfish\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: run\nclasses:\n  source: c.txt\n")
    for option in ("--until", "--redo"):
        assert main(["run", "-c", str(cfg), option, "plans"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"{option}: unknown stage 'plans'" in err
        assert "classes, disambiguate, prompts, plan, generate, score, train, evaluate, report" in err
    assert not (tmp_path / "run").exists()


def test_ctrl_c_in_a_stage_says_how_to_resume(tmp_path: Path, capsys, monkeypatch):
    import dataclasses

    from synthdiv.core import pipeline

    def interrupted(cfg, run):
        raise KeyboardInterrupt

    spec = dataclasses.replace(pipeline.get_spec("classes"), impl=interrupted)
    monkeypatch.setitem(pipeline._BY_NAME, "classes", spec)
    (tmp_path / "c.txt").write_text("goldfish\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: run\nclasses:\n  source: c.txt\n")
    for argv in (["classes", "-c", str(cfg)], ["run", "-c", str(cfg)]):
        assert main(argv) == 130
        assert capsys.readouterr().err.strip() == "synthdiv: interrupted; rerun to resume"


def test_sigint_during_a_stage_exits_130_with_the_message(tmp_path: Path):
    import signal
    import time

    from tests.test_lock import HOLDER, REPO, _env, _wait_for

    (tmp_path / "c.txt").write_text("goldfish\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: {tmp_path / 'run'}\nclasses:\n  source: {tmp_path / 'c.txt'}\n")
    started = tmp_path / "started"
    # as from a terminal: SIGINT at its default disposition (a parent that ignores it, as some test runners and
    # every shell's background jobs do, passes SIG_IGN on, and Python then never raises KeyboardInterrupt)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(cfg), str(started), str(tmp_path / "never")],
                            env=_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    _wait_for(started, proc)
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "synthdiv: interrupted; rerun to resume" in err, err
    assert "Traceback" not in err


def test_control_characters_never_reach_the_terminal(tmp_path: Path, capsys):
    (tmp_path / "c.txt").write_text("goldfish\n\x1b[2J\x1b]0;pwned\x07" + "x" * 10_000 + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: run\nclasses:\n  source: c.txt\n")
    assert main(["classes", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and err.count("\n") == 1 and len(err) < 300
    assert "c.txt: line 2: class name '\\x1b[2J\\x1b]0;pwned\\x07" in err


def test_status_escapes_control_characters_from_the_run(tmp_path: Path, capsys):
    import json

    (tmp_path / "c.txt").write_text("goldfish\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: run\nclasses:\n  source: c.txt\n")
    assert main(["classes", "-c", str(cfg)]) == 0
    state = tmp_path / "run" / ".synthdiv" / "stages" / "classes.json"
    data = json.loads(state.read_text())
    data["summary"]["note"] = "\x1b]0;pwned\x07\x1b[2J"  # a state file from someone else's run directory
    state.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["status", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "pwned" in out


# --- issue 24: run directories and hints that run as printed -----------------------------------------------------


def test_an_empty_run_dir_option_is_refused(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.txt").write_text("goldfish\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: run\nclasses:\n  source: c.txt\n")
    for command in (["classes"], ["status"], ["run", "--until", "classes"]):
        assert main([*command, "-c", str(cfg), "--run-dir", ""]) == 2
        err = capsys.readouterr().err.strip()
        assert err == "synthdiv: error: --run-dir: empty; expected a folder path ('.' for the current folder)", err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "c.yaml"]


@pytest.mark.parametrize("where", ["a file", "under a file"])
@pytest.mark.parametrize("command", [["status"], ["check"], ["verify"], ["estimate"], ["show", "rounds"],
                                     ["show", "disambiguation"], ["classes"], ["run"], ["generate"], ["adapt"]])
def test_a_run_dir_that_is_a_file_is_one_line_for_every_command(tmp_path: Path, capsys, command, where):
    (tmp_path / "c.txt").write_text("goldfish\n")
    (tmp_path / "f").write_text("x")
    target = tmp_path / "f" if where == "a file" else tmp_path / "f" / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: run\nclasses:\n  source: c.txt\n")
    assert main([*command, "-c", str(cfg), "--run-dir", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    blocker = "it" if where == "a file" else str(tmp_path / "f")
    assert err.count("\n") == 0 and f"run_dir {target}: cannot write the run here ({blocker} is not a folder)" in err
    assert (tmp_path / "f").read_text() == "x" and not (tmp_path / "run").exists()


FAST = """\
run_dir: not-here            # every command below is given --run-dir: a hint without it would act on this one
classes:
  source: c.txt
disambiguate:
  enabled: false
prompts:
  contexts_per_class: 0
  styles: 0
  clip_dedup: false
  proportions: {base: 1.0}
plan:
  images_per_class: 2
  shard_size: 2
models:
  generator:
    options: {steps: 1}
"""


def _hints_in(text: str) -> list[list[str]]:
    """Every command a text tells the user to run, as argv (without 'synthdiv')."""
    import re
    import shlex

    return [shlex.split(m)[1:] for m in re.findall(r"`(synthdiv [^`]*)`", text)]


def _is(hint: list[str], *command: str, options: list[str]) -> bool:
    """``hint`` is ``command`` followed by ``options`` (option-value pairs, in any order)."""
    rest = hint[len(command):]
    pairs = sorted(zip(rest[::2], rest[1::2], strict=True))
    return hint[: len(command)] == list(command) and pairs == sorted(zip(options[::2], options[1::2], strict=True))


def test_every_printed_hint_runs_as_printed_and_does_what_it_says(tmp_path: Path, capsys, monkeypatch):
    """An empty run asked for `generate` names `run --until generate`; `status` on lost shards, and `verify --repair`
    on damaged ones (its summary and its log line), name `generate`: each hint carries the invocation's -c, --set and
    --run-dir, and running it as printed does what it says."""
    import pyarrow.parquet as pq

    from synthdiv.core.rundir import RunDir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.txt").write_text("goldfish\ncrane\n")
    (tmp_path / "c.yaml").write_text(FAST)
    base = ["-c", "c.yaml", "--run-dir", "the run", "--set", "seed=5"]
    run = RunDir(tmp_path / "the run")

    # an empty run: the first stage to run is named, not the stage just before (which would name its own, ...)
    assert main(["show", "rounds", *base]) == 2
    until_plan, adapt = _hints_in(capsys.readouterr().err)
    assert _is(until_plan, "run", "--until", "plan", options=base) and _is(adapt, "adapt", options=base)
    assert main(["generate", *base]) == 2
    [hint] = _hints_in(capsys.readouterr().err)
    assert _is(hint, "run", "--until", "generate", options=base)
    assert main(hint) == 0
    assert not (tmp_path / "not-here").exists() and run.manifest.exists()
    assert main(["status", *base]) == 0
    assert "generate     │ done" in capsys.readouterr().out

    # lost shards: status names the command that makes the rest, on a line of its own under the table
    before = {s: run.shard_tar(s).read_bytes() for s in range(2)}
    run.shard_tar(1).unlink()
    assert main(["status", *base]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("generate: `synthdiv generate -c c.yaml ")  # unfolded, under the table
    [hint] = _hints_in(out)
    assert _is(hint, "generate", options=base)
    assert main(hint) == 0 and run.shard_tar(1).read_bytes() == before[1]

    # damage of the same size: verify --repair names generate in its summary and its log line
    part = pq.read_table(run.manifest_part(0))
    offset, size = part.column("offset")[0].as_py(), part.column("size")[0].as_py()
    blob = bytearray(before[0])
    blob[offset : offset + size] = bytes(size)
    run.shard_tar(0).write_bytes(bytes(blob))
    capsys.readouterr()
    assert main(["verify", "--repair", *base]) == 1
    captured = capsys.readouterr()
    [hint] = _hints_in(captured.out)
    assert _is(hint, "generate", options=base)
    logged = _hints_in(captured.err)
    assert logged and all(_is(h, "generate", options=base) for h in logged), captured.err
    assert main(hint) == 0 and run.shard_tar(0).read_bytes() == before[0]
    assert main(["verify", *base]) == 0
