"""The rule that picks a class's description from its scored candidates.

* An unambiguous class keeps the long-standing choice: every candidate, its bare name included, ranked by CLIP.
* An ambiguous class (:mod:`synthdiv.stages.disambiguate.ambiguity`) never ends with its bare name, nor with a candidate
  that failed a check (:mod:`synthdiv.stages.disambiguate.validate`). CLIP chooses among the valid candidates where it
  has signal: real images of the class, or a text margin against the confusable classes of at least ``signal_margin``.
  Where it has none, a grounded candidate (:mod:`synthdiv.stages.disambiguate.grounded`, in its fixed order) wins over
  free LLM text, so the outcome is deterministic and does not hang on a random or weak CLIP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from synthdiv.stages.disambiguate.grounded import SOURCE_ORDER

logger = logging.getLogger(__name__)

__all__ = ["Choice", "choose_order"]


@dataclass
class Choice:
    """A class's candidate texts in the order it will take them, and why the first is first."""

    texts: list[str]
    reason: str  # "clip" | "clip (signal)" | "grounded (lemma)" | ... | "llm (no grounded candidate)" | "bare (...)"
    signal: bool


def _by_score(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: (r["score"] is None, -(r["score"] or 0.0), r["rank"]))


def choose_order(
    records: list[dict[str, Any]], ambiguous: bool, basis: str, signal_margin: float, grounded_order: list[str],
    trust_images: bool = True,
) -> Choice:
    """Order the candidate ``records`` of one class (each with ``text``, ``source``, ``score``, ``margin``,
    ``rank`` and ``rejected``) by the rule of the module docstring; ``grounded_order`` is the grounded candidates'
    texts, best first. ``trust_images`` False: the class's real images are no signal (its sense is undecided, and
    CLIP's preference among its senses did not stand out from unrelated inputs)."""
    if not ambiguous:
        return Choice([r["text"] for r in _by_score(records)], "clip", basis != "none")
    valid = [r for r in records if r["source"] != "name" and r.get("rejected") is None]
    if not valid:
        return Choice([r["text"] for r in _by_score(records)], "bare (no valid candidate)", False)
    margins = [r["margin"] for r in valid if r.get("margin") is not None]
    signal = (basis == "images" and trust_images) or (bool(margins) and max(margins) >= signal_margin)
    if signal:
        return Choice([r["text"] for r in _by_score(valid)], "clip (signal)", True)
    position = {text: k for k, text in enumerate(grounded_order)}
    grounded = sorted((r for r in valid if r["source"] in SOURCE_ORDER),
                      key=lambda r: (SOURCE_ORDER.index(r["source"]), position.get(r["text"], len(position))))
    free = _by_score([r for r in valid if r["source"] not in SOURCE_ORDER])
    ordered = grounded + free
    reason = f"grounded ({grounded[0]['source']})" if grounded else "llm (no grounded candidate)"
    return Choice([r["text"] for r in ordered], reason, False)
