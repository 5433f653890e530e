"""Contextualized diversification (CD): LLM-written scenes for each class, each naming the class by its description.

The paper's first diversification: instead of one stock "a photo of a goldfish", the generator is asked for the
class in many places, backgrounds, lights and company. Each LLM item is cleaned, made to name the class by its
disambiguated description (repaired or rejected, ``prompts.missing_class``), held to ``prompts.max_context_tokens``
CLIP tokens (trimmed or rejected, ``prompts.too_long``), and de-duplicated (:mod:`synthdiv.stages.prompts.gather`).
:func:`collect_contexts_many` gathers every class's contexts at once, their LLM requests sent together.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from synthdiv.config.prompts import PromptsConfig
from synthdiv.lexicon.debris import debris_reason, drop_dangling, words_of
from synthdiv.stages.prompts.gather import Family, Gathered, Processed, gather_many, gather_settings
from synthdiv.stages.prompts.text import (
    count_tokens,
    is_chatter,
    looks_like_text,
    mentions,
    repair_mention,
    strip_article,
    trim_to_tokens,
)

logger = logging.getLogger(__name__)

__all__ = ["CONTEXTS_TEMPLATE", "PLACE_WORDS", "scene_reason", "context_processor", "collect_contexts",
           "collect_contexts_many"]

CONTEXTS_TEMPLATE = "contexts.v1"
# A context says where or when the class is: it has one of these words ("on a table", "under the sea", "at dawn").
# Another bare noun phrase ("true colors", "t-shirt top") would be glued to the description as "a pullover, ...".
_PLACES = """
in on at under near by with beside inside among amid against behind above below beneath next during through across
along around over underneath between from into onto outside atop within throughout toward towards past beyond upon
while when after before indoors outdoors underwater nearby overhead alongside
"""
PLACE_WORDS = frozenset(_PLACES.split())

_EDGE = re.compile(r"^[\s\"'`*_\-:;,.]+|[\s\"'`*_\-:;,]+$")


def scene_reason(text: str) -> str | None:
    """Why ``text`` is not a scene (no word of :data:`PLACE_WORDS`), or None."""
    if any(word in PLACE_WORDS for word in words_of(text)):
        return None
    return 'not a scene (say where or when: "on a wooden table in morning light")'


def context_processor(description: str, cfg: PromptsConfig) -> Callable[[str], Processed]:
    """``process(item) -> (text, fix, reason)`` for one class's contexts (see
    :func:`~synthdiv.stages.prompts.gather.gather_many`).

    Order: clean the edges and a final period; reject chatter, non-words, debris
    (:func:`~synthdiv.lexicon.debris.debris_reason`, the description's words allowed), non-scenes
    (:func:`scene_reason`) and rambling (over
    ``max_context_words``); name the class (repair or reject); fit the token limit (trim, dropping a dangling end
    such as "at", or reject); a trim that cuts the class out rejects the item.
    """

    names = (description, strip_article(description))

    def process(item: str) -> Processed:
        text = _EDGE.sub("", " ".join(item.split())).rstrip(".").strip()
        if not text:
            return None, None, "empty"
        if is_chatter(text):
            return None, None, "not an item (model chatter)"
        if not looks_like_text(text, min_words=2):
            return None, None, "not words"
        reason = debris_reason(text, names) or scene_reason(text)
        if reason:
            return None, None, reason
        if len(text.split()) > cfg.max_context_words:
            return None, None, f"over {cfg.max_context_words} words"
        fix = None
        if not mentions(text, description):
            if cfg.missing_class == "reject":
                return None, None, "does not name the class"
            text, fix = repair_mention(text, description), "repaired"
        if count_tokens(text) > cfg.max_context_tokens:
            if cfg.too_long == "reject":
                return None, None, f"over {cfg.max_context_tokens} CLIP tokens"
            text = drop_dangling(trim_to_tokens(text, cfg.max_context_tokens))
            if not mentions(text, description):
                return None, None, f"the class does not fit in {cfg.max_context_tokens} CLIP tokens"
            fix = fix or "trimmed"
        return text, fix, None

    return process


def collect_contexts(
    llm: Any, description: str, class_index: int, cfg: PromptsConfig, run_seed: int, scorer: Any | None = None
) -> Gathered:
    """Up to ``cfg.contexts_per_class`` distinct contexts for one class (fewer when the LLM runs dry)."""
    return collect_contexts_many(llm, [(description, class_index)], cfg, run_seed, scorer)[0]


def collect_contexts_many(
    llm: Any, classes: Sequence[tuple[str, int]], cfg: PromptsConfig, run_seed: int, scorer: Any | None = None
) -> list[Gathered]:
    """:func:`collect_contexts` for each ``(description, class index)``, the classes' requests sent together."""
    families = [
        Family(CONTEXTS_TEMPLATE, {"description": description}, cfg.contexts_per_class,
               context_processor(description, cfg), ("contexts", run_seed, class_index))
        for description, class_index in classes
    ]
    return gather_many(llm, families, **gather_settings(cfg, scorer), tokens_per_item=24)
