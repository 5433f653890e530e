"""The run directory is the only place a stage writes, a copy of a finished run is still done, a damaged stage state
is one line, a full disk is one line in every stage, and the lock says which stage a ``run`` is in.

The stages here are the engine's real specs (their inputs, outputs and fingerprinted sections) with small stand-in
implementations, so the rules are tested on the engine and the run directory, not on a model.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from synthdiv.cli.app import main
from synthdiv.core import pipeline
from synthdiv.core.rundir import RunDir
from synthdiv.core.status import is_done, stage_status
from synthdiv.engine import runner as stages
from synthdiv.errors import DiskFullError, FingerprintMismatchError, InputError
from synthdiv.utils.hashing import file_digest
from synthdiv.utils.io import atomic_write_text


@pytest.fixture
def class_file(tmp_path: Path) -> Path:
    path = tmp_path / "classes.txt"
    path.write_text("goldfish\ncrane\n")
    return path


def _config_file(cfg, tmp_path: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("synthdiv:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- stand-in stages: each writes small files where the real stage writes its outputs --------------------------------


FOLDERS = ("shards", "manifest", "train", "export", "eval", "report")


def _write_outputs(cfg, run: RunDir, name: str) -> dict:
    spec = pipeline.get_spec(name)
    for out in spec.outputs:
        path = getattr(run, out)
        if out not in FOLDERS:
            atomic_write_text(path, f"{name} {out}\n")
            continue
        for sub in ("main", "real+syn"):
            atomic_write_text(path / sub / "a.json", json.dumps({"stage": name, "out": out, "sub": sub}))
            atomic_write_text(path / sub / "deep" / "b.txt", f"{name} {out} {sub}\n" * 50)
    return {"wrote": len(spec.outputs)}


@pytest.fixture
def stand_ins(monkeypatch):
    """Every stage of the pipeline with a stand-in implementation (no model, no check, no completeness hook)."""
    from synthdiv.core import status as stage_state

    replaced = []
    for spec in pipeline.STAGES:
        def impl(cfg, run, _name=spec.name):
            return _write_outputs(cfg, run, _name)

        replaced.append(dataclasses.replace(
            spec, impl=impl, check=None, complete=None, progress=None, input_digests=None, external=None))
        monkeypatch.setitem(pipeline._BY_NAME, spec.name, replaced[-1])
    for module in (pipeline, stages, stage_state):
        monkeypatch.setattr(module, "STAGES", tuple(replaced))


def _finished_run(make_config, class_file: Path):
    cfg = make_config(classes={"source": str(class_file)})
    for spec in pipeline.STAGES:
        stages.run_stage(cfg, spec.name)
    return cfg


def _all_done(cfg) -> dict[str, bool]:
    run = RunDir(cfg.run_dir)
    return {spec.name: is_done(cfg, pipeline.get_spec(spec.name), run) for spec in pipeline.STAGES}


# -- 1. no symlink is followed out of the run directory ------------------------------------------------------------


@pytest.mark.parametrize("folder", ["shards", "manifest.parquet", "train", "export", "eval", "report", "cache",
                                    ".synthdiv"])
def test_an_artifact_folder_that_is_a_symlink_is_refused_and_the_outside_is_untouched(
        make_config, class_file, tmp_path, folder, capsys):
    cfg = make_config(classes={"source": str(class_file)})
    root = Path(cfg.run_dir)
    root.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "foreign.txt").write_text("not the run's")
    (root / folder).symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match=rf"{folder} is a symbolic link \(to {outside}\)") as info:
        stages.run_classes(cfg)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in outside.iterdir()) == ["foreign.txt"]
    assert not (root / "classes.jsonl").exists()  # refused before anything is written

    config = _config_file(cfg, tmp_path)
    capsys.readouterr()
    assert main(["classes", "-c", str(config)]) == 2
    assert "is a symbolic link" in _one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in outside.iterdir()) == ["foreign.txt"]


def test_a_symlinked_folder_inside_an_output_is_refused(make_config, class_file, tmp_path):
    cfg = make_config(classes={"source": str(class_file)})
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (Path(cfg.run_dir) / "train" / "main").mkdir(parents=True)
    (Path(cfg.run_dir) / "train" / "main" / "checkpoints").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match=r"train/main/checkpoints is a symbolic link"):
        stages.run_classes(cfg)
    assert list(outside.iterdir()) == []


def test_a_redo_deletes_a_symlinked_output_link_never_its_target(make_config, class_file, tmp_path):
    """The deleters themselves never follow a link: removing an output that is a link removes the link."""
    from synthdiv.core import redo as aside

    cfg = make_config(classes={"source": str(class_file)})
    run = RunDir(cfg.run_dir)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    run.root.mkdir()
    run.report.symlink_to(outside, target_is_directory=True)
    aside._remove(run.report)
    assert not run.report.is_symlink() and (outside / "keep.txt").exists()


# -- 2. fingerprints survive a copy ---------------------------------------------------------------------------------


def _touch_everything(root: Path, when: float) -> None:
    """What a copy that keeps no times (``cp -r``, ``scp``, a tar round trip to whole seconds) does to a run."""
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (when, when), follow_symlinks=False)


def test_a_folder_digest_is_its_content_not_its_metadata(tmp_path):
    folder = tmp_path / "d"
    (folder / "a" / "b").mkdir(parents=True)
    (folder / "a" / "b" / "x.bin").write_bytes(b"abc" * 1000)
    (folder / "top.txt").write_text("top")
    before = file_digest(folder)
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    _touch_everything(copy, 1_000_000_000.5)
    for _ in range(50):  # grow then shrink a folder: its own size on ext4 stays larger
        (copy / "a" / f"tmp{_:03d}-{'x' * 100}").write_text("")
    for p in copy.glob("a/tmp*"):
        p.unlink()
    assert file_digest(copy) == before
    (copy / "a" / "b" / "x.bin").write_bytes(b"abd" * 1000)  # the same size, other content
    assert file_digest(copy) != before


def _copies(src: Path, tmp_path: Path) -> dict[str, Path]:
    out = {}
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):  # another filesystem (tmpfs: folder sizes are not 4096)
        dest = Path(shutil.copytree(src, shm / f"synthdiv-copy-{os.getpid()}-{time.monotonic_ns()}" / "run",
                                    symlinks=True))
        out["tmpfs"] = dest
    out["copytree"] = Path(shutil.copytree(src, tmp_path / "copied" / "run", symlinks=True))
    tar = tmp_path / "run.tar"
    with tarfile.open(tar, "w", format=tarfile.GNU_FORMAT) as tf:  # GNU tar keeps whole seconds only
        tf.add(src, arcname="run")
    with tarfile.open(tar) as tf:
        tf.extractall(tmp_path / "untarred", filter="tar")
    out["tar"] = tmp_path / "untarred" / "run"
    retimed = Path(shutil.copytree(src, tmp_path / "retimed" / "run"))
    _touch_everything(retimed, time.time() + 3600)
    out["no times kept"] = retimed
    return out


def test_a_finished_run_copied_elsewhere_is_still_done(make_config, class_file, tmp_path, stand_ins):
    cfg = _finished_run(make_config, class_file)
    assert all(_all_done(cfg).values())
    copies = _copies(Path(cfg.run_dir), tmp_path)
    try:
        for how, dest in copies.items():
            moved = cfg.model_copy(update={"run_dir": dest})
            assert _all_done(moved) == dict.fromkeys(pipeline.STAGE_NAMES, True), how
            assert {r.stage: r.state for r in stage_status(moved)} == dict.fromkeys(pipeline.STAGE_NAMES, "done"), how
            for spec in pipeline.STAGES:  # and the engine agrees: every stage is a no-op
                assert stages.run_stage(moved, spec.name).get("skipped") is True, (how, spec.name)
    finally:
        if "tmpfs" in copies:
            shutil.rmtree(copies["tmpfs"].parent, ignore_errors=True)


def test_a_changed_output_still_makes_the_next_stage_stale(make_config, class_file, stand_ins):
    cfg = _finished_run(make_config, class_file)
    run = RunDir(cfg.run_dir)
    blob = (run.train / "main" / "deep" / "b.txt").read_bytes()
    (run.train / "main" / "deep" / "b.txt").write_bytes(blob.upper())  # same size, other content
    done = _all_done(cfg)
    assert done["evaluate"] is False and done["report"] is False and done["train"] is True
    with pytest.raises(FingerprintMismatchError):
        stages.run_stage(cfg, "evaluate")


def test_a_run_fingerprinted_by_the_earlier_folder_digest_stays_done(make_config, class_file, stand_ins):
    """Runs made before folder digests were content digests are not made stale by the upgrade: a state whose
    fingerprint is the earlier digest's still counts as done, and the engine records the new one."""
    from synthdiv.core import status as stage_state

    cfg = _finished_run(make_config, class_file)
    run = RunDir(cfg.run_dir)
    spec = pipeline.get_spec("evaluate")
    state = run.read_state("evaluate")
    state.fingerprint = stage_state.fingerprint(cfg, spec, run, legacy=True)
    run.write_state(state)
    assert is_done(cfg, spec, run)
    assert stages.run_stage(cfg, "evaluate")["skipped"] is True
    assert run.read_state("evaluate").fingerprint == stage_state.fingerprint(cfg, spec, run)


