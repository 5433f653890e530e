"""The XMP marking on its own: read back by exiv2 (pyexiv2), the image data untouched, an earlier XMP packet
replaced rather than doubled, and bytes that are not a JPEG refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from synthdiv.publish.marking import TRAINED_ALGORITHMIC_MEDIA, NotAJpeg, mark_jpeg


def _jpeg(**save) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


@pytest.mark.parametrize("save", [{}, {"exif": Image.Exif()}, {"progressive": True}])
def test_marking_reads_back_and_keeps_the_pixels(save):
    import pyexiv2

    raw = _jpeg(**save)
    marked = mark_jpeg(mark_jpeg(raw, "first"), 'diffusers:sd "2.1" <x>&y@main')  # a second marking replaces the first
    with pyexiv2.ImageData(marked) as image:
        xmp = image.read_xmp()
    assert xmp["Xmp.iptcExt.DigitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert xmp["Xmp.xmp.CreatorTool"] == 'diffusers:sd "2.1" <x>&y@main'
    assert marked.count(b"http://ns.adobe.com/xap/1.0/\x00") == 1
    assert raw[raw.index(b"\xff\xdb") :] == marked[marked.index(b"\xff\xdb") :]  # tables and scan byte for byte
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(raw))), np.asarray(Image.open(io.BytesIO(marked))))


def test_bytes_that_are_not_a_jpeg_are_refused():
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    with pytest.raises(NotAJpeg):
        mark_jpeg(buf.getvalue(), "g")
    with pytest.raises(NotAJpeg):
        mark_jpeg(b"\xff\xd8\xff\xe1\x40\x00short", "g")
