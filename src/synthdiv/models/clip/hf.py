"""The ``transformers`` CLIP backend: CLIP, SigLIP and SigLIP 2 through ``AutoModel`` / ``AutoProcessor``, from a
hub id or a local folder, or the embedded tiny random CLIP (``model: embedded``, see
:func:`synthdiv.models.embedded.tiny_hf_clip_dir`).
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

__all__ = ["HFScorer", "HFOptions"]

# SigLIP was trained on texts padded to the full context; CLIP on texts padded to the longest in the batch.
_MAX_LENGTH_PADDING = ("siglip", "siglip2")


class HFOptions(ScorerOptions):
    """``models.clip.options`` of the transformers backend."""


class HFScorer(BatchedScorer):
    """A transformers dual encoder (anything with ``get_image_features`` / ``get_text_features``).

    Args:
        spec: ``models.clip``: ``model`` is a hub id ("openai/clip-vit-large-patch14",
            "google/siglip-base-patch16-224"), a local folder, or ``embedded``; ``revision`` pins a hub revision.
    """

    Options = HFOptions

    def __init__(self, spec: CLIPSpec, options: HFOptions) -> None:
        from transformers import AutoModel, AutoProcessor

        self.options = options
        self.device = resolve_device(spec.device, "models.clip.device")
        self.dtype = resolve_dtype(spec.dtype, self.device, "models.clip.dtype")
        if spec.model == "embedded":
            source, self.model_id = str(embedded.tiny_hf_clip_dir()), f"transformers:{embedded.TINY_HF_CLIP_ID}"
        else:
            source, self.model_id = spec.model, f"transformers:{spec.model}"
            if spec.revision:
                self.model_id += f"@{spec.revision}"
        try:
            self.model = AutoModel.from_pretrained(source, revision=spec.revision)
            self.processor = AutoProcessor.from_pretrained(source, revision=spec.revision)
        except OSError as exc:
            raise ConfigError(
                f"models.clip.model: cannot load {spec.model!r} with transformers ({str(exc).splitlines()[0]})"
            ) from None
        if not hasattr(self.model, "get_image_features") or not hasattr(self.model, "get_text_features"):
            raise ConfigError(
                f"models.clip.model: {spec.model!r} is a {type(self.model).__name__}, not an image-text dual encoder "
                "(CLIP, SigLIP)"
            )
        self.model = self.model.to(device=self.device, dtype=self.dtype).eval()
        self._model_type = getattr(self.model.config, "model_type", "")
        text_config = getattr(self.model.config, "text_config", self.model.config)
        self._context = int(getattr(text_config, "max_position_embeddings", 77))
        logger.info("loaded CLIP %s on %s (%s)", self.model_id, self.device, self.dtype)

    def _encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        inputs = self.processor(images=list(images), return_tensors="pt")
        inputs = {k: self._to_device(v) for k, v in inputs.items()}
        return _features(self.model.get_image_features(**inputs))

    def _encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        padding = "max_length" if self._model_type in _MAX_LENGTH_PADDING else True
        inputs = self.processor(
            text=list(texts), padding=padding, truncation=True, max_length=self._context, return_tensors="pt"
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        return _features(self.model.get_text_features(**inputs))

    def token_ids(self, texts: Sequence[str]) -> list[tuple[int, ...]]:
        """The token ids the text encoder reads for each text (no padding): equal ids, equal embeddings."""
        ids = self.processor.tokenizer(list(texts), truncation=True, max_length=self._context)["input_ids"]
        return [tuple(row) for row in ids]

    def _to_device(self, value: Any) -> Any:
        if value.is_floating_point():
            return value.to(self.device, self.dtype)
        return value.to(self.device)


def _features(out: Any) -> torch.Tensor:
    """transformers 5 returns a model output whose ``pooler_output`` is the projected feature; 4.x a tensor."""
    return out.pooler_output if hasattr(out, "pooler_output") else out
