"""The ``generate`` and ``score`` sections: how images are made, stored and scored."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthdiv.config._base import Section

__all__ = ["GenerateConfig", "ScoreConfig"]


class GenerateConfig(Section):
    runner: Literal["local", "torchrun", "ray"] = "local"
    batch_size: int = Field(8, ge=1)
    image_format: Literal["jpg", "webp"] = "jpg"
    quality: int = Field(90, ge=1, le=100)
    max_retries: int = Field(2, ge=0, description="regenerations of a NaN/black/constant image with a derived seed")
    writer_threads: int = Field(2, ge=1)


class ScoreConfig(Section):
    enabled: bool = True
    batch_size: int = Field(64, ge=1)
    min_similarity: float | None = Field(None, description="filter: keep images whose CLIP similarity is at least this")
    keep_quantile: float | None = Field(None, gt=0, le=1, description="filter: keep the top fraction per class")