# -- 3. a damaged stage state is one line ---------------------------------------------------------------------------

DAMAGED_STATES = {
    "empty": "",
    "truncated": "{",
    "not an object": "[]",
    "missing fields": '{"stage": "classes"}',
    "wrong types": '{"stage": "classes", "status": "done", "fingerprint": 7, "started_at": "x"}',
    "unknown status": '{"stage": "classes", "status": "great", "fingerprint": "ab", "started_at": 1.0}',
    "binary": "\udcff\x00",
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_STATES))
def test_a_damaged_stage_state_is_one_line_everywhere(make_config, class_file, tmp_path, capsys, damage):
    cfg = make_config(classes={"source": str(class_file)})
    stages.run_classes(cfg)
    run = RunDir(cfg.run_dir)
    path = run.state_path("classes")
    path.write_bytes(DAMAGED_STATES[damage].encode("utf-8", "surrogateescape"))

    row = next(r for r in stage_status(cfg) if r.stage == "classes")
    assert row.state == "damaged" and str(path) in row.detail and "synthdiv classes --redo" in row.detail
    with pytest.raises(InputError, match="damaged stage state") as info:
        stages.run_classes(cfg)
    assert "\n" not in str(info.value) and str(path) in str(info.value)

    config = _config_file(cfg, tmp_path)
    capsys.readouterr()
    assert main(["status", "-c", str(config)]) == 0
    assert "damaged" in capsys.readouterr().out
    for command, hint in ((["classes"], "synthdiv classes --redo"),
                          (["run", "--until", "classes"], "synthdiv run --redo classes --until classes")):
        assert main([*command, "-c", str(config)]) == 2, command
        line = _one_error_line(capsys.readouterr().err)
        assert str(path) in line and hint in line, line

    assert stages.run_classes(cfg, redo=True)["classes"] == 2  # --redo replaces it
    assert run.read_state("classes").status == "done"


