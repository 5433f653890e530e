"""The ``generate`` and ``score`` sections: how images are made, stored and scored."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from synthdiv.config._base import Section
from synthdiv.config.sampling import SamplingConfig
from synthdiv.config.score import ClassifierConfig, DuplicatesConfig, MetricsConfig

__all__ = ["GenerateConfig", "ScoreConfig"]


class GenerateConfig(Section):
    runner: Literal["local", "torchrun", "ray"] = "local"
    batch_size: int = Field(8, ge=1, description="prompts per pipeline call (batches never cross a shard)")
    image_format: Literal["jpg", "webp"] = "jpg"
    quality: int = Field(90, ge=1, le=100)
    max_side: int | None = Field(None, ge=8, description="downscale stored images so the longer side is at most this")
    max_retries: int = Field(2, ge=0, description="regenerations of a NaN/black/constant image with a derived seed")
    writer_threads: int = Field(2, ge=1, description="threads encoding images, overlapped with the model")
    verify_shards: Literal["size", "members"] = Field(
        "members", description="resume check of a finished shard: tar size only, or size and its member names"
    )
    torch_threads: int | None = Field(
        None, ge=1, description="CPU threads of torch in each generator process; equal counts give byte-equal images"
    )
    ray_actors: int = Field(1, ge=1, description="ray runner: generator actors in the pool")
    ray_gpus_per_actor: float = Field(0.0, ge=0, description="ray runner: GPUs per actor (1 on a GPU cluster)")
    ray_address: str | None = Field(None, description="ray runner: cluster address; None starts a local Ray")
    images_per_second: float | None = Field(
        None, gt=0, description="estimate: throughput per GPU to assume when none has been measured"
    )
    sampling: SamplingConfig = Field(
        default_factory=SamplingConfig,
        description="per-image guidance and the guidance interval (default: the model's one guidance on every step)")

    @property
    def content(self) -> dict[str, Any]:
        """The settings that change what is stored (the generate stage's fingerprint). How the work is run (runner,
        batch size, threads, Ray pool, resume check) can change between a run and its resume."""
        content = {k: getattr(self, k) for k in ("image_format", "quality", "max_side", "max_retries")}
        if self.sampling.is_set:  # only when set: runs made before the option stay done
            content["sampling"] = self.sampling.model_dump(mode="json")
        return content


class ScoreConfig(Section):
    enabled: bool = True
    batch_size: int = Field(64, ge=1)
    template: str = Field("{description}", description="the class text CLIP compares images with")
    min_similarity: float | None = Field(None, description="filter: keep images whose CLIP similarity is at least this")
    keep_quantile: float | None = Field(None, gt=0, le=1, description="filter: keep the top fraction per class")
    logit_scale: float | None = Field(
        None, gt=0, description="scale of the cosine logits of the cross-class softmax (None: the CLIP model's own)"
    )
    temperature: float = Field(1.0, gt=0, description="softmax over classes of logit_scale * cosine / temperature")
    real_per_class: int | None = Field(
        200, ge=0, description="real images per class embedded for the memorization check and fidelity (None: all)"
    )
    duplicates: DuplicatesConfig = Field(default_factory=DuplicatesConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)

    @model_validator(mode="after")
    def _one_filter(self) -> ScoreConfig:
        if self.min_similarity is not None and self.keep_quantile is not None:
            raise ValueError("set only one of min_similarity and keep_quantile")
        if "{description}" not in self.template:
            raise ValueError("template must contain {description}")
        return self
