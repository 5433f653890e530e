"""The ``models`` section: which LLM, CLIP scorer and text-to-image generator a run uses.

Each entry names a registered ``backend`` and the backend's own ``options``; the options are validated by the
backend's pydantic ``Options`` model when it is created. ``model: embedded`` selects the offline default
(SmolLM2-135M-Instruct, a tiny random CLIP, a tiny random diffusion pipeline; see :mod:`synthdiv.models.embedded`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from synthdiv.config._base import Section

__all__ = ["ModelSpec", "LLMSpec", "CLIPSpec", "GeneratorSpec", "MixtureEntry", "CaptionerSpec", "ModelsConfig",
           "generator_id"]

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


class MixtureEntry(GeneratorSpec):
    """One generator of a mixture and its share of the images."""

    share: float = Field(gt=0, description="its share of the images (shares are normalised to sum to 1)")


class CaptionerSpec(ModelSpec):
    """An image-to-text model (BLIP, GIT, ...) or a vision-language model behind an OpenAI-compatible server."""

    backend: str = "transformers"


class ModelsConfig(Section):
    llm: LLMSpec = Field(default_factory=LLMSpec)
    clip: CLIPSpec = Field(default_factory=CLIPSpec)
    generator: GeneratorSpec = Field(default_factory=GeneratorSpec)
    captioner: CaptionerSpec = Field(default_factory=CaptionerSpec, description="captions of real / target images")
    mixture: list[MixtureEntry] = Field(
        default_factory=list, description="several generators and their shares of the images (empty: models.generator "
        "makes every image); the plan gives each shard one of them")

    @model_validator(mode="after")
    def _distinct_generators(self) -> ModelsConfig:
        seen: set[str] = set()
        for i, entry in enumerate(self.mixture):
            gid = generator_id(entry)
            if gid in seen:
                raise ValueError(f"mixture[{i}]: {gid} is named twice; give each generator one entry")
            seen.add(gid)
        return self

    def generators(self) -> list[tuple[GeneratorSpec, float]]:
        """Each generator that makes images and its share (summing to 1): the mixture, else the one generator."""
        if not self.mixture:
            return [(self.generator, 1.0)]
        total = sum(e.share for e in self.mixture)
        return [(GeneratorSpec(**e.model_dump(exclude={"share"})), e.share / total) for e in self.mixture]

    def mixture_shares(self) -> list[tuple[str, float]] | None:
        """(generator id, share) of each generator of the mixture, as the plan assigns shards; None without one."""
        return [(generator_id(spec), share) for spec, share in self.generators()] if self.mixture else None
