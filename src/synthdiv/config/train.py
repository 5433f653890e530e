"""The ``train`` and ``evaluate`` sections: the classifier, the real/synthetic mix, and the eval sets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthdiv.config._base import Section

__all__ = ["TrainConfig", "EvaluateConfig"]


class TrainConfig(Section):
    model: str = Field("resnet18", description="any timm model name")
    img_size: int = Field(224, ge=8)
    epochs: int = Field(1, ge=0)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    synthetic_fraction: float = Field(0.5, ge=0, le=1, description="share of each batch that is synthetic")
    aux_norm: Literal["none", "aux"] = "aux"


class EvaluateConfig(Section):
    batch_size: int = Field(128, ge=1)
