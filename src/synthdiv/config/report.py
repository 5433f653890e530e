"""The ``report`` section: the HTML report of a run."""

from __future__ import annotations

from pydantic import Field

from synthdiv.config._base import PathName, Section

__all__ = ["ReportConfig"]


class ReportConfig(Section):
    samples_per_class: int = Field(8, ge=0, description="images per class in the sample grids (0 = no grids)")
    grid_classes: int = Field(
        12, ge=0, description="classes with sample grids: those that gained and lost most, then a seeded sample"
    )
    thumb_size: int = Field(128, ge=32, le=512, description="pixels of the longer side of a sample image")
    top_classes: int = Field(
        10, ge=1, description="classes that gained / lost most, and confused pairs (of the 20 evaluate keeps), shown"
    )
    max_rows: int = Field(50, ge=1, description="rows of a per-class table before it is cut (with a note)")
    baseline: PathName | None = Field(
        None, description="the variant deltas are taken against (None: the first variant with synthetic_fraction 0)"
    )
    bootstrap: int = Field(2000, ge=100, description="bootstrap resamples of the test images for each interval")
    ci_level: float = Field(0.95, gt=0, lt=1, description="confidence level of the bootstrap intervals")
