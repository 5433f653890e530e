"""The ``prompts`` and ``plan`` sections: diversified prompts (CD + SD) and per-class image budgets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from synthdiv.config._base import Section

__all__ = ["PromptsConfig", "PlanConfig"]

PromptKind = Literal["base", "context", "style"]


class PromptsConfig(Section):
    contexts_per_class: int = Field(50, ge=0, description="distinct LLM-written scenes per class (CD)")
    styles: int = Field(20, ge=0, description="size of the style vocabulary (SD)")
    proportions: dict[PromptKind, float] = Field(
        default_factory=lambda: {"base": 0.2, "context": 0.5, "style": 0.3},
        description="share of each prompt kind in the plan",
    )
    temperature: float = Field(0.9, ge=0, le=2)
    dedup_threshold: float = Field(0.95, gt=0, le=1, description="CLIP text cosine above which prompts are duplicates")
    max_retries: int = Field(2, ge=0)


class PlanConfig(Section):
    images_per_class: int | None = Field(None, ge=0, description="a fixed number of images per class")
    multiple_of_real: float | None = Field(None, gt=0, le=6, description="images per class = k x real images")
    top_up_to: int | None = Field(None, ge=0, description="long tail: synthetic images up to N minus real count")
    max_images: int | None = Field(None, ge=0, description="global cap on planned images")
    shard_size: int = Field(1000, ge=1, description="images per WebDataset shard")

    @model_validator(mode="after")
    def _one_budget(self) -> PlanConfig:
        given = [k for k in ("images_per_class", "multiple_of_real", "top_up_to") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"set only one of images_per_class, multiple_of_real, top_up_to (got {', '.join(given)})")
        return self
