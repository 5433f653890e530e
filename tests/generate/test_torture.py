"""Torture on a finished tiny run (generate + train): a truncated tar, a deleted manifest part, a corrupt newest
checkpoint, a copy to another filesystem, a damaged stage state and a folder of the run replaced by a link. After
each, ``status`` tells the truth and, once the stage is rerun, the artifacts equal the undisturbed run's:
byte-identical shards and bit-identical exported weights. (SIGKILL in every stage and two concurrent writers are
covered by tests/generate/test_kill.py, tests/train/test_train_loop.py and the lock tests.)"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from synthdiv.core.rundir import RunDir
from synthdiv.core.status import stage_status
from synthdiv.engine.runner import run_stage
from synthdiv.errors import InputError
from synthdiv.stages.train.checkpoint import checkpoint_path
from synthdiv.stages.train.stage import fit
from synthdiv.utils.io import atomic_write_jsonl
from tests.generate.conftest import CLASS_NAMES

pytestmark = pytest.mark.slow

TRAIN = {"model": "test_resnet", "img_size": 16, "batch_size": 4, "num_workers": 0, "log_every": 1, "lr": 3e-3,
         "max_steps": 4, "checkpoint_every": 1, "keep_checkpoints": 4, "synthetic_fraction": 1.0}


def _status(cfg) -> dict[str, str]:
    return {row.stage: row.state for row in stage_status(cfg)}


def _weights(run: RunDir) -> dict[str, torch.Tensor]:
    return load_file(run.export / "main" / "model.safetensors")


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.timeout(900)
def test_damage_to_a_finished_run_is_seen_and_repaired_to_the_undisturbed_artifacts(gen_config):
    cfg = gen_config(images_per_class=4, shard_size=4)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=TRAIN)})
    run = RunDir(cfg.run_dir)
    atomic_write_jsonl(run.classes, [{"index": c, "name": n, "wnid": None, "definition": None, "real_images": 0,
                                      "real_dir": None} for c, n in enumerate(CLASS_NAMES)])
    run_stage(cfg, "generate")
    run_stage(cfg, "train")
    status = _status(cfg)
    assert status["generate"] == status["train"] == "done"
    tars = {s: run.shard_tar(s).read_bytes() for s in range(3)}
    weights = _weights(run)

    for damage in ("truncated tar", "deleted manifest part"):
        if damage == "truncated tar":
            run.shard_tar(0).write_bytes(tars[0][: len(tars[0]) // 2])
        else:
            run.manifest_part(2).unlink()
        assert _status(cfg)["generate"] == "partial", damage
        assert run_stage(cfg, "generate")["made_shards"] == 1, damage
        assert {s: run.shard_tar(s).read_bytes() for s in range(3)} == tars, damage
        # the repaired manifest part is the one it replaces, byte for byte: train's fingerprint (content) holds
        assert _status(cfg)["train"] == "done", damage
        run_stage(cfg, "train", redo=True)
        assert _same(_weights(run), weights), damage
        assert set(_status(cfg).values()) <= {"done", "not started", "not built"}, damage

    # a corrupt newest checkpoint on the finished run: nothing reads it, status stays true
    ckpts = run.train / "main" / "checkpoints"
    newest = checkpoint_path(ckpts, 4)
    newest.write_bytes(newest.read_bytes()[:4096])
    assert _status(cfg)["train"] == "done" and _same(_weights(run), weights)
    # ... and a resume that needs it (as after a kill before the export) falls back and ends with the same weights
    (run.train / "main" / "done.json").unlink()
    (run.export / "main" / "model.safetensors").unlink()
    fit(cfg, run)
    assert _same(_weights(run), weights)

    # the finished run copied to another filesystem (tmpfs) and through a tar: every stage is done there too
    copies = _copies(run.root, run.root.parent / "copies")
    try:
        for how, copy in copies.items():
            moved = cfg.model_copy(update={"run_dir": copy})
            assert _status(moved) == _status(cfg), how
            assert run_stage(moved, "train").get("skipped") is True, how
    finally:
        if "tmpfs" in copies:
            shutil.rmtree(copies["tmpfs"].parent, ignore_errors=True)

    # a damaged stage state: status says so with the file, the stage refuses in one line, --redo replaces it
    run.state_path("generate").write_text("{")
    assert _status(cfg)["generate"] == "damaged"
    with pytest.raises(InputError, match=r"generate\.json: damaged stage state"):
        run_stage(cfg, "generate")
    run_stage(cfg, "generate", redo=True)
    assert {s: run.shard_tar(s).read_bytes() for s in range(3)} == tars

    # shards/ replaced by a link to another disk: refused before anything there is written or deleted
    outside = run.root.parent / "other-disk"
    shutil.move(run.shards, outside)
    (outside / "theirs.tar.tmp-1-abcdef01").write_bytes(b"x")
    run.shards.symlink_to(outside, target_is_directory=True)
    listing = sorted(p.name for p in outside.iterdir())
    with pytest.raises(InputError, match="shards is a symbolic link"):
        run_stage(cfg, "generate", redo=True)
    assert sorted(p.name for p in outside.iterdir()) == listing


def _copies(root: Path, folder: Path) -> dict[str, Path]:
    out = {"copytree": Path(shutil.copytree(root, folder / "copytree" / "run"))}
    tar = folder / "run.tar"
    with tarfile.open(tar, "w", format=tarfile.GNU_FORMAT) as tf:
        tf.add(root, arcname="run")
    with tarfile.open(tar) as tf:
        tf.extractall(folder / "untarred", filter="tar")
    out["tar"] = folder / "untarred" / "run"
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        dest = Path(tempfile.mkdtemp(dir=shm)) / "run"
        out["tmpfs"] = Path(shutil.copytree(root, dest))
    return out
