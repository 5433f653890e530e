"""Degenerate-image detection and retries with derived seeds.

fp16 overflow turns a whole image into NaN (the backends map NaN to black), safety filters return black images, and
a broken step gives a constant one. Such an image is regenerated with a seed derived from its planned seed and the
attempt number, up to ``generate.max_retries`` times; the number of retries and the seed that was used are recorded.
The planned seed stays the image's identity (its image_id never changes).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

    from synthdiv.models.generators.base import Generator

logger = logging.getLogger(__name__)

__all__ = ["Generated", "degenerate_reason", "derive_seed", "generate_with_retries"]

_SEED_MASK = (1 << 63) - 1


@dataclass
class Generated:
    """One finished image: the image, the seed that made it, how many retries it took, and what was wrong if the
    last attempt was still degenerate (``None`` when it is fine)."""

    image: Image.Image
    used_seed: int
    retries: int
    degenerate: str | None = None


def degenerate_reason(image: Image.Image | np.ndarray) -> str | None:
    """``"black"`` or ``"constant"`` for an unusable image, else ``None`` (NaN pixels arrive here as black)."""
    arr = np.asarray(image)
    if arr.size == 0:
        return "empty"
    lo, hi = int(arr.min()), int(arr.max())
    if hi <= 2:
        return "black"
    if hi - lo <= 2:
        return "constant"
    return None


def derive_seed(seed: int, attempt: int) -> int:
    """The seed of retry ``attempt`` (1, 2, ...) of the image planned with ``seed``; attempt 0 is ``seed`` itself."""
    if attempt == 0:
        return int(seed)
    digest = hashlib.sha256(f"synthdiv-retry:{int(seed)}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & _SEED_MASK


def generate_with_retries(
    generator: Generator,
    prompts: Sequence[str],
    seeds: Sequence[int],
    negative_prompts: Sequence[str] | None,
    max_retries: int,
    init_images: Sequence[Image.Image | None] | None = None,
    strengths: Sequence[float | None] | None = None,
    guidances: Sequence[float] | None = None,
    interval: tuple[float, float] | None = None,
) -> list[Generated]:
    """Generate one batch; regenerate its degenerate images (only those, in one smaller batch per attempt).

    ``init_images`` / ``strengths`` (image-to-image rows; None entries are text-to-image) are passed to the
    generator only when some row has an init image, and ``guidances`` / ``interval`` (``generate.sampling``) only when
    given, so a generator without those features never sees them. A retry keeps its image's guidance.
    """
    img2img = init_images is not None and any(im is not None for im in init_images)
    extra = {"init_images": list(init_images), "strengths": list(strengths or [])} if img2img else {}
    if guidances is not None:
        extra["guidances"] = list(guidances)
    fixed = {"interval": interval} if interval is not None else {}

    def subset(rows: list[int]) -> dict:
        return {k: [v[i] for i in rows] for k, v in extra.items()} | fixed

    images = generator.generate(prompts, seeds, negative_prompts, **extra, **fixed)
    out = [Generated(img, int(s), 0, degenerate_reason(img)) for img, s in zip(images, seeds, strict=True)]
    for attempt in range(1, max_retries + 1):
        bad = [i for i, g in enumerate(out) if g.degenerate]
        if not bad:
            break
        new_seeds = [derive_seed(seeds[i], attempt) for i in bad]
        logger.info("regenerating %d degenerate image(s) (%s), attempt %d", len(bad), out[bad[0]].degenerate, attempt)
        negs = [negative_prompts[i] for i in bad] if negative_prompts is not None else None
        again = generator.generate([prompts[i] for i in bad], new_seeds, negs, **subset(bad))
        for i, img, s in zip(bad, again, new_seeds, strict=True):
            out[i] = Generated(img, s, attempt, degenerate_reason(img))
    for g, s in zip(out, seeds, strict=True):
        if g.degenerate:
            logger.warning("image of seed %d still %s after %d retries; kept, marked", s, g.degenerate, g.retries)
    return out
