"""Checkpoints are data, never code: a crafted checkpoint is refused without running anything, a damaged newest
checkpoint falls back to the newest readable one, and what is saved loads with ``weights_only=True``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from synthdiv.core.rundir import RunDir
from synthdiv.errors import InputError
from synthdiv.stages.train.checkpoint import (
    CorruptCheckpointError,
    checkpoint_path,
    load_checkpoint,
    load_latest_checkpoint,
    save_checkpoint,
)
from synthdiv.stages.train.stage import fit
from synthdiv.utils.io import read_jsonl

BASE = {"model": "test_resnet", "img_size": 16, "batch_size": 8, "num_workers": 0, "log_every": 1, "lr": 3e-3}


class _WritesAFile:
    """Unpickling this would create ``path`` (as a shell command in a real attack would run)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(toy, make_config, tmp_path):
    cfg = make_config(run_dir=str(toy["run"]), train={**BASE, "max_steps": 2, "checkpoint_every": 1})
    run = RunDir(cfg.run_dir)
    folder = run.train / "main" / "checkpoints"
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    torch.save({"model": {}, "step": 1, "payload": _WritesAFile(marker)}, checkpoint_path(folder, 1))
    with pytest.raises(InputError, match=r"step-00000001\.pt: refused: it asks to load .*open") as info:
        fit(cfg, run)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_a_crafted_checkpoint_is_refused_even_behind_a_readable_one(tmp_path):
    save_checkpoint(tmp_path, 1, {"w": torch.ones(2)})
    marker = tmp_path / "pwned"
    torch.save({"step": 2, "payload": _WritesAFile(marker)}, checkpoint_path(tmp_path, 2))
    with pytest.raises(InputError, match="refused"):
        load_latest_checkpoint(tmp_path)
    assert not marker.exists()


def test_only_tensors_and_plain_types_are_saved(tmp_path):
    import numpy as np

    with pytest.raises(TypeError, match=r"state\['rng'\]: ndarray"):
        save_checkpoint(tmp_path, 1, {"rng": np.zeros(3)})
    assert not list(tmp_path.iterdir())  # nothing written
    path = save_checkpoint(tmp_path, 1, {"w": torch.ones(2), "meta": {"a": [1, 2.0, None, "x", (True,)]}})
    assert load_checkpoint(path)["meta"] == {"a": [1, 2.0, None, "x", (True,)]}


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_files_are_corrupt_not_fatal(tmp_path, damage):
    path = save_checkpoint(tmp_path, 3, {"w": torch.ones(1000)})
    blob = path.read_bytes()
    path.write_bytes({"truncated": blob[: len(blob) // 2], "garbage": b"\0garbage" * 50, "empty": b""}[damage])
    with pytest.raises(CorruptCheckpointError):
        load_checkpoint(path)


def test_a_truncated_newest_checkpoint_falls_back_to_the_older_one_and_training_finishes(toy, make_config, caplog):
    cfg = make_config(run_dir=str(toy["run"]), train={**BASE, "max_steps": 4, "checkpoint_every": 1,
                                                       "keep_checkpoints": 4, "ema_decay": 0.5})
    run = RunDir(cfg.run_dir)
    fit(cfg, run)
    out = run.train / "main"
    undisturbed = load_file(run.export / "main" / "model.safetensors")
    for step in range(1, 5):  # every saved checkpoint loads without unpickling
        assert load_checkpoint(checkpoint_path(out / "checkpoints", step))["step"] == step
    # a run killed after step 4's checkpoint was written but damaged (a truncated copy of the run directory)
    (out / "done.json").unlink()
    newest = checkpoint_path(out / "checkpoints", 4)
    newest.write_bytes(newest.read_bytes()[:5000])
    checkpoint_path(out / "checkpoints", 3).write_bytes(b"\0" * 64)
    with caplog.at_level(logging.WARNING, logger="synthdiv"):
        assert fit(cfg, run)["main"]["steps"] == 4
    assert "step-00000004.pt is unreadable" in caplog.text and "step-00000003.pt is unreadable" in caplog.text
    assert "resuming from step-00000002.pt" in caplog.text
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3, 4]
    assert load_checkpoint(newest)["step"] == 4  # the damaged file was replaced when training reached it
    resumed = load_file(run.export / "main" / "model.safetensors")
    assert resumed.keys() == undisturbed.keys()
    for key, value in undisturbed.items():
        assert torch.equal(resumed[key], value), key


class _RunsACommand:
    """What a plain ``pickle.dump`` of a crafted object holds: a call to a function when it is unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("payload", ["crafted", "plain data"])
def test_a_plain_pickle_as_the_newest_checkpoint_is_refused_not_skipped(tmp_path, protocol, payload, caplog):
    import pickle

    save_checkpoint(tmp_path, 1, {"w": torch.ones(2)})
    marker = tmp_path / "pwned"
    obj = {"step": 2, "x": _RunsACommand(marker)} if payload == "crafted" else {"step": 2, "w": [1.0, 2.0]}
    with open(checkpoint_path(tmp_path, 2), "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    with pytest.raises(InputError, match=r"step-00000002\.pt: refused: it is a (plain )?pickle") as info:
        load_latest_checkpoint(tmp_path)
    assert "\n" not in str(info.value) and not marker.exists()
    if payload == "crafted":
        assert "posix.system" in str(info.value) or "os.system" in str(info.value)
    assert "unreadable" not in caplog.text  # never skipped for the older one


def test_a_plain_pickle_stops_training_in_one_line_instead_of_resuming_from_an_older_one(toy, make_config, tmp_path):
    import pickle

    cfg = make_config(run_dir=str(toy["run"]), train={**BASE, "max_steps": 2, "checkpoint_every": 1})
    run = RunDir(cfg.run_dir)
    folder = run.train / "main" / "checkpoints"
    folder.mkdir(parents=True)
    save_checkpoint(folder, 1, {"w": torch.ones(2)})
    with open(checkpoint_path(folder, 2), "wb") as fh:
        pickle.dump({"step": 2, "x": _RunsACommand(tmp_path / "pwned")}, fh)
    with pytest.raises(InputError, match=r"step-00000002\.pt: refused"):
        fit(cfg, run)
    assert not (tmp_path / "pwned").exists()


def test_a_full_disk_while_saving_a_checkpoint_is_the_kernels_error_and_leaves_no_file(tmp_path, monkeypatch):
    import contextlib
    import errno
    import os

    from synthdiv.stages.train import checkpoint

    real = checkpoint.atomic_write

    class _Full:
        def __init__(self, fh):
            self.fh, self.written = fh, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 4096:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

    @contextlib.contextmanager
    def full(path, mode="wb", encoding=None):
        with real(path, mode, encoding) as fh:
            yield _Full(fh)

    monkeypatch.setattr(checkpoint, "atomic_write", full)
    with pytest.raises(OSError) as info:
        save_checkpoint(tmp_path, 3, {"w": torch.ones(100_000)})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(checkpoint_path(tmp_path, 3))
    assert list(tmp_path.iterdir()) == []
