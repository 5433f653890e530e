"""The shard writer and the resume states: a shard is complete iff its tar and its manifest part agree; the shards
are a standard classification WebDataset that timm's ``wds/`` reader and Hugging Face ``datasets`` read as they are."""

from __future__ import annotations

import io
import json
import tarfile

import pyarrow as pa
import pytest

from synthdiv.core.rundir import RunDir
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.generate.shards import (
    MANIFEST_COLUMNS,
    WDS_INFO,
    ShardWriter,
    clean_shard,
    complete_shards,
    shard_state,
    write_wds_info,
)


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
        w.add(k, "jpg", f"image {k}".encode(), {"image_id": k, "class": 0})
    w.commit(_rows(shard, keys))


@pytest.fixture
def run(tmp_path) -> RunDir:
    return RunDir(tmp_path / "run")


def test_commit_writes_tar_then_part_and_reads_back(run):
    _write(run, 3, ["a", "b"])
    assert shard_state(run, 3, "members") == "complete"
    with tarfile.open(run.shard_tar(3)) as tf:
        assert tf.getnames() == ["a.jpg", "a.cls", "a.json", "b.jpg", "b.cls", "b.json"]
        assert tf.extractfile("b.jpg").read() == b"image b"
        assert tf.extractfile("b.cls").read() == b"0"
    assert read_manifest(run).column("image_id").to_pylist() == ["a", "b"]
    assert not list(run.shards.glob("*.tmp-*"))


def test_same_content_gives_byte_identical_tars(tmp_path):
    runs = [RunDir(tmp_path / name) for name in ("x", "y")]
    for r in runs:
        _write(r, 0, ["a", "b"])
    assert runs[0].shard_tar(0).read_bytes() == runs[1].shard_tar(0).read_bytes()


def test_abort_leaves_nothing(run):
    w = ShardWriter(run, 0).open()
    w.add("a", "jpg", b"x", {"class": 0})
    assert list(run.shards.glob("shard-000000.tar.tmp-*"))
    w.abort()
    assert not list(run.shards.iterdir())
    assert shard_state(run, 0) == "missing"


