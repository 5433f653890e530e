"""``synthdiv verify`` reads every tar: it finds damage the cheap size check cannot see, names each damaged shard
in one line, exits 1, and with ``--repair`` sets those shards to be redone by ``generate`` (same bytes again)."""

from __future__ import annotations

import pyarrow.parquet as pq
import yaml

from synthdiv.cli.app import main
from synthdiv.core.rundir import RunDir
from synthdiv.engine.runner import run_stage
from synthdiv.stages.generate.stage import is_complete
from synthdiv.stages.generate.verify import verify_shards


def test_verify_finds_damage_of_the_same_size_and_repair_lets_generate_redo_it(gen_config, tmp_path, capsys):
    cfg = gen_config(images_per_class=2, shard_size=2)
    run = RunDir(cfg.run_dir)
    run_stage(cfg, "generate")
    before = {s: run.shard_tar(s).read_bytes() for s in range(3)}
    capsys.readouterr()
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    assert main(["-q", "verify", "-c", str(config)]) == 0
    assert capsys.readouterr().out.strip() == "verified 3 shards: 6 images intact, 0 shards damaged"

    part = pq.read_table(run.manifest_part(1))
    key, offset, size = (part.column(c)[1].as_py() for c in ("image_id", "offset", "size"))
    blob = bytearray(before[1])
    blob[offset : offset + size] = bytes(size)  # bit rot: the image's bytes zeroed, the tar's size unchanged
    run.shard_tar(1).write_bytes(bytes(blob))
    run.shard_tar(2).write_bytes(before[2][:1500])  # truncated
    assert is_complete(cfg, run) is False  # the cheap check sees the truncated tar only
    assert verify_shards(run).damaged.keys() == {1, 2}

    assert main(["-q", "verify", "-c", str(config)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"shard-000001: image {key}: does not decode")
    assert out[1] == "shard-000002: corrupt"
    assert out[2] == "verified 3 shards: 3 images intact, 2 shards damaged"

    assert main(["-q", "verify", "-c", str(config), "--repair"]) == 1
    assert not run.manifest_part(1).exists() and not run.manifest_part(2).exists()
    capsys.readouterr()
    assert run_stage(cfg, "generate")["made_shards"] == 2
    assert {s: run.shard_tar(s).read_bytes() for s in range(3)} == before
    assert main(["-q", "verify", "-c", str(config)]) == 0


def test_a_member_twice_or_at_the_wrong_place_is_damage(gen_config):
    import io
    import json
    import tarfile

    cfg = gen_config(images_per_class=1, shard_size=3)
    run = RunDir(cfg.run_dir)
    run_stage(cfg, "generate")
    original = run.shard_tar(0).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(original)) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as out:
        for m, data in reversed(members):  # the same members, in another order
            out.addfile(m, io.BytesIO(data))
    run.shard_tar(0).write_bytes(buf.getvalue()[: len(original)].ljust(len(original), b"\0"))
    assert "lies at bytes" in verify_shards(run).damaged[0]

    # every member in place, plus a second metadata member for the last image written over the tar's zero padding
    # (a tar ends with 1024 bytes of zeros or more; a header and one block fit): the same size, each image at the
    # place its manifest part says, and the json read last still names its image
    with tarfile.open(fileobj=io.BytesIO(original)) as tf:
        names = tf.getnames()
        end = tf.offset  # where the end-of-archive blocks begin
        meta = next(m for m in reversed(tf.getmembers()) if m.name.endswith(".json"))
    data = json.dumps({"image_id": meta.name.removesuffix(".json")}).encode()
    header = tarfile.TarInfo(meta.name)
    header.size, header.mtime = len(data), meta.mtime
    copy = header.tobuf(format=tarfile.USTAR_FORMAT) + data.ljust(512, b"\0")
    assert len(copy) == 1024 and not original[end:].strip(b"\0") and len(original) - end >= 1024
    twice = original[:end] + copy + original[end + len(copy):]
    with tarfile.open(fileobj=io.BytesIO(twice)) as tf:
        assert tf.getnames() == [*names, meta.name]
    run.shard_tar(0).write_bytes(twice)
    assert verify_shards(run).damaged == {0: f"member {meta.name!r} is in the tar twice"}
    run.shard_tar(0).write_bytes(original)
    assert verify_shards(run).ok


def test_verify_before_generate_finishes_calls_unmade_shards_not_made_yet(gen_config, tmp_path, capsys):
    """A planned shard that generate has not made is no damage: exit 0 with a note; once the stage is done, a shard
    that is gone is lost, and that is damage again."""
    cfg = gen_config(images_per_class=2, shard_size=2)
    run = RunDir(cfg.run_dir)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    result = verify_shards(run)  # nothing generated yet
    assert result.ok and result.not_made == [0, 1, 2] and result.shards == 0
    capsys.readouterr()
    assert main(["-q", "verify", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "3 planned shards are not made yet (first: shard-000000)" in out and "damaged" in out

    run_stage(cfg, "generate")
    for shard in (1, 2):  # as a generate stopped after its first shard leaves the run
        run.shard_tar(shard).unlink()
        run.manifest_part(shard).unlink()
    state = run.read_state("generate")
    state.status = "running"
    run.write_state(state)
    result = verify_shards(run)
    assert result.ok and result.not_made == [1, 2] and result.shards == 1 and result.images == 2
    assert main(["-q", "verify", "-c", str(config)]) == 0

    run_stage(cfg, "generate")  # finished; then shard 2 is lost
    run.shard_tar(2).unlink()
    run.manifest_part(2).unlink()
    result = verify_shards(run)
    assert not result.ok and result.damaged == {2: "missing"} and result.not_made == []
    assert main(["-q", "verify", "-c", str(config)]) == 1
