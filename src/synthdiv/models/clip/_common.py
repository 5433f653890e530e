"""Helpers shared by the CLIP backends: device and dtype resolution, options validation, batching, normalisation.

Kept free of heavy imports at module level: torch is imported inside the functions that need it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    "BatchedScorer",
    "ScorerOptions",
    "batches",
    "to_rgb",
    "l2_normalise",
]

OptionsT = TypeVar("OptionsT", bound="ScorerOptions")


class ScorerOptions(BaseModel):
    """Options every CLIP backend accepts (``models.clip.options``); a backend may add its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(32, ge=1, description="images or texts per forward pass")


T = TypeVar("T")


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def to_rgb(image: Image.Image) -> Image.Image:
    """The image in RGB mode (grayscale and palette images are common in real data sets)."""
    return image if image.mode == "RGB" else image.convert("RGB")


def l2_normalise(features: torch.Tensor) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 numpy (computed in float32 whatever the model's dtype)."""
    import torch

    features = features.detach().to(torch.float32)
    features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return features.cpu().numpy()


class BatchedScorer:
    """Base of the torch backends: batching, ``no_grad``, L2 normalisation and empty inputs, done once.

    A subclass sets ``model_id``, ``options`` (with ``batch_size``) and ``device``, and implements
    :meth:`_encode_images` and :meth:`_encode_texts` on one batch, returning unnormalised features.
    """

    model_id: str
    options: ScorerOptions
    device: str
    _dim: int | None = None

    def _encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        raise NotImplementedError

    def _encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    @property
    def dim(self) -> int:
        """Width of the joint embedding space."""
        if self._dim is None:
            self._dim = int(self.embed_texts(["a photo"]).shape[1])
        return self._dim

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``(len(images), dim)`` float32, L2-normalised; images of any mode are converted to RGB."""
        return self._embed(list(images), lambda batch: self._encode_images([to_rgb(im) for im in batch]))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, L2-normalised; texts longer than the context are truncated."""
        if isinstance(texts, str):
            raise TypeError("embed_texts takes a sequence of strings, not one string")
        return self._embed(list(texts), self._encode_texts)

    def _embed(self, items: list[Any], encode: Any) -> np.ndarray:
        import numpy as np
        import torch

        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with torch.inference_mode():
            for batch in batches(items, self.options.batch_size):
                out.append(l2_normalise(encode(batch)))
        result = np.concatenate(out, axis=0)
        self._dim = result.shape[1]
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r}, device={self.device!r})"
