"""The ``report`` section: the HTML report of a run."""

from __future__ import annotations

from pydantic import Field

from synthdiv.config._base import Section

__all__ = ["ReportConfig"]


class ReportConfig(Section):
    samples_per_class: int = Field(8, ge=0, description="images per class in the contact sheet")
