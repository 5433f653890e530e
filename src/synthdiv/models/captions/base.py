"""The captioner protocol: one short caption per image (BLIP, GIT, a VLM behind an OpenAI-compatible server)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

__all__ = ["Captioner"]


@runtime_checkable
class Captioner(Protocol):
    """Describes images in words; deterministic (greedy decoding), so a caption can be cached by model and image."""

    captioner_id: str  # backend + model + revision: part of every cache key

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        """One caption per image, in order."""
        ...
