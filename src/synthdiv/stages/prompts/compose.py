"""Composition: a class's base, context (CD) and style (SD) prompts as rows of ``prompts.parquet``.

* base: each of ``prompts.base_templates`` ("a photo of a {description}");
* context: ``prompts.context_template`` with each context ("a photo of {context}");
* style: ``prompts.style_template`` with each shared and own style ("a {style} of a {description}"), or with
  ``prompts.style_contexts = k`` each style combined with k different contexts (``style_context_template``); a
  built-in style's row has the template id ``styles.builtin.v1`` and no LLM id of its own;
* caption-context: ``prompts.context_template`` with each scene the LLM wrote from the class's real-image captions;
* target-style: ``prompts.style_template`` with each style summarised from the target-domain images' captions.

Every prompt carries its kind's negative prompt, is held to the text encoder's 75 tokens (trimmed at a word; a
prompt that loses the class in the trim is dropped) and gets ``prompt_id`` = hash of (class, kind, text).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from synthdiv.config.prompts import PromptsConfig
from synthdiv.core.ids import prompt_id
from synthdiv.stages.prompts.styles import BUILTIN_STYLES_ID
from synthdiv.stages.prompts.text import MAX_PROMPT_TOKENS, count_tokens, fill, mentions, trim_to_tokens

logger = logging.getLogger(__name__)

__all__ = ["ClassPrompts", "compose_class", "compose_template_id"]


def compose_template_id(kind: str, template: str, llm_template: str | None = None) -> str:
    """``"[llm template +]<kind>:<8 hex of the composition template>"``: names both the LLM and our wording."""
    tid = f"{kind}:{hashlib.sha256(template.encode()).hexdigest()[:8]}"
    return f"{llm_template}+{tid}" if llm_template else tid


@dataclass
class ClassPrompts:
    """What composition needs to know of one class."""

    index: int
    name: str
    description: str
    contexts: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    contexts_llm: str | None = None
    contexts_template: str | None = None
    styles_llm: str | None = None
    styles_template: str | None = None
    builtin_styles: list[str] = field(default_factory=list)  # those of ``styles`` from the built-in vocabulary
    own_styles: list[str] = field(default_factory=list)
    own_styles_llm: str | None = None
    own_styles_template: str | None = None
    caption_contexts: list[str] = field(default_factory=list)
    caption_contexts_llm: str | None = None
    caption_contexts_template: str | None = None
    target_styles: list[str] = field(default_factory=list)
    target_styles_llm: str | None = None
    target_styles_template: str | None = None
    negative_names: list[str] = field(default_factory=list)  # confusable classes added to every negative prompt


# The grounded kinds take the negative prompt of the kind they extend, unless prompts.negative names them.
_NEGATIVE_OF = {"caption-context": "context", "target-style": "style"}


def _pairs(n_styles: int, n_contexts: int, per_style: int) -> list[tuple[int, int | None]]:
    """(style, context) index pairs: each style with ``per_style`` different contexts, spread over all of them."""
    if per_style == 0 or n_contexts == 0:
        return [(s, None) for s in range(n_styles)]
    k = min(per_style, n_contexts)
    return [(s, (s * k + t) % n_contexts) for s in range(n_styles) for t in range(k)]


def compose_class(cp: ClassPrompts, cfg: PromptsConfig, dropped: Counter[str] | None = None) -> list[dict[str, Any]]:
    """Rows (dicts in :data:`~synthdiv.core.schemas.PROMPTS_SCHEMA` order) of one class, kinds in base/context/style
    order.

    Kinds whose proportion is 0 are left out. ``dropped`` counts prompts removed ("duplicate", "class cut by the
    token limit") and trims ("trimmed").
    """
    dropped = dropped if dropped is not None else Counter()
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    want = {k: cfg.proportions.get(k, 0.0) > 0 for k in ("base", "context", "style", "caption-context", "target-style")}

    def add(kind: str, template: str, tid: str, llm_id: str | None, context: str | None, style: str | None) -> None:
        values = {"description": cp.description, "context": context or "", "style": style or ""}
        text = fill(template, values)
        if count_tokens(text) > MAX_PROMPT_TOKENS:
            text = trim_to_tokens(text, MAX_PROMPT_TOKENS)
            if not mentions(text, cp.description) and not (context and mentions(text, context)):
                dropped["class cut by the token limit"] += 1
                return
            dropped["trimmed"] += 1
        if (kind, text) in seen:
            dropped["duplicate"] += 1
            return
        seen.add((kind, text))
        negative = ", ".join(x for x in (cfg.negative.get(kind, cfg.negative.get(_NEGATIVE_OF.get(kind, kind), "")),
                                         *cp.negative_names) if x)
        rows.append({
            "prompt_id": prompt_id(cp.index, kind, text), "class": cp.index, "class_name": cp.name, "kind": kind,
            "text": text, "negative": negative,
            "context": context, "style": style,
            "template_id": tid, "llm_id": llm_id,
        })

    if want["base"]:
        for template in cfg.base_templates:
            add("base", template, compose_template_id("base", template), None, None, None)
    if want["context"]:
        tid = compose_template_id("context", cfg.context_template, cp.contexts_template)
        for context in cp.contexts:
            add("context", cfg.context_template, tid, cp.contexts_llm, context, None)
    if want["style"]:
        with_ctx = cfg.style_contexts > 0 and bool(cp.contexts)
        template = cfg.style_context_template if with_ctx else cfg.style_template
        own = [s for s in cp.own_styles if s not in cp.styles]
        styles = [*cp.styles, *own]
        builtin = set(cp.builtin_styles)  # built-in styles: no LLM, the built-in vocabulary's id
        origin = [(None, BUILTIN_STYLES_ID) if s in builtin else (cp.styles_llm, cp.styles_template) for s in cp.styles]
        origin += [(cp.own_styles_llm, cp.own_styles_template)] * len(own)
        for s, c in _pairs(len(styles), len(cp.contexts), cfg.style_contexts):
            llm, llm_template = origin[s]
            templates = "+".join(t for t in (llm_template, cp.contexts_template if with_ctx else None) if t)
            llm_id = llm
            if with_ctx and cp.contexts_llm != llm:
                llm_id = "+".join(x for x in (llm, cp.contexts_llm) if x) or None
            tid = compose_template_id("style", template, templates or None)
            add("style", template, tid, llm_id, cp.contexts[c] if c is not None else None, styles[s])
    if want["caption-context"]:
        tid = compose_template_id("caption-context", cfg.context_template, cp.caption_contexts_template)
        for context in cp.caption_contexts:
            add("caption-context", cfg.context_template, tid, cp.caption_contexts_llm, context, None)
    if want["target-style"]:
        tid = compose_template_id("target-style", cfg.style_template, cp.target_styles_template)
        for style in cp.target_styles:
            add("target-style", cfg.style_template, tid, cp.target_styles_llm, None, style)
    return rows
