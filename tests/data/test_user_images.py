"""Damaged user images under the one decoder policy (synthdiv.utils.decode): an empty file, a truncated JPEG or PNG,
bytes that are no image and a 48 KB PNG of 20000 x 20000 pixels are skipped, counted per class and named, in every
stage that reads user images: score's real embeddings, the train / evaluate loaders, disambiguate's class images."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthdiv.core.rundir import RunDir
from synthdiv.errors import InputError
from synthdiv.utils.decode import DEFAULT_MAX_PIXELS, SkipTally, UnreadableImage, decode_image, max_pixels_of
from tests.data.toydata import write_classes, write_folder


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(side: int = 20000) -> bytes:
    """A valid 1-bit PNG of ``side`` x ``side`` black pixels: 48 KB on disk, 400 million pixels decoded."""
    raw = zlib.compress((b"\x00" * (1 + side // 8)) * side, 9)
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", raw) + _chunk(b"IEND", b"")


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def damaged_images() -> dict[str, tuple[bytes, str]]:
    """``file name -> (bytes, a word of the reason)`` for every kind of damage the policy names."""
    jpg, png = _encoded("JPEG"), _encoded("PNG")
    return {
        "empty.jpg": (b"", "empty file"),
        "truncated.jpg": (jpg[: len(jpg) // 2], "truncated"),
        "truncated.png": (png[: len(png) // 2], "truncated"),
        "garbage.png": (b"this is not an image" * 10, "not an image"),
        "bomb.png": (bomb_png(), "over the bound"),
    }


def plant(folder: Path) -> list[str]:
    """Write every damaged image into ``folder``; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in damaged_images().items():
        (folder / name).write_bytes(data)
    return list(damaged_images())


@pytest.mark.parametrize("name", list(damaged_images()))
def test_each_damage_is_one_named_line(tmp_path, name):
    data, reason = damaged_images()[name]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(UnreadableImage, match=reason) as info:
        decode_image(tmp_path / name)
    assert isinstance(info.value, InputError) and str(tmp_path / name) in str(info.value)
    assert "\n" not in str(info.value)


def test_good_images_decode_to_rgb_and_the_bound_is_configurable(tmp_path):
    img = decode_image(_encoded("PNG"))
    assert img.mode == "RGB" and img.size == (64, 64)
    with pytest.raises(UnreadableImage, match=r"64x64 pixels, over the bound of 1000 \(max_image_pixels\)"):
        decode_image(_encoded("JPEG"), max_pixels=1000, name="x.jpg")
    assert decode_image(_palette_png()).mode == "RGB"
    assert max_pixels_of(object()) == DEFAULT_MAX_PIXELS

    class Cfg:
        max_image_pixels = 1234

    assert max_pixels_of(Cfg()) == 1234


def _palette_png() -> bytes:
    buf = io.BytesIO()
    Image.new("P", (4, 4)).save(buf, "PNG")
    return buf.getvalue()


def test_tally_counts_per_class_and_names_the_first_few():
    tally = SkipTally()
    for i in range(7):
        tally.add(i % 2, f"img{i}.jpg", "empty file")
    assert tally.total == 7 and dict(tally.per_class) == {0: 4, 1: 3}
    assert len(tally.examples) == 5
    line = tally.line(names={0: "cat", 1: "dog"})
    assert line == "7 unreadable image(s) skipped (cat 4, dog 3), e.g. img0.jpg: empty file"
    assert tally.summary(names={0: "cat"}) == {"unreadable": 7, "unreadable_per_class": {"cat": 4, "1": 3},
                                              "unreadable_examples": tally.examples}
    assert SkipTally().summary() == {} and SkipTally().line() == ""


# --- score: the real images embedded for fidelity and the memorization check ------------------------------------


def _score_run(tmp_path, make_config, per_class=3):
    real = write_folder(tmp_path / "real", 2, per_class, seed=0)
    bad = plant(real / "class1")
    run = RunDir(tmp_path / "run")
    write_classes(run.root, real, 2)
    cfg = make_config(classes={"real_root": str(real)}, score={"real_per_class": None})
    return cfg, run, bad


