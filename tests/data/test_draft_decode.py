"""Decoding as little as needed: the training crop is drawn from the JPEG header, then decoded at a DCT scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from synthdiv.data.images import ImageDataset
from synthdiv.data.sources import SampleSet


def _photo(side: int) -> Image.Image:
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    return small.resize((side, side), Image.BICUBIC)


def _samples(tmp_path, img: Image.Image, fmt: str) -> SampleSet:
    path = tmp_path / f"img.{fmt.lower()}"
    img.save(path, format=fmt, quality=95) if fmt == "JPEG" else img.save(path, format=fmt)
    return SampleSet.from_rows([(str(path), -1, -1, 0, str(path))])


def _timm_crop(size: int, scale: tuple[float, float]):
    from timm.data import create_transform

    return create_transform(size, is_training=True, auto_augment=None, color_jitter=0.0, hflip=0.0, scale=scale,
                            mean=(0.5,) * 3, std=(0.5,) * 3)


def _reference(samples: SampleSet, transform, seed: int) -> torch.Tensor:
    """The plain path: full decode, then the timm transform, with the same seeding as the dataset."""
    import random

    from synthdiv.data.images import decode_rgb

    img = decode_rgb(samples.read(0))
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)
    return transform(img)


def test_large_jpeg_crops_are_decoded_smaller_and_look_the_same(tmp_path, monkeypatch):
    samples = _samples(tmp_path, _photo(512), "JPEG")
    transform = _timm_crop(64, (0.5, 1.0))  # every crop side >= 221 px: at least a 1/2 scale qualifies
    drafts: list[tuple[int, int]] = []
    original = JpegImageFile.draft

    def spy(self, mode, size):
        drafts.append(size)
        return original(self, mode, size)

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    ds = ImageDataset([samples], transform)
    for seed in range(5):
        got = ds[(0, 0, seed)][0]
        ref = _reference(samples, transform, seed)
        assert got.shape == ref.shape == (3, 64, 64)
        assert (got - ref).abs().mean() < 0.03  # same crop, a DCT-scaled decode (values in [-1, 1])
    assert len(drafts) == 5 and all(max(size) <= 256 for size in drafts)


@pytest.mark.parametrize("fmt, side", [("PNG", 512), ("JPEG", 80)])
def test_without_a_qualifying_scale_the_result_is_timms_own(tmp_path, fmt, side):
    samples = _samples(tmp_path, _photo(side), fmt)
    transform = _timm_crop(64, (0.08, 1.0))
    ds = ImageDataset([samples], transform)
    for seed in range(5):
        assert torch.equal(ds[(0, 0, seed)][0], _reference(samples, transform, seed))
