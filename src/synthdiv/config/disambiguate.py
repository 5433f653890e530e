"""The ``disambiguate`` section: LLM candidates for each class name, chosen by CLIP against real images."""

from __future__ import annotations

from pydantic import Field, field_validator

from synthdiv.config._base import Section

__all__ = ["DisambiguateConfig"]


class DisambiguateConfig(Section):
    enabled: bool = Field(True, description="off: every description is the class name (ablation)")
    candidates: int = Field(
        5, ge=0, le=50, description="LLM candidate descriptions per class (K); 0: no LLM, grounded candidates only"
    )
    confusable: int = Field(5, ge=0, description="most confusable other classes named in the LLM prompt")
    images_per_class: int = Field(16, ge=1, description="real images per class embedded by CLIP")
    margin_weight: float = Field(1.0, ge=0, description="weight of the margin against other classes' images")
    temperature: float = Field(0.7, ge=0, le=2)
    max_retries: int = Field(2, ge=0, description="corrective retries for an unparsable LLM answer")
    max_tokens: int | None = Field(
        None, ge=16, description="token budget of one LLM answer; default 48 per candidate + 32"
    )
    require_name: bool = Field(
        True, description="reject candidates that use no word of the class name (small LLMs drift off topic)"
    )
    max_words: int = Field(12, ge=1, description="longer candidates are rejected: a description is a noun phrase")
    signal_margin: float = Field(
        0.05, ge=0, description="an ambiguous class without real images lets CLIP choose only when a candidate's "
        "margin against the confusable classes reaches this; else a grounded (WordNet) candidate wins"
    )
    clip_template: str = Field(
        "a photo of {}.", description="how a candidate is phrased when CLIP scores it against images; {} is the text"
    )

    @field_validator("clip_template")
    @classmethod
    def _one_slot(cls, value: str) -> str:
        if value.count("{}") != 1:
            raise ValueError("expected a text with exactly one {} where the candidate goes")
        return value