def test_a_damaged_generate_state_stops_generate_in_one_line_before_any_image(make_config, tmp_path, capsys):
    from synthdiv.config.models import generator_id
    from synthdiv.models.embedded import tiny_diffusion_dir
    from tests.generate.conftest import write_inputs

    model = {"backend": "diffusers", "model": str(tiny_diffusion_dir()), "device": "cpu", "options": {"steps": 1}}
    cfg = make_config(models={"generator": model}, plan={"shard_size": 2})
    run = RunDir(cfg.run_dir)
    write_inputs(run, 1, 2, generator_id(cfg.models.generator))
    run.state_path("generate").parent.mkdir(parents=True)
    run.state_path("generate").write_text("{")
    config = _config_file(cfg, tmp_path)
    capsys.readouterr()
    assert main(["generate", "-c", str(config)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{run.state_path('generate')}: damaged stage state (not JSON" in line
    assert not run.shards.exists() and not run.manifest.exists()
    assert main(["status", "-c", str(config)]) == 0


# -- 4. a full disk is one line in every stage ----------------------------------------------------------------------


def _fill_disk_at(monkeypatch, pattern: str) -> list[str]:
    """Make every atomic write to a path containing ``pattern`` fail as a full disk does: ENOSPC from write()."""
    import contextlib

    from synthdiv.utils import io as run_module

    real = run_module.atomic_write
    hits: list[str] = []

    class _Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.fh, name)

    @contextlib.contextmanager
    def atomic_write(path, mode="wb", encoding=None):
        with real(path, mode, encoding) as fh:
            if pattern in str(path):
                hits.append(str(path))
                yield _Full(fh)
            else:
                yield fh

    monkeypatch.setattr(run_module, "atomic_write", atomic_write)
    from synthdiv.stages.train import checkpoint

    monkeypatch.setattr(checkpoint, "atomic_write", atomic_write)
    return hits


def test_a_full_disk_during_report_is_one_line(make_config, class_file, tmp_path, monkeypatch, capsys):
    cfg = make_config(classes={"source": str(class_file)})
    stages.run_classes(cfg)
    run = RunDir(cfg.run_dir)
    hits = _fill_disk_at(monkeypatch, "index.html")
    with pytest.raises(DiskFullError, match=r"index\.html: No space left on device \(.* free in .*\); .*rerun "
                                            r"`synthdiv report`") as info:
        stages.run_stage(cfg, "report")
    assert hits and "\n" not in str(info.value)
    assert not list(run.report.glob("*.tmp-*"))
    config = _config_file(cfg, tmp_path)
    capsys.readouterr()
    assert main(["report", "-c", str(config)]) == 1
    assert "No space left on device" in _one_error_line(capsys.readouterr().err)


def test_a_full_disk_while_train_writes_a_checkpoint_is_one_line(toy, make_config, tmp_path, monkeypatch, capsys):
    cfg = make_config(run_dir=str(toy["run"]), train={"model": "test_resnet", "img_size": 16, "batch_size": 8,
                                                       "num_workers": 0, "max_steps": 2, "checkpoint_every": 1})
    hits = _fill_disk_at(monkeypatch, "checkpoints")
    with pytest.raises(DiskFullError, match=r"step-00000001\.pt: No space left on device \(.* MiB free in .*"
                                            r"checkpoints\); .*rerun `synthdiv train` to resume") as info:
        stages.run_stage(cfg, "train")
    assert hits and "\n" not in str(info.value)
    assert not list((RunDir(cfg.run_dir).train / "main" / "checkpoints").glob("*.tmp-*"))
    config = _config_file(cfg, tmp_path)
    capsys.readouterr()
    assert main(["-q", "train", "-c", str(config)]) == 1
    assert "No space left on device" in _one_error_line(capsys.readouterr().err)


def test_a_full_disk_in_any_stage_is_one_line_through_the_engine(make_config, class_file, monkeypatch, stand_ins):
    cfg = make_config(classes={"source": str(class_file)})
    stages.run_classes(cfg)
    _fill_disk_at(monkeypatch, "/eval/")
    for name in ("disambiguate", "prompts", "plan", "generate", "score", "train"):
        stages.run_stage(cfg, name)
    with pytest.raises(DiskFullError, match="rerun `synthdiv evaluate`"):
        stages.run_stage(cfg, "evaluate")
    import contextlib

    with pytest.raises(DiskFullError, match=r"eval/main/a\.json: No space left .*rerun `synthdiv evaluate`"), \
            contextlib.ExitStack() as hold:  # as `run` holds the lock across its stages
        for name in ("train", "evaluate", "report"):
            stages.run_stage(cfg, name, hold=hold)


# -- 7. the lock names the stage a run is in ------------------------------------------------------------------------


def test_the_lock_names_the_stage_that_run_is_in(make_config, class_file, monkeypatch, stand_ins):
    cfg = make_config(classes={"source": str(class_file)})
    seen = {}
    for name in ("classes", "disambiguate", "prompts"):
        spec = pipeline.get_spec(name)

        def impl(cfg, run, _name=name, _impl=spec.impl):
            seen[_name] = json.loads((run.root / ".synthdiv" / "lock.json").read_text())["stage"]
            return _impl(cfg, run)

        monkeypatch.setitem(pipeline._BY_NAME, name, dataclasses.replace(spec, impl=impl))
    import contextlib

    with contextlib.ExitStack() as hold:  # as `run` holds it: one lock across the stages
        for name in ("classes", "disambiguate", "prompts"):
            stages.run_stage(cfg, name, hold=hold)
    assert seen == {"classes": "classes", "disambiguate": "disambiguate", "prompts": "prompts"}


def test_a_nested_lock_records_the_inner_stage_and_keeps_the_holder(tmp_path):
    from synthdiv.core.lock import _holder_text, run_lock

    run = RunDir(tmp_path / "run")
    lock_json = run.root / ".synthdiv" / "lock.json"
    with run_lock(run, "classes"):
        first = json.loads(lock_json.read_text())
        with run_lock(run, "generate"):
            now = json.loads(lock_json.read_text())
            assert now["stage"] == "generate" and now["pid"] == first["pid"] and now["since"] == first["since"]
            assert "(stage generate, since" in _holder_text(lock_json)
