"""A full disk during generation: one line naming the path and the free space, a non-zero exit, no traceback;
the complete shards are kept, ``status`` shows the stage partial, and the resume writes the undisturbed bytes.
(The full disk is a fake: the shard writer raises ENOSPC, as the kernel would, when shard 1 is being written.)"""

from __future__ import annotations

import errno
import os
import shutil

import yaml

from synthdiv.cli.app import main
from synthdiv.core.rundir import RunDir
from synthdiv.core.status import stage_status
from synthdiv.engine.runner import run_stage
from synthdiv.stages.generate.shards import ShardWriter


def test_disk_full_is_one_line_and_the_resume_is_byte_identical(gen_config, tmp_path, monkeypatch, capsys):
    cfg = gen_config(images_per_class=2, shard_size=2)
    run = RunDir(cfg.run_dir)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    real_add = ShardWriter.add

    def add_on_a_full_disk(self, key, ext, data, meta):
        if self.shard == 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{run.shard_tar(1)}.tmp-1-abc")
        return real_add(self, key, ext, data, meta)

    monkeypatch.setattr(ShardWriter, "add", add_on_a_full_disk)
    capsys.readouterr()
    assert main(["-q", "generate", "-c", str(config)]) == 1
    err = capsys.readouterr().err  # (diffusers prints its loading bars there too)
    lines = [line for line in err.splitlines() if line.startswith("synthdiv:")]
    assert len(lines) == 1 and "Traceback" not in err
    err = lines[0]
    assert err.startswith(f"synthdiv: error: {run.shard_tar(1)}.tmp-1-abc: No space left on device (")
    assert "MiB free in" in err and "rerun `synthdiv generate" in err and err.endswith("to resume")
    assert not list(run.shards.glob("*.tmp-*"))  # nothing half-written is left
    assert next(r for r in stage_status(cfg) if r.stage == "generate").state == "partial"

    monkeypatch.setattr(ShardWriter, "add", real_add)
    assert main(["-q", "generate", "-c", str(config)]) == 0
    resumed = {s: run.shard_tar(s).read_bytes() for s in range(3)}
    shutil.rmtree(run.shards)
    shutil.rmtree(run.manifest)
    run.clear_state("generate")
    run_stage(cfg, "generate")  # the undisturbed run
    assert {s: run.shard_tar(s).read_bytes() for s in range(3)} == resumed
