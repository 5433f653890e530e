"""The ``prompts`` and ``plan`` sections: diversified prompts (CD + SD) and per-class image budgets."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from synthdiv.config._base import ConfigPath, Section

__all__ = ["PromptsConfig", "PlanConfig", "Img2ImgConfig", "DEFAULT_IMAGES_PER_CLASS"]

PromptKind = Literal["base", "context", "style", "caption-context", "target-style"]

DEFAULT_IMAGES_PER_CLASS = 100

_PLACEHOLDERS = {"base": ("{description}",), "context": ("{context}",), "style": ("{style}", "{description}")}


class PromptsConfig(Section):
    # options added after runs were made: they enter the fingerprint only when set (synthdiv.core.status)
    fingerprint_optional: ClassVar[tuple[str, ...]] = ("negative_confusable",)

    contexts_per_class: int = Field(50, ge=0, description="distinct LLM-written scenes per class (CD)")
    styles: int = Field(20, ge=0, description="size of the style vocabulary (SD)")
    styles_per_class: int = Field(0, ge=0, description="extra LLM styles written for each class (0: shared only)")
    styles_file: ConfigPath | None = Field(
        None, description="reuse the style vocabulary of an earlier run's styles.json instead of asking the LLM"
    )
    style_contexts: int = Field(
        0, ge=0, description="contexts combined with each style (0: 'a {style} of a {description}' only)"
    )
    proportions: dict[PromptKind, float] = Field(
        default_factory=lambda: {"base": 0.2, "context": 0.5, "style": 0.3},
        description="share of each prompt kind in the plan",
    )
    base_templates: list[str] = Field(
        default_factory=lambda: ["a photo of a {description}"], min_length=1,
        description="base prompts; each must contain {description}",
    )
    context_template: str = Field("a photo of {context}", description="a CD prompt; must contain {context}")
    style_template: str = Field("a {style} of a {description}", description="an SD prompt; {style}, {description}")
    style_context_template: str = Field(
        "a {style} of {context}", description="an SD prompt with a context; must contain {style} and {context}"
    )
    negative: dict[PromptKind, str] = Field(
        default_factory=lambda: {
            "base": "text, watermark, blurry, low quality",
            "context": "text, watermark, blurry, low quality",
            "style": "text, watermark, low quality",
        },
        description="negative prompt of each kind",
    )
    negative_confusable: int = Field(
        0, ge=0, description="add the names of this many of a class's most confusable classes (the disambiguate "
        "stage's list) to its negative prompts; a name sharing a word with the class is skipped (0: none)"
    )
    temperature: float = Field(0.9, ge=0, le=2)
    batch_size: int = Field(10, ge=1, le=100, description="items asked of the LLM per request")
    max_requests: int | None = Field(
        None, ge=1, description="LLM calls per class at most, retries included (default: 2x the calls needed, plus 1)"
    )
    dedup_threshold: float = Field(0.95, gt=0, le=1, description="CLIP text cosine above which prompts are duplicates")
    clip_dedup: bool = Field(True, description="remove near-duplicates by CLIP text embedding (after text dedup)")
    max_context_tokens: int = Field(
        60, ge=4, le=75, description="CLIP BPE tokens a context may have (the whole prompt is held to 77)"
    )
    max_context_words: int = Field(
        25, ge=2, description="contexts with more words are rejected (rambling, not a scene); trimming is by tokens"
    )
    too_long: Literal["trim", "reject"] = Field("trim", description="what to do with a context over the token limit")
    missing_class: Literal["repair", "reject"] = Field(
        "repair", description="what to do with a context that does not name the class (repair: prefix it)"
    )
    max_retries: int = Field(2, ge=0, description="corrective retries of one LLM call (they count in max_requests)")
    captions_per_class: int = Field(
        16, ge=1, description="real images captioned per class (seeded sample) for the caption-context kind"
    )
    caption_contexts_per_class: int = Field(
        20, ge=0, description="scenes the LLM writes per class from its captions (kind caption-context)"
    )
    target_images: ConfigPath | None = Field(
        None, description="a folder of unlabeled target-domain images (sketches, renditions...) for target-style"
    )
    target_captions: int = Field(32, ge=1, description="target-domain images captioned (seeded sample)")
    target_styles: int = Field(10, ge=0, description="style phrases the LLM summarises from the target captions")

    @field_validator("proportions")
    @classmethod
    def _proportions(cls, value: dict[str, float]) -> dict[str, float]:
        if any(v < 0 for v in value.values()):
            raise ValueError("proportions must be >= 0")
        if sum(value.values()) <= 0:
            raise ValueError("at least one proportion must be > 0")
        return value

    @model_validator(mode="after")
    def _templates(self) -> PromptsConfig:
        checks = [(f"base_templates[{i}]", t, _PLACEHOLDERS["base"]) for i, t in enumerate(self.base_templates)]
        checks += [
            ("context_template", self.context_template, _PLACEHOLDERS["context"]),
            ("style_template", self.style_template, _PLACEHOLDERS["style"]),
            ("style_context_template", self.style_context_template, ("{style}", "{context}")),
        ]
        for name, template, needed in checks:
            missing = [p for p in needed if p not in template]
            if missing:
                raise ValueError(f"{name} must contain {' and '.join(missing)}, got {template!r}")
        return self


class Img2ImgConfig(Section):
    """``plan.img2img``: a share of each class's images start from one of its real images (SDEdit-style)."""

    share: float = Field(
        0.0, ge=0, le=1, description="fraction of each class's planned images made image-to-image from its real "
        "images (0: text-to-image only; classes without real images stay text-to-image)"
    )
    strengths: list[float] = Field(
        default_factory=lambda: [0.6], min_length=1,
        description="img2img strengths (0: the real image, 1: pure noise); several values spread evenly over the rows",
    )

    @field_validator("strengths")
    @classmethod
    def _strengths(cls, value: list[float]) -> list[float]:
        if any(not 0 < v <= 1 for v in value):
            raise ValueError("every strength must be in (0, 1]")
        if len(set(value)) != len(value):
            raise ValueError("strengths must be distinct")
        return value


class PlanConfig(Section):
    images_per_class: int | None = Field(
        None, ge=0, description=f"a fixed number of images per class (the default, {DEFAULT_IMAGES_PER_CLASS})"
    )
    multiple_of_real: float | None = Field(
        None, gt=0, le=6, description="images per class = k x real images (after train's low-data / long-tail protocol)"
    )
    top_up_to: int | None = Field(
        None, ge=0, description="long tail: N minus the real images training sees (after train's protocol)"
    )
    max_images: int | None = Field(None, ge=0, description="global cap on planned images, shared fairly by classes")
    shard_size: int = Field(1000, ge=1, description="images per WebDataset shard")
    img2img: Img2ImgConfig = Field(default_factory=Img2ImgConfig, description="image-to-image from real images")

    @model_validator(mode="after")
    def _one_budget(self) -> PlanConfig:
        given = [k for k in ("images_per_class", "multiple_of_real", "top_up_to") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"set only one of images_per_class, multiple_of_real, top_up_to (got {', '.join(given)})")
        return self
