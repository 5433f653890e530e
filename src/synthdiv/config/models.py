"""The ``models`` section: which LLM, CLIP scorer and text-to-image generator a run uses.

Each entry names a registered ``backend`` and the backend's own ``options``; the options are validated by the
backend's pydantic ``Options`` model when it is created. ``model: embedded`` selects the offline default
(SmolLM2-135M-Instruct, a tiny random CLIP, a tiny random diffusion pipeline; see :mod:`synthdiv.models.embedded`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from synthdiv.config._base import Section

__all__ = ["ModelSpec", "LLMSpec", "CLIPSpec", "GeneratorSpec", "CaptionerSpec", "ModelsConfig", "generator_id"]

Device = str  # "auto", "cpu", "cuda", "cuda:1", ...
DType = Literal["auto", "float32", "float16", "bfloat16"]


class ModelSpec(Section):
    backend: str
    model: str = Field("embedded", min_length=1, description="hub id, local path, or 'embedded'")
    revision: str | None = None
    device: Device = "auto"
    dtype: DType = "auto"
    options: dict[str, Any] = Field(default_factory=dict)


class LLMSpec(ModelSpec):
    backend: str = "transformers"


class CLIPSpec(ModelSpec):
    backend: str = "open_clip"


class GeneratorSpec(ModelSpec):
    backend: str = "diffusers"


def generator_id(spec: GeneratorSpec) -> str:
    """The generator's part of every image id: ``"{backend}:{model}@{revision or 'main'}"``.

    The plan names its images with it and the generator stamps it on what it makes, so both read it from here.
    """
    return f"{spec.backend}:{spec.model}@{spec.revision or 'main'}"


class CaptionerSpec(ModelSpec):
    """An image-to-text model (BLIP, GIT, ...) or a vision-language model behind an OpenAI-compatible server."""

    backend: str = "transformers"


class ModelsConfig(Section):
    llm: LLMSpec = Field(default_factory=LLMSpec)
    clip: CLIPSpec = Field(default_factory=CLIPSpec)
    generator: GeneratorSpec = Field(default_factory=GeneratorSpec)
    captioner: CaptionerSpec = Field(default_factory=CaptionerSpec, description="captions of real / target images")
