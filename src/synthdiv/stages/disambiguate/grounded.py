"""Grounded candidates for an ambiguous class: descriptions built from WordNet and the definition, not free text.

In order of preference (the order the rule falls back on when CLIP has no signal):

* ``lemma``: another lemma of the class's synset that WordNet knows in one sense only ("Cardigan Welsh corgi",
  "computer mouse", "army tank", "tank suit");
* ``hypernym``: the name qualified by its hypernym ("crane (wading bird)", "crane (lifting device)");
* ``sense``: for a name without a WordNet id, the name qualified by each sense's hypernym ("kite (plaything)",
  "kite (hawk)"), senses a photo can show first; CLIP picks one against the real images where there are some;
* ``definition``: the name and a short noun phrase from its definition ("crane, large long-necked wading bird").
"""

from __future__ import annotations

import logging
import re
from typing import Any

from synthdiv.lexicon.wordnet import noun_senses
from synthdiv.stages.disambiguate.ambiguity import Ambiguity, number_key

logger = logging.getLogger(__name__)

__all__ = ["grounded_candidates", "SOURCE_ORDER", "definition_phrase"]

SOURCE_ORDER = ("lemma", "hypernym", "sense", "definition")
_GIST_WORDS = 8
_SENSE_CANDIDATES = 4
# Words a definition phrase may not end on: the cut would leave it dangling ("bird of", "fastened up the").
_DANGLING = frozenset({"a", "an", "the", "of", "and", "or", "in", "on", "for", "with", "to", "that", "which", "by",
                       "from", "at", "as", "is", "are", "having", "used"})


def definition_phrase(definition: str | None) -> str | None:
    """A short noun phrase from a definition: its first clause, at most eight words, not ending on a function word."""
    if not definition or not definition.strip():
        return None
    clause = re.split(r"[;:(]", definition, maxsplit=1)[0].strip().rstrip(".,")
    words = clause.split()[:_GIST_WORDS]
    while words and words[-1].casefold().strip(",") in _DANGLING:
        words.pop()
    return " ".join(words).rstrip(",") or None


def _qualified(name: str, qualifier: str | None) -> str | None:
    if not qualifier or number_key(qualifier) == number_key(name):
        return None
    return f"{name} ({qualifier})"


def grounded_candidates(row: dict[str, Any], amb: Ambiguity, names: set[tuple[str, ...]]) -> list[tuple[str, str]]:
    """``(text, source)`` grounded candidates of an ambiguous class, best first (see the module docstring).

    Args:
        row: The class (``name``, ``wnid``, ``definition``, ``lemmas``, ``hypernym``).
        amb: Its ambiguity.
        names: :func:`number_key` of every class's name (this one's too): a lemma that is a class's name is no help.
    """
    name = row["name"]
    out: list[tuple[str, str]] = []
    lemmas = [x for x in (row.get("lemmas") or []) if number_key(x) not in names]
    lemmas = [x for x in lemmas if len(noun_senses(x)) <= 1]  # a lemma with several senses settles nothing
    out.extend((x, "lemma") for x in lemmas)
    hypernym = row.get("hypernym") or (amb.own_sense.hypernym if amb.own_sense else None)
    qualified = _qualified(name, hypernym)
    if qualified:
        out.append((qualified, "hypernym"))
    if not row.get("wnid") and amb.own_sense is None:
        senses = [s for s in amb.other_senses if s.visual] or amb.other_senses
        for sense in senses[:_SENSE_CANDIDATES]:
            text = _qualified(name, sense.hypernym)
            if text:
                out.append((text, "sense"))
    gist = definition_phrase(row.get("definition"))
    if gist and number_key(gist)[: len(number_key(name))] != number_key(name):
        out.append((f"{name}, {gist}", "definition"))
    seen: set[tuple[str, ...]] = set()
    unique = []
    for text, source in out:
        if number_key(text) not in seen:
            seen.add(number_key(text))
            unique.append((text, source))
    return unique
