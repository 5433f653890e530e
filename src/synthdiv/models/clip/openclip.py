"""The ``open_clip`` CLIP backend: any open_clip architecture and pretrained tag, ``hf-hub:`` names, or the
embedded tiny random model (``model: embedded``, see :func:`synthdiv.models.embedded.tiny_open_clip`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from synthdiv.errors import ConfigError
from synthdiv.models import embedded
from synthdiv.models.clip._common import BatchedScorer, ScorerOptions
from synthdiv.utils.devices import resolve_device, resolve_dtype

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from synthdiv.config.models import CLIPSpec

logger = logging.getLogger(__name__)

__all__ = ["OpenCLIPScorer", "OpenCLIPOptions"]

_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


class OpenCLIPOptions(ScorerOptions):
    """``models.clip.options`` of the open_clip backend."""

    pretrained: str | None = None  # a tag of open_clip's pretrained registry ("laion2b_s32b_b82k") or a file path


class OpenCLIPScorer(BatchedScorer):
    """An open_clip model as an :class:`~synthdiv.models.clip.base.ImageTextScorer`.

    Args:
        spec: ``models.clip``: ``model`` is an open_clip architecture ("ViT-L-14"), an ``hf-hub:``/``local-dir:``
            name, or ``embedded``; ``options.pretrained`` picks the weights of an architecture.
    """

    Options = OpenCLIPOptions

    def __init__(self, spec: CLIPSpec, options: OpenCLIPOptions) -> None:
        self.options = options
        self.device = resolve_device(spec.device, "models.clip.device")
        self.dtype = resolve_dtype(spec.dtype, self.device, "models.clip.dtype")
        self.model, self.preprocess, self.tokenizer, self.model_id = self._load(spec)
        self.model = self.model.to(device=self.device, dtype=self.dtype).eval()
        logger.info("loaded CLIP %s on %s (%s)", self.model_id, self.device, self.dtype)

    def _load(self, spec: CLIPSpec) -> tuple[Any, Any, Any, str]:
        if spec.model == "embedded":
            model, preprocess, tokenizer = embedded.tiny_open_clip(self.device)
            return model, preprocess, tokenizer, f"open_clip:{embedded.tiny_open_clip_id()}"
        import open_clip

        name, pretrained = spec.model, self.options.pretrained
        if not name.startswith(("hf-hub:", "local-dir:")) and name not in open_clip.list_models():
            raise ConfigError(
                f"models.clip.model: unknown open_clip architecture {name!r}; expected an open_clip model name "
                f"(e.g. ViT-B-32, ViT-L-14), an hf-hub:/local-dir: name, or 'embedded'"
            )
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=self.device, precision=_PRECISION[str(self.dtype).split(".")[-1]]
            )
        except RuntimeError as exc:
            if "pretrained" in str(exc).lower() or "not found" in str(exc).lower():
                raise ConfigError(f"models.clip.options.pretrained: {str(exc).splitlines()[0]}") from None
            raise
        tokenizer = open_clip.get_tokenizer(name)
        tag = f":{pretrained}" if pretrained else ""
        return model, preprocess, tokenizer, f"open_clip:{name}{tag}"

    def _encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        import torch

        pixels = torch.stack([self.preprocess(im) for im in images]).to(self.device, self.dtype)
        return self.model.encode_image(pixels)

    def _encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return self.model.encode_text(tokens)

    def token_ids(self, texts: Sequence[str]) -> list[tuple[int, ...]]:
        """The token ids the text encoder reads for each text (padding dropped): equal ids, equal embeddings."""
        return [tuple(int(t) for t in row if t != 0) for row in self.tokenizer(list(texts))]

