"""The one decoder policy for images: open, check the size in the header, verify, decode in full, convert to RGB.

Every stage that reads images a user supplies (score's real-image embeddings, the train and evaluate loaders,
disambiguate's class images, the quality filters) decodes them here, so an image is usable in all of them or in none.
An image that is empty, not an image, truncated or damaged, or larger than the pixel bound raises
:class:`UnreadableImage`: an :class:`~synthdiv.errors.InputError` whose one line names the image and what is wrong.
A stage that reads many images skips such an image and records it in a :class:`SkipTally`, which counts skips per
class and names the first few in the stage summary.

The pixel bound is the top-level config key ``max_image_pixels`` (:data:`DEFAULT_MAX_PIXELS`, 100 megapixels, when
the config has none: 300 MB of RGB decoded). The size is read from the header before anything is decoded, so a
48 KB PNG that claims 20000 x 20000 pixels costs nothing. PIL's own hard limit (twice ``Image.MAX_IMAGE_PIXELS``,
179 megapixels) still applies above a larger bound.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdiv.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "UnreadableImage",
    "max_pixels_of",
    "open_image",
    "decode_image",
    "describe",
    "SkipTally",
]

DEFAULT_MAX_PIXELS = 100_000_000
_EXAMPLES = 5  # skipped images named in a summary


class UnreadableImage(InputError):
    """An image that cannot be used: empty, not an image, truncated or damaged, or over the pixel bound.

    Attributes:
        name: The image (a path, or ``shard:key``).
        reason: What is wrong, in a few words (``empty file``, ``not an image``, ``truncated or damaged (...)``,
            ``20000x20000 pixels, over the bound of 100000000 (max_image_pixels)``).
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: unreadable image: {reason}")
        self.name, self.reason = name, reason


def max_pixels_of(cfg: Any) -> int:
    """The pixel bound of a run config: its ``max_image_pixels``, else :data:`DEFAULT_MAX_PIXELS`."""
    value = getattr(cfg, "max_image_pixels", None)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else DEFAULT_MAX_PIXELS


def describe(exc: BaseException) -> str:
    """What a decoder's exception says about the image, in a few words (one line)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, UnreadableImage):
        return exc.reason
    if isinstance(exc, UnidentifiedImageError):
        return "not an image"
    if isinstance(exc, Image.DecompressionBombError):
        return f"over PIL's limit of {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    first = (str(exc).splitlines() or [""])[0][:120]
    return f"truncated or damaged ({type(exc).__name__}{': ' + first if first else ''})"


def _read(source: bytes | Path | str) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def open_image(source: bytes | Path | str, max_pixels: int | None = None, name: str | None = None) -> Image.Image:
    """The image's header, checked: opened (not decoded), its size within ``max_pixels``, its structure verified.

    What the loader's draft-mode crop decodes itself; everyone else calls :func:`decode_image`.

    Raises:
        UnreadableImage: Empty, not an image, damaged structure, or over the bound.
    """
    from PIL import Image

    label = name if name is not None else str(source if not isinstance(source, bytes) else "image")
    bound = max_pixels or DEFAULT_MAX_PIXELS
    try:
        data = _read(source)
        if not data:
            raise UnreadableImage(label, "empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own bound applies
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                if width * height > bound:
                    raise UnreadableImage(label, f"{width}x{height} pixels, over the bound of {bound} "
                                                 "(max_image_pixels)")
                probe.verify()
            return Image.open(io.BytesIO(data))
    except UnreadableImage:
        raise
    except Image.DecompressionBombError as exc:  # PIL's own check, at twice its MAX_IMAGE_PIXELS, comes first
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        if pixels and int(pixels[1]) > bound:
            raise UnreadableImage(label, f"{pixels[1]} pixels, over the bound of {bound} (max_image_pixels)") from None
        raise UnreadableImage(label, describe(exc)) from None
    except Exception as exc:  # noqa: BLE001 - PIL's decoders raise many types on damaged input; all mean the same
        raise UnreadableImage(label, describe(exc)) from None


def decode_image(source: bytes | Path | str, max_pixels: int | None = None, name: str | None = None) -> Image.Image:
    """The image fully decoded as RGB (grayscale, palette and alpha images converted), under the policy above.

    Args:
        source: Encoded bytes, or a file to read.
        max_pixels: The pixel bound (None: :data:`DEFAULT_MAX_PIXELS`).
        name: How messages name the image (default: the path).

    Raises:
        UnreadableImage: The image is empty, not an image, truncated or damaged, or over the bound.
    """
    img = open_image(source, max_pixels, name)
    label = name if name is not None else str(source if not isinstance(source, bytes) else "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's notes on odd but decodable files (EXIF, palettes)
            img.load()
            return img.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - see open_image
        raise UnreadableImage(label, describe(exc)) from None
    finally:
        img.close()


@dataclass
class SkipTally:
    """The images a stage skipped: counted per class, the first few named with what was wrong.

    A tally is small and picklable (a DataLoader worker's batch carries its skips back to the main process).
    """

    per_class: Counter[int] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.per_class.values())

    def add(self, label: int, name: str, reason: str) -> None:
        self.per_class[int(label)] += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append(f"{name}: {reason}")

    def update(self, other: SkipTally | None) -> None:
        """Add ``other``'s skips to this tally."""
        if other is None:
            return
        self.per_class.update(other.per_class)
        self.examples += other.examples[: max(0, _EXAMPLES - len(self.examples))]

    def line(self, what: str = "image(s)", names: dict[int, str] | None = None) -> str:
        """``"3 unreadable image(s) skipped (cat 2, dog 1), e.g. a.jpg: empty file"``; empty when none were."""
        if not self.total:
            return ""
        names = names or {}
        counts = ", ".join(f"{names.get(c, c)} {n}" for c, n in sorted(self.per_class.items()))
        return f"{self.total} unreadable {what} skipped ({counts}), e.g. {self.examples[0]}"

    def summary(self, prefix: str = "unreadable", names: dict[int, str] | None = None) -> dict[str, Any]:
        """The tally for a stage summary: ``{prefix: count, prefix_per_class: {class: count}, prefix_examples}``
        (class names when ``names`` has them); empty when nothing was skipped."""
        if not self.total:
            return {}
        names = names or {}
        return {prefix: self.total,
                f"{prefix}_per_class": {str(names.get(c, c)): n for c, n in sorted(self.per_class.items())},
                f"{prefix}_examples": list(self.examples)}
