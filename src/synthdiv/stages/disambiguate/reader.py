"""The one reader of ``classes.resolved.jsonl``, the disambiguate stage's artifact: every class with its description.

The same checks as ``classes.jsonl`` (:func:`synthdiv.stages.classes.stage.read_classes`) plus a non-empty
``description``.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from synthdiv.core.schemas import CLASS_FIELDS
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.disambiguate.confusable import mentions_name

logger = logging.getLogger(__name__)

__all__ = ["read_resolved", "confusable_names"]


def read_resolved(path: Path | str) -> list[dict[str, Any]]:
    """The rows of ``classes.resolved.jsonl``, checked; a problem is one InputError naming the file and line."""
    return read_classes(path, (*CLASS_FIELDS, "description"), ("name", "description"), stage="disambiguate")


def confusable_names(row: dict[str, Any], k: int) -> list[str]:
    """The first ``k`` of the class's confusable classes (most confusable first) whose names share no word with its
    own name or description: "tiger cat" is no negative for "tabby cat", whose prompts say "cat"."""
    own = f"{row.get('name', '')} {row.get('description', '')}"
    names = [n for n in row.get("confusable") or [] if not mentions_name(own, n)]
    return names[:k]


def runner_up(row: dict[str, Any]) -> dict[str, Any] | None:
    """The runner-up candidate recorded for the class (else the best-ranked other one), or None."""
    others = [c for c in row.get("candidates", []) if c.get("text") != row.get("description")]
    named = [c for c in others if c.get("text") == row.get("runner_up")]
    if named:
        return named[0]
    return min(others, key=lambda c: c.get("rank", 0)) if others else None


def ambiguity_summary(rows: list[dict[str, Any]]) -> str:
    """One line: ambiguous classes by reason, how they were settled, how many kept their bare name, and which
    evidence settled the senses of polysemous names (the undecided named)."""
    ambiguous = [r for r in rows if r.get("ambiguity")]
    kinds = Counter(k for r in ambiguous for k in r["ambiguity"]["kinds"])
    settled = Counter((r.get("chosen_by") or "").split(";")[0] for r in ambiguous)
    bare = sum(bool(r.get("bare")) for r in rows)
    by_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"
    how = ", ".join(f"{k} {n}" for k, n in sorted(settled.items())) or "-"
    line = f"{len(ambiguous)} of {len(rows)} classes ambiguous ({by_kind}); settled by {how}; {bare} left bare"
    senses = Counter(r["sense"]["evidence"] for r in rows if r.get("sense"))
    if senses:
        undecided = [r["name"] for r in rows if (r.get("sense") or {}).get("evidence") == "undecided"]
        line += "; senses by " + ", ".join(f"{k} {n}" for k, n in sorted(senses.items()))
        line += f" (undecided: {', '.join(undecided)})" if undecided else ""
    return line


def sense_text(row: dict[str, Any]) -> str:
    """What settled the class's sense and how strongly: "list (wordnet) 0.194" (the description shows the sense)."""
    sense = row.get("sense")
    if not sense:
        return "-"
    strength = f" {sense['strength']:.3f}" if sense.get("strength") is not None else ""
    return f"{sense['evidence']}{strength}"
