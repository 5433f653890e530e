"""Tests of the committed Fashion-MNIST smoke subset and of the script that makes it (scripts/make_smoke_data.py)."""

from __future__ import annotations

import csv
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "fashion-mnist-smoke"
DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def _script():
    spec = importlib.util.spec_from_file_location("make_smoke_data", REPO / "scripts" / "make_smoke_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def _fake_source(folder: Path, per_class: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fashion-MNIST-shaped IDX files where every pixel of an image is its own index (mod 256) - traceable."""
    folder.mkdir()
    out = {}
    for prefix in ("train", "t10k"):
        labels = np.tile(np.arange(10), per_class)
        images = np.stack([np.full((28, 28), i % 256) for i in range(len(labels))]).astype(np.uint8)
        images[:, 0, 0] = labels  # a second trace: the label
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
        out[prefix] = (images, labels)
    return out


def test_committed_subset_has_the_documented_layout():
    mod = _script()
    assert (DATA / "LICENSE").read_text().startswith("The MIT License")
    assert "Zalando" in (DATA / "README.md").read_text()
    for split, n in (("train", 100), ("test", 50)):
        assert sorted(p.name for p in (DATA / split).iterdir()) == sorted(mod.CLASSES)
        for name in mod.CLASSES:
            files = sorted((DATA / split / name).glob("*.png"))
            assert len(files) == n, (split, name)
    with Image.open(files[0]) as im:
        assert im.size == (28, 28) and im.mode == "L"
    with open(DATA / "index.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1500
    assert all((DATA / r["file"]).is_file() and r["class"] == mod.CLASSES[int(r["label"])] for r in rows)


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_committed_images_are_the_source_pixels_and_labels():
    mod = _script()
    images = mod.read_idx(DEBIAN / "t10k-images-idx3-ubyte.gz")
    labels = mod.read_idx(DEBIAN / "t10k-labels-idx1-ubyte.gz")
    with open(DATA / "index.csv", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"][::25]
    for row in rows:
        index = int(row["source_index"])
        assert labels[index] == int(row["label"])
        assert np.array_equal(np.asarray(Image.open(DATA / row["file"])), images[index])


def test_script_builds_a_deterministic_traceable_subset(tmp_path):
    mod = _script()
    source = _fake_source(tmp_path / "src", per_class=12)
    out = tmp_path / "out"
    assert mod.main(["--source", str(tmp_path / "src"), "--out", str(out), "--train-per-class", "5",
                     "--test-per-class", "3", "--seed", "7"]) == 0
    files = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert len(files) == 10 * (5 + 3)
    for path in files:
        split, name, stem = path.parts[0], path.parts[1], path.stem
        index = int(stem.split("-")[1])
        images, labels = source["train" if split == "train" else "t10k"]
        assert mod.CLASSES[labels[index]] == name
        assert np.array_equal(np.asarray(Image.open(out / path)), images[index])
    first = {p: (out / p).read_bytes() for p in files}
    mod.build(tmp_path / "src", out, 5, 3, seed=7)  # rebuilt in place: identical
    assert {p: (out / p).read_bytes() for p in sorted(p.relative_to(out) for p in out.rglob("*.png"))} == first
    mod.build(tmp_path / "src", out, 5, 3, seed=8)  # another seed picks other images
    assert sorted(p.relative_to(out) for p in out.rglob("*.png")) != files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no temporary folders left


def test_script_refuses_bad_sources(tmp_path):
    mod = _script()
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="not an IDX file of unsigned bytes"):
        mod.read_idx(bad)
    _fake_source(tmp_path / "src", per_class=2)
    with pytest.raises(SystemExit) as exc:
        mod.main(["--source", str(tmp_path / "src"), "--out", str(tmp_path / "o"), "--train-per-class", "5"])
    assert exc.value.code == 2
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as exc:
        mod.main(["--source", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
