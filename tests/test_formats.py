"""Every Parquet artifact carries its format (synthdiv.core.schemas.FORMATS) in its metadata, and the readers use it
instead of guessing from the columns: a column missing from a file of the current format is damage, from a file
written before formats were recorded it is age, and a newer format is refused in one line."""

from __future__ import annotations

import io
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthdiv.core.artifacts import read_table
from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import FORMAT_KEY, FORMATS, SCORES_SCHEMA, with_format, written_format
from synthdiv.errors import InputError
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.generate.shards import shard_state


@pytest.fixture
def toy_shards(tmp_path):
    from tests.data.toydata import write_shards

    write_shards(tmp_path / "run", num_classes=2, per_class=3, shard_size=10)
    return RunDir(tmp_path / "run"), 0


def test_the_shard_writer_stamps_each_manifest_part(toy_shards):
    run, shard = toy_shards
    assert written_format(pq.read_schema(run.manifest_part(shard)).metadata, "manifest") == FORMATS["manifest"]


def test_a_missing_column_is_damage_in_a_current_file_and_age_in_an_unrecorded_one(tmp_path):
    table = pa.table({"image_id": ["a"], "similarity": pa.array([0.5], pa.float32())})
    current, old = tmp_path / "current.parquet", tmp_path / "old.parquet"
    pq.write_table(table.replace_schema_metadata(with_format(table.schema, "scores").metadata), current)
    pq.write_table(table, old)
    with pytest.raises(InputError, match=r"no column 'prob' \(damaged: scores format 1 has it\); run `synthdiv "
                                         r"score --redo`"):
        read_table(current, "score", "scores", ["image_id", "prob"])
    with pytest.raises(InputError, match="no column 'prob' \\(written before synthdiv recorded artifact formats\\)"):
        read_table(old, "score", "scores", ["image_id", "prob"])
    assert read_table(old, "score", "scores", ["similarity"]).num_rows == 1  # an old file still reads


def test_a_newer_format_is_refused_naming_both_versions(tmp_path):
    path = tmp_path / "scores.parquet"
    newer = SCORES_SCHEMA.with_metadata({FORMAT_KEY: f"scores/{FORMATS['scores'] + 1}".encode()})
    pq.write_table(newer.empty_table(), path)
    with pytest.raises(InputError, match=f"scores format {FORMATS['scores'] + 1}, written by a newer synthdiv "
                                         f"\\(this one reads up to {FORMATS['scores']}\\)"):
        read_table(path, "score", "scores")


def test_a_format_names_its_kind():
    meta = with_format(pa.schema([("x", pa.int8())]), "plan").metadata
    assert written_format(meta, "plan") == FORMATS["plan"]
    assert written_format(meta, "scores") is None  # a plan is not a scores file
    assert written_format({FORMAT_KEY: b"plan/x"}, "plan") is None
    assert written_format(None, "plan") is None


def test_a_stamped_shard_without_its_label_members_is_damaged_and_an_unstamped_one_is_not(toy_shards):
    run, shard = toy_shards
    part = run.manifest_part(shard)
    assert shard_state(run, shard, verify="members") == "complete"
    table = pq.read_table(part)
    tar = run.shard_tar(shard)
    with tarfile.open(tar) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers() if not m.name.endswith(".cls")]
    with tarfile.open(tar, "w") as tf:  # the shard as synthdiv wrote it before the .cls members
        for member, data in members:
            tf.addfile(member, io.BytesIO(data))
    meta = dict(table.schema.metadata)
    meta[b"synthdiv.tar_size"] = str(tar.stat().st_size).encode()
    pq.write_table(table.replace_schema_metadata(meta), part)
    assert shard_state(run, shard, verify="members") == "corrupt"  # its part says it was written with them
    del meta[FORMAT_KEY]
    pq.write_table(table.replace_schema_metadata(meta), part)
    assert shard_state(run, shard, verify="members") == "complete"  # an unrecorded part may predate them
    assert read_manifest(run).num_rows == table.num_rows
