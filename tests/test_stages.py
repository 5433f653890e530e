"""The stage engine: no-op on an unchanged fingerprint, refusal on a changed one, redo, order, status."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from synthdiv.cli.app import main
from synthdiv.core import pipeline
from synthdiv.core.rundir import RunDir
from synthdiv.engine import runner as stages
from synthdiv.errors import FingerprintMismatchError, InputError, StageOrderError


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
    with pytest.raises(FingerprintMismatchError, match="`synthdiv classes --redo`"):
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


def _snapshot(run: RunDir) -> dict[str, bytes]:
    """Every file of the run but the lock and heartbeat files (a running stage's bookkeeping), by path."""
    return {str(p.relative_to(run.root)): p.read_bytes() for p in sorted(run.root.rglob("*"))
            if p.is_file() and not p.name.startswith("lock") and p.parent.name != "progress"}


def test_refused_classes_redo_leaves_outputs_and_states_intact(make_config, class_file, monkeypatch):
    cfg = make_config(classes={"source": str(class_file)})
    stages.run_classes(cfg)
    run = RunDir(cfg.run_dir)
    later = stages.get_spec("disambiguate")
    monkeypatch.setitem(pipeline._BY_NAME, "disambiguate", dataclasses.replace(later, impl=_touch))
    stages.run_stage(cfg, "disambiguate")
    before = _snapshot(run)
    class_file.write_text("goldfish\n../secret\n")
    with pytest.raises(InputError, match=r"classes.txt: line 2: class name '../secret' contains '/'"):
        stages.run_classes(cfg, redo=True)
    assert _snapshot(run) == before
    assert {r.stage: r.state for r in stages.stage_status(cfg)}["disambiguate"] == "done"


def _touch(cfg, run: RunDir) -> dict:
    run.resolved.write_text(run.classes.read_text())
    return {"ok": 1}


def test_redo_failing_before_writing_restores_and_a_finished_redo_deletes(make_config, class_file, monkeypatch):
    cfg = make_config(classes={"source": str(class_file)})
    stages.run_classes(cfg)
    run = RunDir(cfg.run_dir)
    before = _snapshot(run)
    spec = stages.get_spec("classes")
    monkeypatch.setitem(pipeline._BY_NAME, "classes", dataclasses.replace(spec, impl=_refuse))
    with pytest.raises(InputError, match="refused"):
        stages.run_classes(make_config(classes={"source": str(class_file), "max_classes": 1}), redo=True)
    assert _snapshot(run) == before  # outputs, state and config.yaml as they were
    assert not (run.root / ".synthdiv" / "redo").exists()

    monkeypatch.setitem(pipeline._BY_NAME, "classes", dataclasses.replace(spec, impl=_half))
    with pytest.raises(KeyboardInterrupt):
        stages.run_classes(cfg, redo=True)
    aside = run.root / ".synthdiv" / "redo" / "classes"
    assert (aside / "classes").read_bytes() == before["classes.jsonl"]  # kept until the redo is done
    assert run.read_state("classes").status == "running"
    monkeypatch.setitem(pipeline._BY_NAME, "classes", spec)
    stages.run_classes(cfg)  # resumes the redo, and only then deletes the old outputs
    assert run.read_state("classes").status == "done" and not aside.exists()


def _refuse(cfg, run: RunDir) -> dict:
    from synthdiv.errors import InputError

    raise InputError("refused")


def _half(cfg, run: RunDir) -> dict:
    run.classes.write_text("half\n")
    raise KeyboardInterrupt


@pytest.mark.timeout(300)
def test_refused_generate_redo_leaves_shards_manifest_and_state(make_config, tmp_path):
    import pyarrow as pa

    from synthdiv.config.models import generator_id
    from synthdiv.models.embedded import tiny_diffusion_dir
    from synthdiv.utils.io import write_parquet_atomic
    from tests.generate.conftest import write_inputs

    model = {"backend": "diffusers", "model": str(tiny_diffusion_dir()), "device": "cpu", "options": {"steps": 1}}
    cfg = make_config(models={"generator": model}, generate={"batch_size": 2, "torch_threads": 1},
                      plan={"shard_size": 2})
    run = RunDir(cfg.run_dir)
    write_inputs(run, 1, 2, generator_id(cfg.models.generator))
    stages.run_stage(cfg, "generate")
    before = _snapshot(run)
    assert any(k.startswith("shards/") for k in before) and any(k.startswith("manifest") for k in before)
    plan = pa.Table.from_pylist([{**r, "prompt_id": "nope"} for r in stages_plan(run)], schema=stages_schema())
    write_parquet_atomic(plan, run.plan)  # a plan naming no prompt: generate refuses it
    before["plan.parquet"] = run.plan.read_bytes()
    with pytest.raises(FingerprintMismatchError):
        stages.run_stage(cfg, "generate")
    with pytest.raises(InputError, match="prompt_id 'nope'"):
        stages.run_stage(cfg, "generate", redo=True)
    assert _snapshot(run) == before
    assert {r.stage: r.state for r in stages.stage_status(cfg)}["generate"] == "stale"


def stages_plan(run: RunDir) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(run.plan).to_pylist()


def stages_schema():
    from synthdiv.core.schemas import PLAN_SCHEMA

    return PLAN_SCHEMA


def test_refused_class_file_writes_nothing(make_config, class_file, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("goldfish\ncr\x1bane\n")
    with pytest.raises(InputError, match=r"line 2: class name 'cr\\x1bane' contains the control character U\+001B"):
        stages.run_classes(make_config(classes={"source": str(bad)}))
    with pytest.raises(InputError, match="line 2"):
        stages.run_all(make_config(classes={"source": str(bad)}))
    assert not (tmp_path / "run").exists()
    cfg = make_config(classes={"source": str(class_file)})
    stages.run_classes(cfg)
    run = RunDir(cfg.run_dir)
    before = _snapshot(run)
    with pytest.raises(InputError):
        stages.run_classes(make_config(classes={"source": str(bad)}), redo=True)
    assert _snapshot(run) == before  # the recorded config.yaml is the one that made classes.jsonl


def test_refused_stage_keeps_the_recorded_config(make_config, class_file, monkeypatch):
    cfg = make_config(classes={"source": str(class_file)})
    stages.run_classes(cfg)
    run = RunDir(cfg.run_dir)
    recorded = run.config.read_bytes()
    spec = stages.get_spec("disambiguate")
    monkeypatch.setitem(pipeline._BY_NAME, "disambiguate", dataclasses.replace(spec, impl=_refuse))
    with pytest.raises(InputError):
        stages.run_stage(make_config(classes={"source": str(class_file)}, seed=5), "disambiguate")
    assert run.config.read_bytes() == recorded
    assert run.read_state("disambiguate") is None


@pytest.mark.parametrize("where", ["file", "under a file", "read-only"])
def test_unusable_run_dir_is_one_line_exit_2(tmp_path, class_file, capsys, monkeypatch, where):
    import errno

    from synthdiv.core import lock

    target = {"file": tmp_path / "f", "under a file": tmp_path / "f" / "run", "read-only": tmp_path / "ro"}[where]
    (tmp_path / "f").write_text("x")
    if where == "read-only":  # a read-only filesystem (tests run as root, so chmod would not stop a write)
        real_open = os.open

        def ro_open(path, flags, *args):
            if str(path).startswith(str(target)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return real_open(path, flags, *args)

        monkeypatch.setattr(lock.os, "open", ro_open)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: {target}\nclasses:\n  source: {class_file}\n")
    assert main(["classes", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"run_dir {target}: cannot write the run here" in err, err


def test_train_options_added_later_enter_the_fingerprint_only_when_set(make_config):
    """A finished train stage stays done after an upgrade that adds train options: at their defaults they are not
    in the fingerprint's train section; set, they are (and the fingerprint changes)."""
    from synthdiv.config.train import TrainConfig
    from synthdiv.core.pipeline import get_spec
    from synthdiv.core.status import _section, fingerprint

    cfg = make_config()
    section = _section(cfg, "train")
    assert not set(TrainConfig.fingerprint_optional) & set(section) and "model" in section
    weighted = make_config(train={"synthetic_weight": "prob"})
    assert _section(weighted, "train")["synthetic_weight"] == "prob"
    assert fingerprint(cfg, get_spec("train")) != fingerprint(weighted, get_spec("train"))
