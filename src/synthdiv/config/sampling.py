"""The ``generate.sampling`` settings: diversity at sampling time.

A guidance scale per image, fixed, drawn from a set, or drawn uniformly from a range ("Diversity is Definitely
Needed" draws one per image; Fan et al., CVPR 2024, find a scale near 2 better than 7.5 for training classifiers),
and the part of the sampler's schedule over which classifier-free guidance is applied (the guidance interval of
Kynkäänniemi et al., NeurIPS 2024: outside it the denoiser runs on the conditional half only). ``diverse: true`` takes
the model family's range and interval (``models.generators.diffusers.DIVERSE_SAMPLING``) for whatever is not set.
Every draw comes from the image's own planned seed, so a resumed or re-run image gets the same value.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from synthdiv.config._base import Section

__all__ = ["SamplingConfig"]


class SamplingConfig(Section):
    guidance: float | None = Field(None, ge=0, description="one guidance scale for every image (None: the model's)")
    guidance_choices: list[float] | None = Field(
        None, min_length=1, description="draw each image's guidance scale from these values, uniformly and seeded"
    )
    guidance_range: tuple[float, float] | None = Field(
        None, description="[low, high]: draw each image's guidance scale uniformly from this range, seeded"
    )
    interval: tuple[float, float] | None = Field(
        None, description="[start, end) fractions of the sampler's schedule (0: pure noise) over which CFG is applied "
        "(None: every step)"
    )
    diverse: bool = Field(
        False, description="the model family's guidance range and interval (docs/models.md) where not set here"
    )

    @model_validator(mode="after")
    def _check(self) -> SamplingConfig:
        given = [n for n in ("guidance", "guidance_choices", "guidance_range") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"set only one of guidance, guidance_choices and guidance_range (got {', '.join(given)})")
        if self.guidance_choices is not None and min(self.guidance_choices) < 0:
            raise ValueError("guidance_choices: expected values >= 0")
        if self.guidance_range is not None and not 0 <= self.guidance_range[0] <= self.guidance_range[1]:
            raise ValueError(f"guidance_range: expected [low, high] with 0 <= low <= high, got {self.guidance_range}")
        if self.interval is not None and not 0 <= self.interval[0] < self.interval[1] <= 1:
            raise ValueError(f"interval: expected [start, end] with 0 <= start < end <= 1, got {self.interval}")
        return self

    @property
    def draws_guidance(self) -> bool:
        """Whether the run sets each image's guidance scale itself (fixed, from a set or from a range)."""
        return any(getattr(self, n) is not None for n in ("guidance", "guidance_choices", "guidance_range"))

    @property
    def is_set(self) -> bool:
        """Whether any setting departs from the model's own sampling (only then is anything recorded)."""
        return self != SamplingConfig()
