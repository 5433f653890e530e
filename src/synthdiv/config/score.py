"""Image-quality settings: near-duplicates, image-level metrics and the real-data classifier (all under ``score``),
and the named filters training selects (top-level ``filters``, chosen by ``train.filters``).

A filter is a view over the manifest and the score artifacts: nothing is deleted. Built-in names work without a
definition (:data:`BUILTIN_FILTERS`); a definition under ``filters:`` adds a name or replaces a built-in one.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from synthdiv.config._base import Section

__all__ = [
    "DuplicatesConfig",
    "MetricsConfig",
    "ClassifierConfig",
    "CrossClassFilter",
    "ClassifierFilter",
    "DuplicateFilter",
    "SimilarityFilter",
    "FilterSpec",
    "BUILTIN_FILTERS",
]


class DuplicatesConfig(Section):
    """Near-duplicates in CLIP image space (cosine of L2-normalised embeddings)."""

    enabled: bool = True
    threshold: float = Field(0.95, gt=-1, le=1, description="two synthetic images of a class at least this close are "
                             "duplicates")
    real_threshold: float = Field(0.95, gt=-1, le=1, description="a synthetic image at least this close to a real "
                                  "image of its class is flagged as memorized")
    block_size: int = Field(4096, ge=1, description="rows of the similarity matrix computed at once")
    device: str = Field("auto", description="auto (cuda when available), cpu, cuda, cuda:N")


class MetricsConfig(Section):
    """Image-level diversity and fidelity per class and prompt kind (``quality.json``)."""

    enabled: bool = True
    k: int = Field(3, ge=1, description="k of the k-NN radii of precision / recall (Kynkäänniemi et al., 2019)")
    kid_subset: int = Field(1000, ge=2, description="subset size of the KID estimate")
    kid_subsets: int = Field(10, ge=1, description="number of KID subsets averaged")
    max_images: int | None = Field(5000, ge=2, description="sample at most this many images per group (None: all)")


class ClassifierConfig(Section):
    """A classifier trained on real data only scores every synthetic image (``classifier_scores.parquet``)."""

    model: str | None = Field(None, description="'real' (the run's export/real), an export folder, a timm "
                              "'local-dir:'/'hf-hub:' name, or None (off)")
    mislabeled_p_other: float = Field(0.5, ge=0, le=1, description="mislabeled: another class has at least this "
                                      "probability ...")
    mislabeled_p_own: float = Field(0.1, ge=0, le=1, description="... and the own class at most this")
    easy_p_own: float = Field(0.99, ge=0, le=1, description="too easy: the own class has at least this probability")
    batch_size: int = Field(64, ge=1)
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N")


class CrossClassFilter(Section):
    """Keep an image when CLIP ranks its class among the top ``top_k`` of all classes and/or its softmax probability
    over all classes is at least ``min_prob`` (``"auto"``: 1/C, the CVMI-Lab SyntheticData rule)."""

    kind: Literal["cross_class"] = "cross_class"
    top_k: int | None = Field(None, ge=1)
    min_prob: float | Literal["auto"] | None = Field(None)
    combine: Literal["and", "or"] = "and"

    @model_validator(mode="after")
    def _something(self) -> CrossClassFilter:
        if self.top_k is None and self.min_prob is None:
            raise ValueError("set top_k, min_prob or both")
        if isinstance(self.min_prob, float) and not 0 <= self.min_prob <= 1:
            raise ValueError("min_prob must be in [0, 1] or 'auto'")
        return self


class ClassifierFilter(Section):
    """Drop the images the real-data classifier marks (``classifier_scores.parquet``)."""

    kind: Literal["classifier"] = "classifier"
    drop: list[Literal["mislabeled", "easy"]] = Field(default_factory=lambda: ["mislabeled", "easy"], min_length=1)


class DuplicateFilter(Section):
    """Keep one representative of each near-duplicate group and/or drop images too close to a real image."""

    kind: Literal["duplicates"] = "duplicates"
    within: bool = Field(True, description="keep one image per near-duplicate group of synthetic images")
    real: bool = Field(False, description="drop synthetic images flagged as near copies of real ones")


class SimilarityFilter(Section):
    """Keep images at least ``min_similarity`` similar to their class text, or the top ``keep_quantile`` per class."""

    kind: Literal["similarity"] = "similarity"
    min_similarity: float | None = None
    keep_quantile: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _one(self) -> SimilarityFilter:
        if (self.min_similarity is None) == (self.keep_quantile is None):
            raise ValueError("set exactly one of min_similarity and keep_quantile")
        return self


FilterSpec = Annotated[CrossClassFilter | ClassifierFilter | DuplicateFilter | SimilarityFilter,
                       Field(discriminator="kind")]

BUILTIN_FILTERS: dict[str, CrossClassFilter | ClassifierFilter | DuplicateFilter | SimilarityFilter] = {
    "clip-top1": CrossClassFilter(top_k=1),
    "clip-prob": CrossClassFilter(min_prob="auto"),
    "classifier": ClassifierFilter(),
    "dedup": DuplicateFilter(),
    "memorized": DuplicateFilter(within=False, real=True),
}
