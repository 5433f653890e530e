"""A published folder read by libraries nobody here wrote: Hugging Face ``datasets``, timm's ``wds/`` reader,
``mlcroissant`` and ``pyexiv2``; each gives every image with its label as the metadata states it."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from synthdiv.publish.layout import PublishedDir
from synthdiv.publish.marking import TRAINED_ALGORITHMIC_MEDIA


def _labels(folder: PublishedDir) -> dict[str, int]:
    table = pq.read_table(folder.metadata, columns=["key", "label"])
    return dict(zip(table.column("key").to_pylist(), table.column("label").to_pylist(), strict=True))


def test_datasets_load_dataset_gives_every_image_with_its_label(published, tmp_path):
    import datasets

    folder = PublishedDir(published.path)
    ds = datasets.load_dataset(str(folder.root), split="train", cache_dir=str(tmp_path))
    assert len(ds) == published.images == 9
    got = {row["__key__"]: int(row["cls"]) for row in ds}
    assert got == _labels(folder)
    assert all(isinstance(row["jpg"], Image.Image) for row in ds)


def test_timm_wds_reader_reads_the_shards(published):
    import timm.data

    folder = PublishedDir(published.path)
    ds = timm.data.create_dataset("wds/tiny-synth", root=str(folder.data), split="train")
    samples = list(ds)
    assert len(samples) == 9
    assert sorted(int(label) for _, label in samples) == sorted(_labels(folder).values())


def test_mlcroissant_validates_and_streams_images_with_their_labels(published):
    import mlcroissant as mlc

    folder = PublishedDir(published.path)
    ds = mlc.Dataset(jsonld=str(folder.croissant))  # validates: raises on an invalid document
    labels = _labels(folder)
    images = list(ds.records("images"))
    assert len(images) == 9
    got = {r["images/key"].decode(): r["images/label"] for r in images}
    assert got == labels
    assert all(r["images/image"].size == (32, 32) for r in images)
    meta = list(ds.records("metadata"))
    assert {r["metadata/key"].decode(): r["metadata/label"] for r in meta} == labels
    doc = json.loads(folder.croissant.read_text())
    assert doc["rai:dataCollectionType"] == ["Synthetic"] and doc["rai:hasSyntheticData"] is True


def test_pyexiv2_reads_the_source_type_and_pixels_are_unchanged(published, finished):
    import pyexiv2

    folder = PublishedDir(published.path)
    _, run = finished
    meta = pq.read_table(folder.metadata_part(0)).to_pylist()[0]
    with tarfile.open(folder.shard_tar(0)) as tf:
        data = tf.extractfile(meta["file"]).read()
    with tarfile.open(run.shard_tar(0)) as tf:
        original = tf.extractfile(meta["file"]).read()
    with pyexiv2.ImageData(data) as image:
        xmp = image.read_xmp()
    assert xmp["Xmp.iptcExt.DigitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert xmp["Xmp.xmp.CreatorTool"] == meta["generator_id"]
    assert data != original and meta["marked"] is True
    decoded = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in (data, original)]
    assert np.array_equal(*decoded)


def test_metadata_byte_ranges_and_digests_match_the_tar(published):
    import hashlib

    folder = PublishedDir(published.path)
    for shard in folder.shards():
        blob = folder.shard_tar(shard).read_bytes()
        for row in pq.read_table(folder.metadata_part(shard)).to_pylist():
            data = blob[row["offset"] : row["offset"] + row["size"]]
            assert hashlib.sha256(data).hexdigest() == row["sha256"]
            assert row["prompt"] and row["prompt_kind"] in ("base", "style") and row["seed"] is not None
            assert row["generator_revision"] == "main" and row["guidance"] is not None
    table = pq.read_table(folder.metadata)
    assert table.column("in_train_view").to_pylist() == table.column("keep_clip-top1").to_pylist()
    assert {"similarity", "prob", "keep_dedup"} <= set(table.column_names)


def test_the_card_header_and_body(published):
    import yaml

    text = PublishedDir(published.path).card.read_text()
    _, header, body = text.split("---\n", 2)
    meta = yaml.safe_load(header)
    assert meta["license"] == "other" and meta["task_categories"] == ["image-classification"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/*.tar"}]
    for section in ("## Method", "## Classes", "## Images per class and prompt kind", "## Scores", "## Filters",
                    "## Accuracy of the run", "## License", "## Known limits", "## Re-creating it"):
        assert section in body
    assert "| 1 | crane |" in body and "generator: test-only; LLM: apache-2.0" in body


@pytest.mark.parametrize("name", ["config.yaml", "classes.jsonl", "prompts.parquet", "plan.parquet"])
def test_the_recipe_is_complete(published, name):
    assert (PublishedDir(published.path).recipe_file(name)).stat().st_size > 0
