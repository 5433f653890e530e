"""Stylized diversification (SD): a vocabulary of visual styles and renditions, and ``styles.json``.

The paper's second diversification: the same class as a pencil sketch, an origami figure, an embroidery, a video
game render... for robustness out of the photo domain (ImageNet-Sketch, ImageNet-R). The vocabulary is shared by
all classes (optionally with a few per-class styles) and kept as its own artifact, ``styles.json``, so another
run can reuse it (``prompts.styles_file``) without asking the LLM again.

``styles.json``: ``{"version": 1, "styles": [...], "llm_id", "template_id", "requested", "per_class":
{class name: {"styles": [...], "llm_id", "template_id"}}}``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from synthdiv.config.prompts import PromptsConfig
from synthdiv.errors import InputError
from synthdiv.prompts.gather import Family, Gathered, Processed, gather_many, gather_settings
from synthdiv.prompts.text import count_tokens, is_chatter, looks_like_text, strip_article

logger = logging.getLogger(__name__)

__all__ = [
    "STYLES_TEMPLATE",
    "CLASS_STYLES_TEMPLATE",
    "MAX_STYLE_WORDS",
    "MAX_STYLE_TOKENS",
    "style_processor",
    "collect_styles",
    "collect_class_styles_many",
    "load_styles",
    "styles_document",
]

STYLES_TEMPLATE = "styles.v2"
CLASS_STYLES_TEMPLATE = "styles.class.v1"
MAX_STYLE_WORDS = 6
MAX_STYLE_TOKENS = 16
STYLES_FORMAT = 1

_QUOTED_HEAD = re.compile(r'^\s*["\u201c]([^"\u201d]{2,60})["\u201d]')
_GLOSS = re.compile(r"\s[-\u2013\u2014:]\s|\s\(|:\s")
_EDGE = re.compile(r"^[\s\"'`*_\-:;,.]+|[\s\"'`*_\-:;,.!]+$")


def style_processor() -> Callable[[str], Processed]:
    """``process(item) -> (text, fix, reason)`` for style names: a short noun phrase without a leading article (a
    gloss after a dash, colon or parenthesis is cut off)."""

    def process(item: str) -> Processed:
        quoted = _QUOTED_HEAD.match(item)  # '"stained glass" - coloured glass in lead' -> 'stained glass'
        text = quoted.group(1) if quoted else _GLOSS.split(item, maxsplit=1)[0]
        text = strip_article(_EDGE.sub("", " ".join(text.split())))
        if not text:
            return None, None, "empty"
        if is_chatter(text):
            return None, None, "not an item (model chatter)"
        if not looks_like_text(text, min_words=1):
            return None, None, "not words"
        if len(text.split()) > MAX_STYLE_WORDS or count_tokens(text) > MAX_STYLE_TOKENS:
            return None, None, f"longer than {MAX_STYLE_WORDS} words"
        return (text.lower() if text.istitle() else text[0].lower() + text[1:]), None, None

    return process


def collect_styles(llm: Any, wanted: int, cfg: PromptsConfig, run_seed: int, scorer: Any | None = None) -> Gathered:
    """The shared style vocabulary."""
    family = Family(STYLES_TEMPLATE, {}, wanted, style_processor(), ("styles", run_seed, "all"))
    return gather_many(llm, [family], **gather_settings(cfg, scorer), tokens_per_item=10)[0]


def collect_class_styles_many(
    llm: Any, wanted: int, classes: Sequence[tuple[str, int]], cfg: PromptsConfig, run_seed: int,
    scorer: Any | None = None,
) -> list[Gathered]:
    """The own styles of each ``(description, class index)``, the classes' requests sent together."""
    families = [
        Family(CLASS_STYLES_TEMPLATE, {"description": description}, wanted, style_processor(),
               ("styles", run_seed, class_index))
        for description, class_index in classes
    ]
    return gather_many(llm, families, **gather_settings(cfg, scorer), tokens_per_item=10)


def _string_list(value: Any, path: Path, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
        raise InputError(f"{path}: {field}: expected a list of non-empty strings")
    return [s.strip() for s in value]


def load_styles(path: Path) -> dict[str, Any]:
    """Read and check a ``styles.json`` written by an earlier run (see the module docstring for the format)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: styles file not found (prompts.styles_file)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON styles file ({exc})") from None
    if not isinstance(doc, dict) or "styles" not in doc:
        raise InputError(f"{path}: expected an object with a 'styles' list")
    doc["styles"] = _string_list(doc["styles"], path, "styles")
    per_class = doc.get("per_class") or {}
    if not isinstance(per_class, dict):
        raise InputError(f"{path}: per_class: expected an object of class name -> styles")
    for name, entry in per_class.items():
        if not isinstance(entry, dict):
            raise InputError(f"{path}: per_class.{name}: expected an object with a 'styles' list")
        entry["styles"] = _string_list(entry.get("styles"), path, f"per_class.{name}.styles")
    doc["per_class"] = per_class
    return doc


def styles_document(
    styles: list[str], llm_id: str | None, template_id: str | None, requested: int, per_class: dict[str, Any]
) -> dict[str, Any]:
    """The ``styles.json`` object."""
    return {
        "version": STYLES_FORMAT,
        "styles": list(styles),
        "llm_id": llm_id,
        "template_id": template_id,
        "requested": requested,
        "per_class": per_class,
    }
