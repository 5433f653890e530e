"""The ``adapt`` section: the adaptive budget, spent in rounds by ``synthdiv adapt`` (see synthdiv.engine.adapt)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from synthdiv.config._base import PathName, Section

__all__ = ["AdaptConfig"]


class AdaptConfig(Section):
    rounds: int = Field(0, ge=0, description="rounds after the plan stage's own images (0: no adaptive rounds)")
    images_per_round: int = Field(0, ge=0, description="images each round adds, split by class need")
    variant: PathName | None = Field(
        None, description="the variant whose per-class errors drive the rounds (None: the first that uses synthetic "
        "images, else the first)")
    eval_set: PathName = Field("test", description="the evaluate set whose per-class errors drive the rounds")
    alpha: float = Field(1.0, ge=0, description="need grows as error^alpha")
    beta: float = Field(1.0, ge=0, description="need grows as 1 / keep_rate^beta (the variant's train.filters)")
    eps: float = Field(1e-3, ge=0, description="added to every error, so a class with none still gets a share")
    floor: float = Field(0.05, gt=0, le=1, description="keep rates below it count as it")
    min_per_class: int = Field(0, ge=0, description="images every class gets in a round")
    max_per_class: int | None = Field(None, ge=1, description="most images a class gets in a round (None: no bound)")
    pool_factor: float = Field(
        1.0, ge=1, le=100, description="a round generates ceil(factor x) images of a class given x and the train view "
        "keeps the x the round's model finds most informative (1: no pool, every image kept)")
    select: Literal["entropy", "margin", "loss"] = Field(
        "entropy", description="what makes an image informative to the model: the entropy of its prediction, a small "
        "margin between the two most probable classes, or the loss on its own class")
    within_class: Literal["least_used", "yield"] = Field(
        "least_used", description="which prompts of a class a round uses: the least used first, or in proportion to "
        "what each context / style yielded so far (images the variant trains on per image generated)")

    @model_validator(mode="after")
    def _bounds(self) -> AdaptConfig:
        if self.max_per_class is not None and self.max_per_class < self.min_per_class:
            raise ValueError(f"max_per_class ({self.max_per_class}) is below min_per_class ({self.min_per_class})")
        if self.rounds and not self.images_per_round:
            raise ValueError("images_per_round must be above 0 when rounds is above 0")
        return self
