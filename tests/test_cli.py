"""The command line: version, help without torch, one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from synthdiv import __version__
from synthdiv.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"synthdiv {__version__}"


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom synthdiv.cli import main\n"
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
