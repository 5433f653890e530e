"""The stage engine: no-op on an unchanged fingerprint, refusal on a changed one, redo, order, status."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from synthdiv import stages
from synthdiv.cli import main
from synthdiv.errors import FingerprintMismatchError, StageNotBuiltError, StageOrderError
from synthdiv.run import RunDir


@pytest.fixture
def class_file(tmp_path: Path) -> Path:
    path = tmp_path / "classes.txt"
    path.write_text("goldfish\ncrane\n")
    return path


def test_rerun_is_noop_changed_config_refused_redo_replaces(make_config, class_file, caplog):
    cfg = make_config(classes={"source": str(class_file)})
    first = stages.run_classes(cfg)
    assert first["classes"] == 2
    run = RunDir(cfg.run_dir)
    mtime = run.classes.stat().st_mtime_ns
    caplog.set_level("INFO", logger="synthdiv")
    assert stages.run_classes(cfg)["skipped"] is True
    assert "nothing to do" in caplog.text
    assert run.classes.stat().st_mtime_ns == mtime

    changed = make_config(classes={"source": str(class_file), "max_classes": 1})
    with pytest.raises(FingerprintMismatchError, match="--redo classes"):
        stages.run_classes(changed)
    assert len(run.classes.read_text().splitlines()) == 2
    assert stages.run_classes(changed, redo=True)["classes"] == 1
    assert len(run.classes.read_text().splitlines()) == 1


def test_changed_input_file_changes_fingerprint(make_config, class_file):
    cfg = make_config(classes={"source": str(class_file)})
    stages.run_classes(cfg)
    class_file.write_text("goldfish\ncrane\ntench\n")
    with pytest.raises(FingerprintMismatchError):
        stages.run_classes(cfg)


def test_stage_order_is_enforced(make_config, class_file):
    cfg = make_config(classes={"source": str(class_file)})
    with pytest.raises(StageOrderError, match="run `synthdiv classes` first"):
        stages.run_stage(cfg, "disambiguate")
    assert not (Path(cfg.run_dir) / ".synthdiv").exists()


def test_unbuilt_stage_says_so(make_config, class_file, monkeypatch, capsys, tmp_path):
    fake = dataclasses.replace(stages.get_spec("classes"), impl="synthdiv.not_a_module:run")
    monkeypatch.setitem(stages._BY_NAME, "classes", fake)
    cfg = make_config(classes={"source": str(class_file)})
    with pytest.raises(StageNotBuiltError, match="not built"):
        stages.run_classes(cfg)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"run_dir: {tmp_path / 'r'}\nclasses:\n  source: {class_file}\n")
    assert main(["classes", "-c", str(cfg_path)]) == 2
    assert "stage 'classes' is not built" in capsys.readouterr().err


def test_status_reports_each_stage(make_config, class_file):
    cfg = make_config(classes={"source": str(class_file)})
    before = {row.stage: row.state for row in stages.stage_status(cfg)}
    assert before["classes"] == "not started"
    assert list(before) == [s.name for s in stages.STAGES]
    stages.run_classes(cfg)
    rows = {row.stage: row for row in stages.stage_status(cfg)}
    assert rows["classes"].state == "done" and "classes=2" in rows["classes"].detail
    class_file.write_text("tench\n")
    assert {r.stage: r.state for r in stages.stage_status(cfg)}["classes"] == "stale"


def test_interrupted_stage_shows_partial_and_resumes(make_config, class_file):
    cfg = make_config(classes={"source": str(class_file)})
    run = RunDir(cfg.run_dir)
    run.begin("classes", stages.fingerprint(cfg, stages.get_spec("classes"), run))
    assert {r.stage: r.state for r in stages.stage_status(cfg)}["classes"] == "partial"
    stages.run_classes(cfg)
    assert run.read_state("classes").status == "done"
    assert json.loads(run.classes.read_text().splitlines()[0])["name"] == "goldfish"


def test_resolved_config_is_written_into_the_run(make_config, class_file):
    cfg = make_config(classes={"source": str(class_file)})
    stages.run_classes(cfg)
    text = (Path(cfg.run_dir) / "config.yaml").read_text()
    assert "classes.txt" in text and "seed: 0" in text
