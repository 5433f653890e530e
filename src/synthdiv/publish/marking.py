"""Synthetic-media marking: the IPTC digital source type of AI-generated media, and the generator's id, in each
JPEG's XMP metadata, written without touching the image data.

The XMP packet goes into an APP1 segment after the JPEG's JFIF (APP0) and Exif segments; an XMP segment the image
already had is replaced. Only the header segments are rewritten, never the entropy-coded scan, so the decoded pixels
are those of the original bytes. The properties: ``Iptc4xmpExt:DigitalSourceType`` =
:data:`TRAINED_ALGORITHMIC_MEDIA` (IPTC NewsCodes "digitalsourcetype") and ``xmp:CreatorTool`` = the generator id.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

__all__ = ["TRAINED_ALGORITHMIC_MEDIA", "mark_jpeg", "xmp_packet", "NotAJpeg"]

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
_XMP_NS = b"http://ns.adobe.com/xap/1.0/\x00"  # the APP1 identifier of an XMP packet
_EXIF_NS = b"Exif\x00\x00"
_SOI, _APP0, _APP1 = b"\xff\xd8", 0xE0, 0xE1
_MAX_SEGMENT = 65533  # a segment's length field counts itself: 65535 - 2


class NotAJpeg(ValueError):
    """The bytes do not start like a JPEG (SOI then a marker segment)."""


def xmp_packet(generator_id: str) -> bytes:
    """The XMP packet stating that the image was made by a trained algorithm, and by which generator."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about=""'
        ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        ' xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        f' Iptc4xmpExt:DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"'
        f" xmp:CreatorTool={quoteattr(generator_id)}/>"
        "</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="r"?>'
    ).encode()


def _segments(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The header's APPn / COM segments as (marker, whole segment bytes), and where the rest of the JPEG begins."""
    if not data.startswith(_SOI):
        raise NotAJpeg("no JPEG start-of-image marker")
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            raise NotAJpeg(f"a header segment 0xFF{marker:02X} runs past the end of the data")
        out.append((marker, data[pos : pos + 2 + length]))
        pos += 2 + length
    return out, pos


def mark_jpeg(data: bytes, generator_id: str) -> bytes:
    """``data`` (a JPEG) with the XMP marking of :func:`xmp_packet`; every other byte kept as it was.

    Raises:
        NotAJpeg: ``data`` is not a JPEG, or the packet does not fit one segment (a generator id of ~65k bytes).
    """
    segments, rest = _segments(data)
    payload = _XMP_NS + xmp_packet(generator_id)
    if len(payload) > _MAX_SEGMENT:
        raise NotAJpeg("the XMP packet does not fit one JPEG segment")
    ours = b"\xff" + bytes([_APP1]) + (len(payload) + 2).to_bytes(2, "big") + payload
    kept = [(m, s) for m, s in segments if not (m == _APP1 and s[4:].startswith(_XMP_NS))]
    # after the JFIF and Exif segments, which readers expect first
    lead = 0
    while lead < len(kept) and (kept[lead][0] == _APP0 or (kept[lead][0] == _APP1 and kept[lead][1][4:].startswith(
            _EXIF_NS))):
        lead += 1
    parts = [s for _, s in kept[:lead]] + [ours] + [s for _, s in kept[lead:]]
    return _SOI + b"".join(parts) + data[rest:]
