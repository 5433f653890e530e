"""``synthdiv verify --dataset``: a copy of a published folder with a deleted image, a swapped label, a truncated shard
or an image twice is caught by name, and images made again from the recipe match the published ones exactly."""

from __future__ import annotations

import io
import shutil
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthdiv.cli.app import main
from synthdiv.publish.check import check_dataset
from synthdiv.publish.layout import PublishedDir
from synthdiv.publish.regenerate import regenerate_sample


@pytest.fixture
def copy(published, tmp_path) -> PublishedDir:
    shutil.copytree(published.path, tmp_path / "received")
    return PublishedDir(tmp_path / "received")


def _rewrite_tar(path, change) -> None:
    """Rewrite the tar at ``path`` with ``change(members)`` applied to its (name, bytes) list."""
    with tarfile.open(path) as tf:
        members = [(m.name, tf.extractfile(m).read()) for m in tf if m.isfile()]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in change(members):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _first_image(folder: PublishedDir, shard: int) -> dict:
    return pq.read_table(folder.metadata_part(shard)).to_pylist()[0]


def _set_label(folder: PublishedDir, shard: int, row: int, label: int) -> None:
    table = pq.read_table(folder.metadata_part(shard))
    labels = table.column("label").to_pylist()
    labels[row] = label
    pq.write_table(table.set_column(table.schema.get_field_index("label"), table.schema.field("label"),
                                    pa.array(labels, pa.int32())), folder.metadata_part(shard))


def _verify(capsys, *args: str) -> tuple[int, str]:
    code = main(["verify", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_an_intact_copy_is_intact(published, copy):
    result = check_dataset(copy.root)
    assert (result.ok, result.shards, result.images) == (True, 3, published.images)


def test_a_deleted_image_is_named(copy):
    row = pq.read_table(copy.metadata_part(1)).to_pylist()[-1]  # the last: the others stay where they were
    _rewrite_tar(copy.shard_tar(1), lambda ms: [(n, d) for n, d in ms if n != row["file"]])
    result = check_dataset(copy.root)
    assert result.counts == {"missing image": 1}
    assert result.problems == [f"data/shard-000001.tar: {row['file']}: listed in metadata/shard-000001.parquet, "
                               "not in the tar"]


def test_a_swapped_label_is_named(copy):
    a, b = _first_image(copy, 0), _first_image(copy, 1)
    assert a["label"] != b["label"]  # two images of different classes
    _set_label(copy, 0, 0, b["label"])
    _set_label(copy, 1, 0, a["label"])
    result = check_dataset(copy.root)
    assert result.counts == {"label": 2}
    assert result.problems == [
        f"data/shard-000000.tar: {a['file']}: label {b['label']} in the metadata, .cls member says {a['label']}",
        f"data/shard-000001.tar: {b['file']}: label {a['label']} in the metadata, .cls member says {b['label']}"]


def test_a_label_changed_everywhere_in_the_shard_disagrees_with_the_recipe(copy):
    row = _first_image(copy, 2)
    key, new = row["key"], (row["label"] + 1) % 3

    def relabel(members):
        out = []
        for name, data in members:
            if name == f"{key}.cls":
                data = str(new).encode()
            elif name == f"{key}.json":
                data = data.replace(f'"class": {row["label"]}'.encode(), f'"class": {new}'.encode())
            out.append((name, data))
        return out

    _rewrite_tar(copy.shard_tar(2), relabel)
    _set_label(copy, 2, 0, new)
    result = check_dataset(copy.root)
    assert result.counts == {"label": 1}
    assert result.problems[0].endswith(f"label {new}, the recipe's plan gives class {row['label']}")


def test_a_truncated_shard_is_named(copy):
    tar = copy.shard_tar(2)
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    result = check_dataset(copy.root)
    assert list(result.counts) == ["truncated shard"]
    assert result.problems[0].startswith("data/shard-000002.tar: truncated or damaged (")
    assert result.images == 6  # the other two shards are intact


def test_an_image_twice_and_an_unlisted_image_are_named(copy):
    row = _first_image(copy, 0)
    _rewrite_tar(copy.shard_tar(0), lambda ms: [*ms, *[(n, d) for n, d in ms if n == row["file"]],
                                                ("stray.jpg", b"\xff\xd8\xff")])
    result = check_dataset(copy.root)
    assert result.counts == {"image twice": 1, "unlisted image": 1}


def test_a_folder_that_is_not_published_is_one_line(tmp_path, capsys):
    code, out = _verify(capsys, "--dataset", str(tmp_path), "--regenerate", "0")
    assert code == 2
    assert f"{tmp_path}: not a published dataset folder (expected data/ and metadata/" in out
    code, out = _verify(capsys)
    assert code == 2 and "expected --config (a run) or --dataset (a published folder)" in out


@pytest.mark.timeout(600)
def test_images_made_again_from_the_recipe_match_exactly(published, tiny_model_dir):
    again = regenerate_sample(published.path, 10, model=str(tiny_model_dir))
    assert (again.checked, again.exact, again.different, again.left_out) == (9, 9, [], 0)  # all 9 of the folder


@pytest.mark.timeout(600)
def test_the_command_reports_damage_and_matches(published, copy, tiny_model_dir, capsys):
    code, out = _verify(capsys, "--dataset", str(published.path), "--regenerate", "4", "--model", str(tiny_model_dir))
    assert code == 0, out
    assert "3 shards, 9 images intact; no damage" in out
    assert "made again from the recipe: 4 images, 4 exact, 0 within the tolerance, 0 different" in out
    # the recipe names the local model folder by a label: without --model it cannot be found here
    code, out = _verify(capsys, "--dataset", str(published.path), "--regenerate", "1")
    assert code == 2 and "a folder of the machine that made the dataset; pass --model" in out
    tar = copy.shard_tar(0)
    tar.write_bytes(tar.read_bytes()[:1000])
    code, out = _verify(capsys, "--dataset", str(copy.root), "--model", str(tiny_model_dir))
    assert code == 1
    assert "1 truncated shard" in out and "no image made again: fix the damage first" in out
