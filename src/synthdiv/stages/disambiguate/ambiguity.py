"""Which class names are ambiguous, and why: the classes whose bare name may never be a prompt's subject.

Three reasons, each recorded with the class (a class may have several):

* ``collision``: its name has the same tokens as another class's name under the CLIP tokenizer ("Cardigan" and
  "cardigan": CLIP lower-cases, so a text-to-image model cannot tell the corgi from the sweater);
* ``number``: its name differs from another class's name only by number ("mouse" and "mice");
* ``polysemy``: WordNet knows two or more noun senses of the name ("crane": a bird, a machine, a poet...).

For a class with a WordNet id, its own sense is that synset; the name's other senses are what it must not be
confused with. Without WordNet only the first two reasons are checked, and the stage says so once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthdiv.lexicon.wordnet import VISUAL_LEXFILES, base_form, lookup, noun_senses, wordnet_dir
from synthdiv.stages.disambiguate.confusable import normalise_name

logger = logging.getLogger(__name__)

__all__ = ["Sense", "Ambiguity", "detect_ambiguity", "sense_of", "number_key", "token_ids_of", "MAX_SENSES"]

# Other senses listed per class (in the LLM prompt and the record); "plate" has 15, few of them matter.
MAX_SENSES = 6


@dataclass(frozen=True)
class Sense:
    """One WordNet meaning of a word."""

    wnid: str
    lemmas: tuple[str, ...]
    gloss: str
    hypernym: str | None
    visual: bool  # an animal, artifact, food, object, person or plant: something a photo can show

    def as_dict(self) -> dict[str, Any]:
        return {"wnid": self.wnid, "lemmas": list(self.lemmas), "hypernym": self.hypernym, "gloss": self.gloss}


@dataclass
class Ambiguity:
    """Why a class's name is ambiguous (nothing, when it is not)."""

    kinds: list[str] = field(default_factory=list)  # "collision" | "number" | "polysemy"
    reasons: list[str] = field(default_factory=list)  # one readable line per kind
    with_classes: list[int] = field(default_factory=list)  # the classes its name collides with
    own_sense: Sense | None = None  # the class's own WordNet sense, where known
    other_senses: list[Sense] = field(default_factory=list)  # the name's other WordNet senses

    @property
    def ambiguous(self) -> bool:
        return bool(self.kinds)

    def as_dict(self) -> dict[str, Any]:
        return {"kinds": self.kinds, "reasons": self.reasons, "with_classes": self.with_classes,
                "other_senses": [s.as_dict() for s in self.other_senses]}


def sense_of(wnid: str) -> Sense | None:
    """The :class:`Sense` of a WordNet id (lemmas, gloss, first hypernym lemma), or None."""
    synset = lookup(wnid)
    if synset is None:
        return None
    parent = lookup(synset.hypernyms[0]) if synset.hypernyms else None
    return Sense(synset.wnid, synset.lemmas, synset.gloss, parent.lemmas[0] if parent else None,
                 synset.lexfile in VISUAL_LEXFILES)


def token_ids_of(scorer: Any) -> Callable[[list[str]], list[tuple[int, ...]]]:
    """The scorer's own tokenizer (``token_ids``), else CLIP's BPE tokenizer as open_clip ships it."""
    own = getattr(scorer, "token_ids", None)
    if callable(own):
        return lambda texts: own(list(texts)) if texts else []
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer()
    return lambda texts: [tuple(tokenizer.encode(t)) for t in texts]


def number_key(name: str) -> tuple[str, ...]:
    """The name's words in their singular forms: two names with the same key differ at most by number."""
    return tuple(base_form(w) for w in normalise_name(name).split())


def _groups(keys: Sequence[Any]) -> list[list[int]]:
    by_key: dict[Any, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        by_key[key].append(i)
    out: list[list[int]] = [[] for _ in keys]
    for members in by_key.values():
        if len(members) > 1:
            for i in members:
                out[i] = [j for j in members if j != i]
    return out


def _describe(rows: Sequence[dict[str, Any]], others: list[int]) -> str:
    shown = ", ".join(f"{j} ({rows[j]['name']})" for j in others[:3])
    return shown + (f" and {len(others) - 3} more" if len(others) > 3 else "")


def detect_ambiguity(
    rows: Sequence[dict[str, Any]], token_ids: Callable[[list[str]], list[tuple[int, ...]]]
) -> list[Ambiguity]:
    """The :class:`Ambiguity` of every class of ``rows`` (``classes.jsonl`` rows).

    Args:
        rows: The classes, in index order (``name`` and, where known, ``wnid``).
        token_ids: The CLIP tokenizer of the run: texts -> token ids (without padding).
    """
    names = [row["name"] for row in rows]
    tokens = token_ids(names)
    collide = _groups(tokens)
    number = _groups([number_key(n) for n in names])
    have_wordnet = wordnet_dir() is not None
    if not have_wordnet:
        logger.warning("WordNet is not installed: names are checked for collisions only, not for several senses "
                       "(apt-get install wordnet-base)")
    out = []
    for i, row in enumerate(rows):
        amb = Ambiguity()
        if collide[i]:
            amb.kinds.append("collision")
            amb.reasons.append(f"same CLIP tokens as class {_describe(rows, collide[i])}")
            amb.with_classes.extend(collide[i])
        plural = [j for j in number[i] if j not in collide[i]]
        if plural:
            amb.kinds.append("number")
            amb.reasons.append(f"differs only by number from class {_describe(rows, plural)}")
            amb.with_classes.extend(plural)
        if have_wordnet:
            _add_senses(amb, row)
        out.append(amb)
    return out


def _add_senses(amb: Ambiguity, row: dict[str, Any]) -> None:
    wnid = row.get("wnid")
    senses = noun_senses(row["name"])
    amb.own_sense = sense_of(wnid) if wnid else None
    others = [s for s in (sense_of(w) for w in senses if w != wnid) if s is not None]
    # visual senses first (a photo of the poet Stephen Crane is not what a classifier confuses), WordNet order kept
    others.sort(key=lambda s: not s.visual)
    amb.other_senses = others[:MAX_SENSES]
    if len(senses) >= 2:
        amb.kinds.append("polysemy")
        amb.reasons.append(f"{len(senses)} noun senses in WordNet")
