"""The base class of every config section, path fields resolved against the config file's folder, and names that
become a file or folder name (:data:`PathName`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

from synthdiv.utils.names import name_problem, printable

__all__ = ["Section", "ConfigPath", "PathName", "resolve_path", "path_name_problem"]


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


def path_name_problem(value: str, what: str = "name") -> str | None:
    """``"<what> '<value>' <problem>"`` when ``value`` cannot be one file or folder name (the rules of
    :func:`synthdiv.utils.names.name_problem`: no ``/``, ``..`` or control character, at most 200 characters), else
    None."""
    problem = name_problem(value)
    return None if problem is None else f"{what} '{printable(value, limit=60)}' {problem}"


def _path_name(value: str) -> str:
    problem = path_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A name that becomes a file or folder name in the run (a variant, an eval set, a filter): bounded when the config
# loads, so that a run never stops part-way with "File name too long" or writes outside its folder.
PathName = Annotated[str, AfterValidator(_path_name)]
