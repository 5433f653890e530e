"""The text-to-image generator protocol."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

__all__ = ["Generator"]


@runtime_checkable
class Generator(Protocol):
    """Makes one image per (prompt, seed); an image depends on its own seed only, never on its batch."""

    generator_id: str  # model id + revision, part of every image_id

    def generate(
        self, prompts: Sequence[str], seeds: Sequence[int], negative_prompts: Sequence[str] | None = None
    ) -> list[Image.Image]:
        ...

    def settings(self) -> dict[str, Any]:
        """Scheduler, steps, guidance, size...: recorded in every image's metadata."""
        ...