def test_broken_shards_are_detected_and_cleaned(run):
    for s in range(5):
        _write(run, s, [f"k{s}"])
    run.manifest_part(1).unlink()  # killed between the rename and the part
    run.shard_tar(2).unlink()  # a part left without its tar
    data = run.shard_tar(3).read_bytes()
    run.shard_tar(3).write_bytes(data[: len(data) // 2])  # truncated
    run.shard_tar(4).write_bytes(b"garbage" * 400)  # garbage of another size
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
    run.shard_tar(1).replace(run.shard_tar(0))  # same size, wrong members
    assert shard_state(run, 0, "size") == "complete"
    assert shard_state(run, 0, "members") == "corrupt"


def test_empty_manifest_has_the_schema(run):
    table = read_manifest(run)
    assert table.num_rows == 0 and table.schema.names[:9] == [f.name for f in MANIFEST_COLUMNS][:9]


def test_a_sidecar_field_keeps_the_manifest_type(run):
    w = ShardWriter(run, 0).open()
    with pytest.raises(TypeError, match="'degenerate' must be bool"):
        w.add("a", "jpg", b"x", {"class": 0, "degenerate": "black"})
    with pytest.raises(TypeError, match="'degenerate' must be bool"):
        w.add("a", "jpg", b"x", {"class": 0, "degenerate": None})
    with pytest.raises(TypeError, match="'class'"):
        w.add("a", "jpg", b"x", {"image_id": "a"})
    with pytest.raises(TypeError, match="'seed' must be int"):
        w.add("a", "jpg", b"x", {"class": 0, "seed": True})
    w.abort()


def test_shards_without_cls_members_stay_complete(run):
    """Shards written before the .cls members (and before artifact formats) existed are not redone (that would
    regenerate every image)."""
    import pyarrow.parquet as pq

    from synthdiv.core.schemas import FORMAT_KEY
    from synthdiv.stages.generate.shards import TAR_SIZE_KEY
    from synthdiv.utils.io import write_parquet_atomic

    _write(run, 0, ["a", "b"])
    legacy = run.shard_tar(0).with_suffix(".legacy")
    with tarfile.open(run.shard_tar(0)) as src, tarfile.open(legacy, "w", format=tarfile.USTAR_FORMAT) as dst:
        for m in src.getmembers():
            if not m.name.endswith(".cls"):
                dst.addfile(m, src.extractfile(m))
    legacy.replace(run.shard_tar(0))
    part = pq.read_table(run.manifest_part(0))
    meta = {**part.schema.metadata, TAR_SIZE_KEY: str(run.shard_tar(0).stat().st_size).encode()}
    stamped = part.replace_schema_metadata(meta)
    write_parquet_atomic(stamped, run.manifest_part(0))
    assert shard_state(run, 0, "members") == "corrupt"  # a part that records its format promises .cls members
    meta.pop(FORMAT_KEY)
    write_parquet_atomic(part.replace_schema_metadata(meta), run.manifest_part(0))
    assert shard_state(run, 0, "members") == "complete"


def _jpeg(value: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (value, 255 - value, 0)).save(buf, format="JPEG")
    return buf.getvalue()


def _write_images(run: RunDir, shard: int, labels: list[int], degenerate: set[int] = frozenset()) -> None:
    keys = [f"s{shard}i{i}" for i in range(len(labels))]
    w = ShardWriter(run, shard).open()
    for i, (key, label) in enumerate(zip(keys, labels, strict=True)):
        bad = i in degenerate
        w.add(key, "jpg", _jpeg(40 * label), {"image_id": key, "class": label, "degenerate": bad,
                                              "degenerate_reason": "constant image" if bad else "", "shard": shard})
    rows = _rows(shard, keys).set_column(1, "class", pa.array(labels, pa.int32()))
    w.commit(rows.set_column(11, "degenerate", pa.array([i in degenerate for i in range(len(labels))])))


def test_info_json_lists_the_complete_shards_and_timm_reads_them(run):
    import timm.data
    import torch

    _write_images(run, 0, [0, 1, 2, 0])
    _write_images(run, 1, [1, 2])
    write_wds_info(run)
    info = json.loads((run.shards / WDS_INFO).read_text())
    assert info["splits"]["train"] == {"name": "train", "num_samples": 6, "shard_lengths": [4, 2],
                                       "filenames": ["shard-000000.tar", "shard-000001.tar"]}
    ds = timm.data.create_dataset("wds/synthdiv", root=str(run.shards), split="train")
    assert len(ds) == 6
    got = sorted((img.size, label) for img, label in ds)
    assert got == sorted(((8, 8), c) for c in [0, 1, 2, 0, 1, 2])
    # as timm's train.py builds its training loader
    train = timm.data.create_dataset("wds/synthdiv", root=str(run.shards), split="train", is_training=True,
                                     batch_size=2)
    loader = timm.data.create_loader(train, input_size=(3, 8, 8), batch_size=2, is_training=True, num_workers=0,
                                     device=torch.device("cpu"))
    labels = sorted(t for _, target in loader for t in target.tolist())
    assert labels == [0, 0, 1, 1, 2, 2]
    clean_shard(run, 1, "corrupt")  # a shard to redo: the list is stale until every shard is complete again
    assert not (run.shards / WDS_INFO).exists()


def test_hf_datasets_reads_image_and_label_with_one_schema(run, tmp_path):
    datasets = pytest.importorskip("datasets")
    _write_images(run, 0, [0, 1, 2, 0, 1, 2, 0], degenerate={6})  # past the 5 samples the schema is inferred from
    ds = datasets.load_dataset("webdataset", data_files={"train": [str(run.shard_tar(0))]}, split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds.features["jpg"], datasets.Image)
    assert ds["cls"] == [0, 1, 2, 0, 1, 2, 0]
    assert [m["degenerate"] for m in ds["json"]] == [False] * 6 + [True]
    assert ds["json"][6]["degenerate_reason"] == "constant image"
    assert ds[0]["jpg"].size == (8, 8)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_generated_run_trains_in_timm_and_loads_in_datasets(gen_config, monkeypatch, tmp_path):
    """The generate stage itself: one image stays degenerate, the stage lists the shards on completion, timm's
    reader yields every image with its label, ``datasets`` one schema, and the manifest's byte ranges still point at
    the images (synthdiv's own loader)."""
    import timm.data
    from PIL import Image

    from synthdiv.engine.runner import run_stage
    from synthdiv.models.generators.diffusers import DiffusersGenerator
    from synthdiv.stages.score.reader import synthetic_samples

    datasets = pytest.importorskip("datasets")
    cfg = gen_config(images_per_class=2, shard_size=4, max_retries=0)
    run = RunDir(cfg.run_dir)
    real = DiffusersGenerator.generate

    def last_black(self, prompts, seeds, negative_prompts=None):
        images = real(self, prompts, seeds, negative_prompts)
        return [Image.new("RGB", im.size) if s == 2001 else im for im, s in zip(images, seeds, strict=True)]

    monkeypatch.setattr(DiffusersGenerator, "generate", last_black)
    run_stage(cfg, "generate")
    manifest = read_manifest(run)
    assert manifest.column("degenerate").to_pylist() == [False] * 5 + [True]
    info = json.loads((run.shards / WDS_INFO).read_text())["splits"]["train"]
    assert info["num_samples"] == 6 and info["shard_lengths"] == [4, 2]

    ds = timm.data.create_dataset("wds/run", root=str(run.shards), split="train")
    assert sorted(label for _, label in ds) == [0, 0, 1, 1, 2, 2]
    hf = datasets.load_dataset("webdataset", data_files={"train": [str(run.shards / f) for f in info["filenames"]]},
                               split="train", cache_dir=str(tmp_path / "hf"))
    assert hf["cls"] == manifest.column("class").to_pylist()
    assert [m["degenerate"] for m in hf["json"]] == manifest.column("degenerate").to_pylist()
    assert hf["json"][5]["degenerate_reason"] == "black"

    run.shard_tar(1).unlink()  # lost after the stage finished: the list goes stale, the rerun writes it again
    run_stage(cfg, "generate")
    assert json.loads((run.shards / WDS_INFO).read_text())["splits"]["train"] == info

    syn = synthetic_samples(cfg, run, 3)  # the degenerate image is left out of training
    assert len(syn) == 5
    assert all(Image.open(io.BytesIO(syn.read(i))).size == (32, 32) for i in range(len(syn)))