def test_score_skips_damaged_real_images_and_counts_them_per_class(tmp_path, make_config):
    from synthdiv.stages.score.assess import embed_real
    from synthdiv.stages.score.embeddings import load_real

    cfg, run, bad = _score_run(tmp_path, make_config)
    seen = []

    def embed(images):
        seen.extend(images)
        return np.ones((len(images), 4), dtype=np.float32)

    tally = embed_real(cfg, run, run.cache / "emb", embed)
    assert all(im.mode == "RGB" for im in seen) and len(seen) == 6
    assert tally.total == len(bad) and dict(tally.per_class) == {1: len(bad)}
    real = load_real(run)
    assert real is not None and len(real.ids) == 6 and not any(Path(k).name in bad for k in real.ids)
    # a second call reads the cache and reports the same skips, without decoding again
    seen.clear()
    again = embed_real(cfg, run, run.cache / "emb", embed)
    assert seen == [] and again == tally


def test_score_summary_names_the_skipped_real_images(tmp_path, make_config):
    from synthdiv.stages.score.stage import real_images_summary

    cfg, run, bad = _score_run(tmp_path, make_config, per_class=1)
    tally = SkipTally()
    tally.add(1, str(tmp_path / "real" / "class1" / "empty.jpg"), "empty file")
    out = real_images_summary(tally, run)
    assert out["real_unreadable"] == 1 and out["real_unreadable_per_class"] == {"class1": 1}
    assert "empty.jpg: empty file" in out["real_unreadable_note"]


# --- train / evaluate: the loader ---------------------------------------------------------------------------------


def test_loader_skips_damaged_images_and_counts_them_per_class(tmp_path):
    import torch.utils.data

    from synthdiv.data.images import ImageDataset, collate_blocks
    from synthdiv.data.real import imagefolder_samples

    root = write_folder(tmp_path / "real", 2, 2, seed=0)
    bad = plant(root / "class0")
    samples = imagefolder_samples(root, [{"index": 0, "name": "class0"}, {"index": 1, "name": "class1"}])
    keys = [(0, i, -1) for i in range(len(samples))]
    ds = ImageDataset([samples], lambda img: torch.zeros(3, 4, 4))
    batch = collate_blocks(ds.__getitems__(keys))
    assert batch["corrupt"] == len(bad) and batch["images"].shape[0] == 4
    assert batch["unreadable"].total == len(bad) and dict(batch["unreadable"].per_class) == {0: len(bad)}
    # a tighter bound skips the good 16 x 16 images too, by the same policy
    tight = collate_blocks(ImageDataset([samples], lambda img: torch.zeros(3, 4, 4), max_pixels=100).__getitems__(keys))
    assert tight["images"] is None and tight["unreadable"].total == len(samples)
    assert any("over the bound of 100" in e for e in tight["unreadable"].examples)


def test_evaluate_counts_and_names_unreadable_test_images_per_class(toy, make_config):
    import json

    import timm
    from timm.models import save_for_hf

    from synthdiv.stages.evaluate.stage import evaluate_run, headline

    bad = plant(toy["test"] / "class2")
    run = RunDir(toy["run"])
    save_for_hf(timm.create_model("test_resnet", num_classes=4, pretrained=False), run.export / "real")
    cfg = make_config(run_dir=str(run.root), train={"variants": {"real": {"synthetic_fraction": 0}}},
                      evaluate={"test_root": str(toy["test"]), "shifts": ["inverted"], "num_workers": 0})
    summary = evaluate_run(cfg, run)
    for name in ("test", "test-inverted"):
        report = json.loads((run.eval / "real" / f"{name}.json").read_text())
        assert report["images"] == 20 and report["corrupt"] == len(bad)
        assert report["unreadable_per_class"] == {"class2": len(bad)} and len(report["unreadable_examples"]) == 5
    # the stage summary counts each image once (test-inverted reads the same files) and names the first few
    assert summary["unreadable"] == len(bad) and summary["unreadable_per_class"] == {"class2": len(bad)}
    assert f"{len(bad)} unreadable eval image(s) skipped (class2 {len(bad)})" in headline(summary)


# --- disambiguate: a class's mean image embedding -----------------------------------------------------------------


def test_disambiguate_skips_damaged_class_images(tmp_path):
    from synthdiv.stages.disambiguate.scoring import mean_image_embedding

    folder = write_folder(tmp_path / "real", 1, 2, seed=0) / "class0"
    plant(folder)

    class Scorer:
        def embed_images(self, images):
            assert all(im.mode == "RGB" for im in images)
            return np.eye(len(images), 4, dtype=np.float32)

    files = sorted(folder.iterdir())
    tally = SkipTally()
    out = mean_image_embedding(Scorer(), files, skipped=tally, label=3)
    assert [f.name for f in out.files] == ["0000.png", "0001.png"] and out.mean is not None
    assert dict(tally.per_class) == {3: len(damaged_images())}
    assert mean_image_embedding(Scorer(), files, max_pixels=10).mean is None  # the bound is the policy's
