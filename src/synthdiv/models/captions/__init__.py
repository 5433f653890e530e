"""Captions of real and target-domain images: a registry of captioner backends, and a cached captioning helper.

The built-in backends are ``transformers`` (any image-to-text model ``AutoModelForImageTextToText`` loads: BLIP, GIT,
a VisionEncoderDecoder; ``model: embedded`` is the tiny RANDOM captioner of :mod:`synthdiv.models.embedded`, whose
captions are gibberish) and ``openai`` (a vision-language model behind an OpenAI-compatible chat server that accepts
images).
They are imported only when first created, so importing this package never imports torch.

Example:
    >>> captioner = create_captioner(CaptionerSpec(model="Salesforce/blip-image-captioning-base"))
    >>> caption_files(captioner, ["bag/0001.png"], cache_dir="run/cache/captions")
    ['a black bag on a white background']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from synthdiv.errors import InputError
from synthdiv.models.captions.base import Captioner
from synthdiv.models.captions.cache import CaptionCache, image_digest
from synthdiv.registry import CAPTIONERS
from synthdiv.utils.decode import UnreadableImage, decode_image

if TYPE_CHECKING:
    from synthdiv.config.models import CaptionerSpec

logger = logging.getLogger(__name__)

__all__ = ["Captioner", "CAPTIONERS", "CaptionCache", "caption_files", "create_captioner", "list_captioners",
           "register_captioner"]

register_captioner = CAPTIONERS.register


def list_captioners(pattern: str | None = None) -> list[str]:
    """Names of the registered captioner backends, optionally filtered by a shell-style wildcard."""
    return CAPTIONERS.names(pattern)


def create_captioner(spec: CaptionerSpec) -> Captioner:
    """Build the captioner named by ``spec.backend`` (``models.captioner``).

    Raises:
        UnknownBackendError: ``spec.backend`` is not registered (the message lists the valid names).
    """
    return CAPTIONERS.build(spec, "captioner")


def caption_files(
    captioner: Captioner, paths: Sequence[Path | str], cache_dir: Path | str | None = None, batch_size: int = 16
) -> list[str]:
    """Captions of image files, in order; with ``cache_dir``, each is cached by (captioner id, image bytes).

    Raises:
        InputError: A file is missing or is not an image (naming it).
    """
    cache = CaptionCache(cache_dir, captioner.captioner_id) if cache_dir is not None else None
    digests = [image_digest(p) for p in paths]
    out: list[str | None] = [cache.get(d) if cache else None for d in digests]
    todo = [i for i, c in enumerate(out) if c is None]
    for lo in range(0, len(todo), batch_size):
        rows = todo[lo : lo + batch_size]
        images = []
        for i in rows:
            try:  # the one decoder policy for user images (a decompression bomb is refused, not decoded)
                images.append(decode_image(paths[i]))
            except UnreadableImage as exc:
                raise InputError(f"{paths[i]}: cannot read the image to caption: {exc.reason}") from None
        for i, text in zip(rows, captioner.caption(images), strict=True):
            out[i] = text
            if cache:
                cache.put(digests[i], text)
    if cache:
        logger.info("captions: %d of %d from the cache (%s)", len(paths) - len(todo), len(paths),
                    captioner.captioner_id)
    return [c or "" for c in out]
