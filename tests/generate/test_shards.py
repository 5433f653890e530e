"""The shard writer and the resume states: a shard is complete iff its tar and its manifest part agree."""

from __future__ import annotations

import tarfile

import pyarrow as pa
import pytest

from synthdiv.generate.shards import (
    MANIFEST_COLUMNS,
    ShardWriter,
    clean_shard,
    complete_shards,
    part_path,
    read_manifest,
    shard_state,
    tar_path,
)
from synthdiv.run import RunDir


def _rows(shard: int, keys: list[str]) -> pa.Table:
    n = len(keys)
    return pa.table({
        "image_id": keys, "class": [0] * n, "prompt_id": ["p"] * n, "seed": list(range(n)), "shard": [shard] * n,
        "retries": [0] * n, "width": [8] * n, "height": [8] * n, "generator_id": ["g"] * n,
        "tar": [f"shard-{shard:06d}.tar"] * n, "ext": ["jpg"] * n, "degenerate": [False] * n,
    }, schema=MANIFEST_COLUMNS)


def _write(run: RunDir, shard: int, keys: list[str]) -> None:
    w = ShardWriter(run, shard).open()
    for k in keys:
        w.add(k, "jpg", f"image {k}".encode(), {"image_id": k})
    w.commit(_rows(shard, keys))


@pytest.fixture
def run(tmp_path) -> RunDir:
    return RunDir(tmp_path / "run")


def test_commit_writes_tar_then_part_and_reads_back(run):
    _write(run, 3, ["a", "b"])
    assert shard_state(run, 3, "members") == "complete"
    with tarfile.open(tar_path(run, 3)) as tf:
        assert tf.getnames() == ["a.jpg", "a.json", "b.jpg", "b.json"]
        assert tf.extractfile("b.jpg").read() == b"image b"
    assert read_manifest(run).column("image_id").to_pylist() == ["a", "b"]
    assert not list(run.shards.glob("*.tmp-*"))


def test_same_content_gives_byte_identical_tars(tmp_path):
    runs = [RunDir(tmp_path / name) for name in ("x", "y")]
    for r in runs:
        _write(r, 0, ["a", "b"])
    assert tar_path(runs[0], 0).read_bytes() == tar_path(runs[1], 0).read_bytes()


def test_abort_leaves_nothing(run):
    w = ShardWriter(run, 0).open()
    w.add("a", "jpg", b"x", {})
    assert list(run.shards.glob("shard-000000.tar.tmp-*"))
    w.abort()
    assert not list(run.shards.iterdir())
    assert shard_state(run, 0) == "missing"


def test_broken_shards_are_detected_and_cleaned(run):
    for s in range(5):
        _write(run, s, [f"k{s}"])
    part_path(run, 1).unlink()  # killed between the rename and the part
    tar_path(run, 2).unlink()  # a part left without its tar
    data = tar_path(run, 3).read_bytes()
    tar_path(run, 3).write_bytes(data[: len(data) // 2])  # truncated
    tar_path(run, 4).write_bytes(b"garbage" * 400)  # garbage of another size
    (run.shards / "shard-000000.tar.tmp-123-abcd").write_bytes(b"half")
    states = {s: shard_state(run, s, "size") for s in range(5)}
    assert states == {0: "complete", 1: "tar without manifest part", 2: "part without tar", 3: "corrupt", 4: "corrupt"}
    assert complete_shards(run) == [0]
    assert read_manifest(run).column("image_id").to_pylist() == ["k0"]
    for s, state in states.items():
        clean_shard(run, s, state)
    assert sorted(p.name for p in run.shards.iterdir()) == ["shard-000000.tar"]
    assert sorted(p.name for p in run.manifest.iterdir()) == ["shard-000000.parquet"]


def test_members_check_catches_a_same_size_tar_with_other_content(run):
    _write(run, 0, ["a"])
    _write(run, 1, ["b"])
    tar_path(run, 1).replace(tar_path(run, 0))  # same size, wrong members
    assert shard_state(run, 0, "size") == "complete"
    assert shard_state(run, 0, "members") == "corrupt"


def test_empty_manifest_has_the_schema(run):
    table = read_manifest(run)
    assert table.num_rows == 0 and table.schema.names[:9] == [f.name for f in MANIFEST_COLUMNS][:9]
