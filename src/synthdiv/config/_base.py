"""The base class of every config section, and path fields resolved against the config file's folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

__all__ = ["Section", "ConfigPath", "resolve_path"]


class Section(BaseModel):
    """A frozen config section that refuses unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=(), allow_inf_nan=False)


def resolve_path(value: Path | str, info: ValidationInfo | None) -> Path:
    """Resolve a relative path against ``context["base_dir"]`` (the config file's folder), else the cwd; ``..`` parts
    are folded so that paths in logs and reports read plainly (symlinks are left alone)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return Path(os.path.normpath(path))
    base = (info.context or {}).get("base_dir") if info is not None else None
    return Path(os.path.normpath((Path(base) if base else Path.cwd()) / path))


def _resolve(value: Path, info: ValidationInfo) -> Path:
    return resolve_path(value, info)


# A path in a config file: relative paths are relative to the config file, so configs can be moved with their data.
ConfigPath = Annotated[Path, AfterValidator(_resolve)]
