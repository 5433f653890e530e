"""Names that become file or folder names (class names, eval set names), and text safe to show.

A class name picks its real-image folder (``real_root/<name>``) and an eval set name its result file
(``eval/<variant>/<name>.json``). One check (:func:`name_problem`) keeps such names to a single plain path component
of bounded length, and one join (:func:`safe_join`) refuses any path that would leave its root, so a name such as
``../secret`` or ``/etc`` can never read or write outside the folder it was meant for. :func:`printable` escapes
control characters before user text reaches a terminal or a report.

The containment check is lexical: a symlink placed *inside* a root (a class folder linked to another disk, as
dataset mirrors often are) is followed on purpose, since whoever can place it controls the root anyway.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from synthdiv.errors import InputError

__all__ = ["MAX_NAME_CHARS", "text_problem", "name_problem", "check_name", "safe_join", "is_within", "printable"]

MAX_NAME_CHARS = 200
# bidirectional overrides and isolates: they reorder what a terminal shows ("Trojan source")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI


def text_problem(text: str, max_chars: int) -> str | None:
    """What makes ``text`` unfit to show (a control character, more than ``max_chars``), or None when it is fine."""
    if len(text) > max_chars:
        return f"has {len(text)} characters; at most {max_chars}"
    bad = next((ch for ch in text if _unsafe(ch)), None)
    return None if bad is None else f"contains the control character U+{ord(bad):04X}"


def name_problem(name: str, max_chars: int = MAX_NAME_CHARS) -> str | None:
    """What makes ``name`` unusable as one file or folder name, or None when it is fine."""
    if not name:
        return "is empty"
    problem = text_problem(name, max_chars)
    if problem is not None:
        return problem
    for ch in "/\\":
        if ch in name:
            return f"contains {ch!r} (a name is one folder or file name)"
    if name in (".", ".."):
        return f"is {name!r} (a name is one folder or file name)"
    return None


def check_name(name: str, what: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """``name`` when it is usable as a file or folder name; else InputError ``"<what>: name ... <problem>"``."""
    problem = name_problem(name, max_chars)
    if problem is not None:
        raise InputError(f"{what}: name '{printable(name, limit=60)}' {problem}")
    return name


def safe_join(root: Path | str, *names: str, what: str) -> Path:
    """``root / name / ...`` after checking each name with :func:`name_problem` and that the result stays in root.

    Raises:
        InputError: A name that is not one plain path component, or a path that would leave ``root``.
    """
    root = Path(root)
    for name in names:
        problem = name_problem(name, max_chars=255)
        if problem is not None:
            raise InputError(f"{what}: name '{printable(name, limit=60)}' {problem}; it would leave {root}")
    path = root.joinpath(*names)
    if not is_within(path, root):  # belt and braces
        raise InputError(f"{what}: {path} is outside {root}")
    return path


def is_within(path: Path | str, root: Path | str) -> bool:
    """Whether ``path`` is ``root`` or under it, once both are absolute and ``..`` is folded (no symlink is read)."""
    base = os.path.normpath(os.path.abspath(root))
    return os.path.commonpath([base, os.path.normpath(os.path.abspath(path))]) == base


def printable(text: str, limit: int | None = None, keep: str = "") -> str:
    """``text`` with control characters (except those in ``keep``) escaped as ``\\xNN`` / ``\\uNNNN``.

    Args:
        limit: Cut longer text to this many characters and say how many were left out.
        keep: Control characters shown as they are (``"\\n\\t"`` for a multi-line block).
    """
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    if not any(_unsafe(ch) for ch in text):
        return text
    return "".join(ch if ch in keep or not _unsafe(ch) else ascii(ch)[1:-1] for ch in text)
