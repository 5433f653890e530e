"""The ``transformers`` captioner: any image-to-text model ``AutoModelForImageTextToText`` loads.

BLIP / BLIP-2 / GIT / a VisionEncoderDecoder, from a hub id or a local folder; ``model: embedded`` is the tiny
RANDOM captioner of :func:`synthdiv.models.embedded.tiny_captioner_dir` (its captions are gibberish: it tests the path,
it describes nothing). Decoding is greedy, so a caption depends only on the model and the image, and can be cached.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from synthdiv.errors import InputError
from synthdiv.models.embedded import tiny_captioner_dir
from synthdiv.utils.devices import resolve_device, resolve_dtype

if TYPE_CHECKING:
    from PIL import Image

    from synthdiv.config.models import CaptionerSpec

logger = logging.getLogger(__name__)

__all__ = ["HFCaptioner", "HFCaptionerOptions"]


class HFCaptionerOptions(BaseModel):
    """``models.captioner.options`` of the transformers backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(30, ge=1, le=200)
    batch_size: int = Field(16, ge=1)
    prompt: str | None = Field(None, description="a text prefix for conditional captioners (BLIP: 'a photography of')")


class HFCaptioner:
    """A transformers image-to-text model as a :class:`~synthdiv.models.captions.base.Captioner`."""

    Options = HFCaptionerOptions

    def __init__(self, spec: CaptionerSpec, options: HFCaptionerOptions) -> None:
        self.options = options
        self.spec = spec
        self.captioner_id = f"transformers:{spec.model}@{spec.revision or 'main'}"
        self.model, self.processor, self.device = self._load()

    def _load(self) -> tuple[Any, Any, str]:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        path = self.spec.model
        if path == "embedded":
            path = str(tiny_captioner_dir())
        device = resolve_device(self.spec.device, "models.captioner.device")
        dtype = resolve_dtype(self.spec.dtype, device, "models.captioner.dtype")
        kwargs: dict[str, Any] = {"revision": self.spec.revision} if self.spec.revision else {}
        try:
            processor = AutoProcessor.from_pretrained(path, **kwargs)
            model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, **kwargs)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"models.captioner.model: cannot load {path!r} as an image-to-text model: {first}") \
                from None
        model.to(device).eval()
        logger.info("captioner %s on %s (%s)", self.captioner_id, device, type(model).__name__)
        return model, processor, device

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        import torch

        out: list[str] = []
        bs = self.options.batch_size
        for lo in range(0, len(images), bs):
            batch = [im.convert("RGB") for im in images[lo : lo + bs]]
            kwargs: dict[str, Any] = {"images": batch, "return_tensors": "pt"}
            if self.options.prompt:
                kwargs["text"] = [self.options.prompt] * len(batch)
            inputs = self.processor(**kwargs).to(self.device)
            inputs = {k: v.to(self.model.dtype) if v.is_floating_point() else v for k, v in inputs.items()}
            with torch.inference_mode():
                ids = self.model.generate(**inputs, max_new_tokens=self.options.max_new_tokens, do_sample=False)
            out += [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]
        return out
