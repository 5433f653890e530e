"""Atomic writes and fingerprints of the run directory."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthdiv.core.rundir import RunDir
from synthdiv.utils.hashing import canonical_hash, file_digest
from synthdiv.utils.io import atomic_write, atomic_write_json, atomic_write_jsonl, read_jsonl, write_parquet_atomic


def test_failed_write_leaves_no_artifact_and_no_temp(tmp_path: Path):
    target = tmp_path / "out" / "classes.jsonl"

    def rows():
        yield {"a": 1}
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        atomic_write_jsonl(target, rows())
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_failed_rewrite_keeps_the_old_artifact(tmp_path: Path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(ValueError), atomic_write(target, "w") as fh:
        fh.write('{"v": 2')
        raise ValueError("boom")
    assert target.read_text().strip().replace(" ", "").replace("\n", "") == '{"v":1}'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_jsonl_and_parquet_round_trip(tmp_path: Path):
    assert atomic_write_jsonl(tmp_path / "x.jsonl", [{"i": i, "s": "é"} for i in range(3)]) == 3
    assert read_jsonl(tmp_path / "x.jsonl")[2] == {"i": 2, "s": "é"}
    table = pa.table({"a": [1, 2, 3]})
    write_parquet_atomic(table, tmp_path / "t.parquet")
    assert pq.read_table(tmp_path / "t.parquet").equals(table)


def test_digests(tmp_path: Path):
    (tmp_path / "f").write_bytes(b"abc")
    assert file_digest(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    folder = tmp_path / "d"
    (folder / "cls").mkdir(parents=True)
    before = file_digest(folder)
    (folder / "other").mkdir()
    assert file_digest(folder) != before
    f = tmp_path / "f"
    with open(f, "r+b") as fh:  # an in-place rewrite of the same size, right after the digest was memoized
        fh.write(b"xyz")
    assert file_digest(f) == "3608bca1e44ea6c4d268eb6db02260269892c0b42b86bbf1e77a6fa16c3c9282"
    atomic_write_json(f, [])  # an atomic replacement
    assert file_digest(f) == "37517e5f3dc66819f61f5a7bb8ace1921282415f10551d2defa5c3eb0985b570"
    assert canonical_hash({"b": 1, "a": [1, 2]}) == canonical_hash({"a": [1, 2], "b": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})


def test_stage_state_round_trip(tmp_path: Path):
    run = RunDir(tmp_path)
    state = run.begin("plan", "abc")
    assert run.read_state("plan").status == "running"
    run.finish(state, {"images": 5})
    again = run.read_state("plan")
    assert again.status == "done" and again.summary == {"images": 5} and again.fingerprint == "abc"
    run.clear_state("plan")
    assert run.read_state("plan") is None
