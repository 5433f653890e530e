"""Synthetic-media marking: the IPTC digital source type of AI-generated media, and the generator's id, in each
JPEG's XMP metadata, written by exiv2 (through pyexiv2) without touching the image data.

exiv2 rewrites only the JPEG's metadata segments (an XMP packet the image already had is replaced), never the
entropy-coded scan, so the decoded pixels are those of the original bytes. The properties:
``Xmp.iptcExt.DigitalSourceType`` = :data:`TRAINED_ALGORITHMIC_MEDIA` (IPTC NewsCodes "digitalsourcetype") and
``Xmp.xmp.CreatorTool`` = the generator id. exiv2 pads the packet as XMP writers do (about 2.5 KB per image), so
that a later edit can happen in place.
"""

from __future__ import annotations

from synthdiv.errors import MissingDependencyError

__all__ = ["TRAINED_ALGORITHMIC_MEDIA", "mark_jpeg", "NotAJpeg"]

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
_SOI = b"\xff\xd8\xff"


class NotAJpeg(ValueError):
    """The bytes are not a JPEG that exiv2 can read."""


def _pyexiv2():
    try:
        import pyexiv2
    except ImportError:
        raise MissingDependencyError("marking published JPEGs needs pyexiv2: pip install 'synthdiv[publish]' "
                                     "(or publish with --no-mark)") from None
    return pyexiv2


def mark_jpeg(data: bytes, generator_id: str) -> bytes:
    """``data`` (a JPEG) with the synthetic-media XMP marking naming ``generator_id``; pixels unchanged.

    Raises:
        NotAJpeg: ``data`` is not a readable JPEG.
    """
    if not data.startswith(_SOI):
        raise NotAJpeg("no JPEG start-of-image marker")
    pyexiv2 = _pyexiv2()
    try:
        with pyexiv2.ImageData(data) as image:
            image.modify_xmp({"Xmp.iptcExt.DigitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                              "Xmp.xmp.CreatorTool": generator_id})
            return image.get_bytes()
    except RuntimeError as exc:  # exiv2's errors reach Python as RuntimeError
        raise NotAJpeg(str(exc).splitlines()[0][:120] if str(exc) else "exiv2 cannot read it") from None

