"""The ``classes`` section: where the class list (and the real images, if any) come from."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from synthdiv.config._base import ConfigPath, Section, resolve_path

__all__ = ["ClassesConfig", "IMAGENET_SOURCES"]

IMAGENET_SOURCES = ("imagenet-1k", "imagenet-22k")


class ClassesConfig(Section):
    source: str | Path = Field(
        "imagenet-1k", description="imagenet-1k, imagenet-22k, a .txt/.csv class file, or an ImageFolder directory"
    )
    real_root: ConfigPath | None = Field(
        None, description="ImageFolder of real images (class folders named by wnid or name); defaults to source"
    )
    subset: list[str] | None = Field(None, description="keep only these classes (wnids or names), in this order")
    max_classes: int | None = Field(None, ge=1, description="keep the first N classes")
    image_extensions: list[str] = Field(default_factory=lambda: [".jpg", ".jpeg", ".png", ".webp", ".bmp"])

    @field_validator("source", mode="after")
    @classmethod
    def _source(cls, value: str | Path, info: ValidationInfo) -> str | Path:
        if isinstance(value, str) and value in IMAGENET_SOURCES:
            return value
        text = str(value)
        if re.fullmatch(r"imagenet[-_ ]?\w+", text, flags=re.IGNORECASE) and not re.search(r"[./\\]", text):
            raise ValueError(f"unknown ImageNet source {text!r}; expected one of {', '.join(IMAGENET_SOURCES)}")
        return resolve_path(text, info)

    @field_validator("subset")
    @classmethod
    def _subset(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("expected at least one class (or no subset key for every class)")
        for i, item in enumerate(value):
            if not item.strip():
                raise ValueError(f"entry {i} is empty; expected a class name or wnid")
        return value
