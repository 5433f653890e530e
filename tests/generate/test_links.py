"""No symlink is followed out of the run directory: ``generate`` with ``shards/`` (or ``manifest.parquet/``) a link to
a folder elsewhere is refused in one line before it writes or deletes anything, there or in the run."""

from __future__ import annotations

import pytest
import yaml

from synthdiv.cli.app import main
from synthdiv.core.rundir import RunDir


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("folder", ["shards", "manifest"])
def test_generate_refuses_a_linked_shards_folder_and_leaves_the_outside_untouched(gen_config, tmp_path, capsys,
                                                                                   folder):
    cfg = gen_config(images_per_class=2, shard_size=2)
    run = RunDir(cfg.run_dir)
    outside = tmp_path / "big-disk"
    outside.mkdir()
    # what the first probe found deleted on a second try: another run's files in the linked folder
    (outside / "shard-000002.tar").write_bytes(b"someone else's shard")
    (outside / "_info.json").write_text('{"theirs": true}')
    (outside / "shard-000001.tar.tmp-1-abcdef01").write_bytes(b"their temporary file")
    (outside / "shard-000002.parquet").write_bytes(b"their manifest part")
    before = _tree(outside)
    getattr(run, folder).symlink_to(outside, target_is_directory=True)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    for _ in range(2):  # a second try deletes nothing either
        capsys.readouterr()
        assert main(["-q", "generate", "-c", str(config)]) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("synthdiv:")]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert f"{getattr(run, folder).name} is a symbolic link (to {outside})" in lines[0]
        assert _tree(outside) == before
    assert run.read_state("generate") is None
    assert main(["-q", "verify", "-c", str(config), "--repair"]) == 2  # repair deletes: refused the same way
    assert _tree(outside) == before
