"""The ``openai`` captioner: a vision-language model behind an OpenAI-compatible chat server that accepts images.

vLLM, Ollama, llama.cpp's server or OpenAI: each image is sent as a ``data:`` URL in an ``image_url`` content part
with a short instruction, through the ``openai`` LLM backend's client (its retries, concurrency and API key rules;
``models.captioner.options`` takes the same options plus ``instruction`` and ``max_tokens``). Temperature is 0 and
the seed fixed, so a caption can be cached by model and image.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from synthdiv.models.llm.base import Request
from synthdiv.models.llm.openai_backend import OpenAILLM, OpenAIOptions

if TYPE_CHECKING:
    from PIL import Image

    from synthdiv.config.models import CaptionerSpec

logger = logging.getLogger(__name__)

__all__ = ["OpenAICaptioner", "OpenAICaptionerOptions", "image_message"]

DEFAULT_INSTRUCTION = "Describe this image in one short sentence: the main object, the scene and the visual style."


class OpenAICaptionerOptions(OpenAIOptions):
    """``models.captioner.options`` of the openai backend: the LLM backend's options, plus these."""

    instruction: str = Field(DEFAULT_INSTRUCTION, description="what the model is asked about each image")
    max_tokens: int = Field(60, ge=1)


def image_message(image: Image.Image, instruction: str) -> dict[str, Any]:
    """A user message with ``instruction`` and ``image`` as a base64 JPEG ``data:`` URL."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=90)
    url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return {"role": "user", "content": [{"type": "text", "text": instruction},
                                        {"type": "image_url", "image_url": {"url": url}}]}


class OpenAICaptioner:
    """Captions from a chat model that reads images; see the module docstring."""

    Options = OpenAICaptionerOptions

    def __init__(self, spec: CaptionerSpec, options: OpenAICaptionerOptions) -> None:
        self.options = options
        llm_options = OpenAIOptions.model_validate(
            self.options.model_dump(exclude={"instruction", "max_tokens"}) | {"schema_format": "none"})
        self.llm = OpenAILLM(spec, llm_options)  # type: ignore[arg-type]  # same fields as an LLMSpec
        self.captioner_id = f"openai:{spec.model}@{spec.revision or 'main'}"
        self._instruction = self.options.instruction

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        """One caption per image, in order; a batch's requests are in flight together (``options.concurrency``)."""
        requests = [Request([image_message(image, self._instruction)], n=1, temperature=0.0, seed=0,
                            max_tokens=self.options.max_tokens) for image in images]
        return [answer[0].strip() for answer in self.llm.complete_many(requests)]
