"""Fitting an image-to-image source to a text-to-image model: its size, and the steps to ask for at a strength."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["fit_image", "img2img_steps"]


def fit_image(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` in RGB, centre-cropped to the aspect ratio of ``width`` x ``height`` and resized to it."""
    from PIL import ImageOps

    return ImageOps.fit(image.convert("RGB"), (int(width), int(height)), method=3)  # 3: bicubic


def img2img_steps(steps: int, strength: float) -> int:
    """Scheduler steps to ask of an img2img pipeline so that ``steps * strength`` rounds to at least one step.

    diffusers runs ``int(num_inference_steps * strength)`` steps and refuses zero; a 1-step model at strength 0.6
    would otherwise fail. The fewest steps, at least ``steps``, for which the float product ``int(n * strength)``
    diffusers computes is one or more (a strength just below ``1 / k`` needs ``k + 1``).
    """
    strength = max(float(strength), 1e-6)
    n = max(int(steps), math.floor(1.0 / strength) - 1)
    while int(n * strength) < 1:
        n += 1
    return n
