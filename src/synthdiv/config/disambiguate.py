"""The ``disambiguate`` section: LLM candidates for each class name, chosen by CLIP against real images."""

from __future__ import annotations

from pydantic import Field

from synthdiv.config._base import Section

__all__ = ["DisambiguateConfig"]


class DisambiguateConfig(Section):
    enabled: bool = Field(True, description="off: every description is the class name (ablation)")
    candidates: int = Field(5, ge=1, le=50, description="LLM candidate descriptions per class (K)")
    confusable: int = Field(5, ge=0, description="most confusable other classes named in the LLM prompt")
    images_per_class: int = Field(16, ge=1, description="real images per class embedded by CLIP")
    margin_weight: float = Field(1.0, ge=0, description="weight of the margin against other classes' images")
    temperature: float = Field(0.7, ge=0, le=2)
    max_retries: int = Field(2, ge=0, description="corrective retries for an unparsable LLM answer")
