"""The image-text scorer protocol (CLIP, SigLIP): L2-normalised embeddings of images and texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = ["ImageTextScorer"]


@runtime_checkable
class ImageTextScorer(Protocol):
    """Embeds images and texts into one space; rows are L2-normalised float32, so a dot product is a cosine."""

    model_id: str

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``(len(images), dim)`` float32, L2-normalised."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, L2-normalised."""
        ...

    # Optional: ``token_ids(texts) -> list[tuple[int, ...]]``, the ids the text encoder reads (no padding). Where a
    # backend lacks it, CLIP's own BPE tokenizer (which lower-cases) stands in: see
    # synthdiv.stages.disambiguate.ambiguity.
