"""Checks on a candidate description: a noun phrase about this class's sense, naming no other class.

A description is put into every prompt of its class ("a photo of a {description} on a beach"), so it must read as a
noun phrase. Rejected, each with its reason:

* a sentence or talk about the task ("The class is ...", "This class contains ...", "A crane is a bird");
* one that names another class of the list as what it is ("Mouse, hand-operated device: cardigan"), after the
  class's own name, lemmas and hypernym are taken out of it ("Cardigan Welsh corgi" does not name the sweater);
* one about another sense of the name: its words overlap the gloss of another WordNet sense more than its own
  (for a class whose own sense is known, i.e. one with a WordNet id).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from synthdiv.stages.disambiguate.ambiguity import Ambiguity, Sense, number_key
from synthdiv.stages.disambiguate.confusable import STOP_WORDS, normalise_name

logger = logging.getLogger(__name__)

__all__ = ["sentence_reason", "ClassNames", "CandidateCheck"]

_PRONOUN_START = re.compile(r"^\W*(?:this|these|those|that|it|its|there|here|they|i|we|you|class|category)\b",
                            re.IGNORECASE)
_META = re.compile(r"\b(?:class|classes|category|categories|description|descriptions)\b", re.IGNORECASE)
_VERB = re.compile(r"\b(?:is|are|was|were|contains?|includes?|refers?|means?|represents?|depicts?|shows?)\b",
                   re.IGNORECASE)
_RELATIVE = re.compile(r"\b(?:that|which|who|whose|where|when|whom)\b", re.IGNORECASE)
_MAX_NGRAM = 6
_EXTRA_STOP = frozenset({"its", "their", "any", "some", "very", "often", "usually", "other", "several", "many",
                         "s", "having", "used", "that", "which", "is", "are", "be", "as", "by", "at", "from"})


def sentence_reason(text: str, own_words: Iterable[str] = ()) -> str | None:
    """Why ``text`` is a sentence or task talk rather than a noun phrase, or None when it is a noun phrase."""
    if _PRONOUN_START.search(text):
        return "a sentence, not a noun phrase"
    own = {w.casefold() for w in own_words}
    meta = [m.group(0) for m in _META.finditer(text) if m.group(0).casefold() not in own]
    if meta:
        return f"talks about the task ({meta[0]!r}), not the thing"
    verb = _VERB.search(text)
    if verb and not _RELATIVE.search(text[: verb.start()]):
        return "a sentence, not a noun phrase"
    return None


def _content(text: str) -> set[str]:
    return {w for w in number_key(text) if w not in STOP_WORDS and w not in _EXTRA_STOP and len(w) > 2}


class ClassNames:
    """Every class name of the list, in singular form, to find the ones a text names (by word n-grams)."""

    def __init__(self, names: Sequence[str]) -> None:
        self._by_key: dict[tuple[str, ...], list[int]] = {}
        self._by_word: dict[str, list[int]] = {}
        self.keys = [number_key(name) for name in names]
        for i, key in enumerate(self.keys):
            if key and any(len(w) > 2 for w in key):  # "a", "x1": too short to spot in a text
                self._by_key.setdefault(key, []).append(i)
            for w in set(key):
                self._by_word.setdefault(w, []).append(i)

    def within(self, words: set[str]) -> set[int]:
        """The classes whose name's words are all in ``words`` ("tiger" within "tiger cat"), through a word index."""
        near = {j for w in words for j in self._by_word.get(w, ())}
        return {j for j in near if set(self.keys[j]) <= words}

    def named(self, text: str, exclude: set[int], own_phrases: Sequence[str]) -> int | None:
        """The first class (not in ``exclude``) whose whole name ``text`` uses, once ``own_phrases`` are removed."""
        words = list(number_key(text))
        for phrase in sorted(own_phrases, key=lambda p: -len(p)):
            words = _remove(words, list(number_key(phrase)))
        for n in range(min(_MAX_NGRAM, len(words)), 0, -1):
            for start in range(len(words) - n + 1):
                for j in self._by_key.get(tuple(words[start : start + n]), ()):
                    if j not in exclude:
                        return j
        return None


def _remove(words: list[str], phrase: list[str]) -> list[str]:
    if not phrase:
        return words
    out, i = [], 0
    while i < len(words):
        if words[i : i + len(phrase)] == phrase:
            out.append("|")  # a break, so the words around the phrase do not join into another name
            i += len(phrase)
        else:
            out.append(words[i])
            i += 1
    return out


@dataclass
class CandidateCheck:
    """The checks of one class's candidates (see the module docstring)."""

    index: int
    names: list[str]  # every class name, in index order
    class_names: ClassNames
    own_phrases: list[str]  # the class's name, lemmas and hypernym
    ambiguity: Ambiguity
    same_name: set[int] = field(default_factory=set)  # classes with this class's name (never "named" by it)
    _inside: set[int] | None = field(default=None, init=False, repr=False)

    def reason(self, text: str) -> str | None:
        """Why ``text`` cannot describe the class, or None."""
        own_words = {w for p in self.own_phrases for w in normalise_name(p).split()}
        why = sentence_reason(text, own_words)
        if why:
            return why
        if self._inside is None:  # the classes whose names lie inside this one's ("tiger" in "tiger cat")
            self._inside = self.class_names.within(set(self.class_names.keys[self.index]))
        other = self.class_names.named(text, {self.index, *self.same_name, *self._inside}, self.own_phrases)
        if other is not None:
            return f"names another class ({self.names[other]})"
        return self._off_sense(text)

    def _off_sense(self, text: str) -> str | None:
        if not self.ambiguity.other_senses or self.ambiguity.own_sense is None:
            return None  # without its own sense (a name with no wnid) any of the senses may be the class's
        name_words = {w for p in self.own_phrases[:1] for w in number_key(p)}
        words = _content(text) - name_words
        if not words:
            return None
        own = self.ambiguity.own_sense
        own_words = _sense_words(own) if own else set()
        own_words |= {w for p in self.own_phrases for w in _content(p)}
        mine = len(words & own_words)
        for sense in self.ambiguity.other_senses:
            theirs = len(words & (_sense_words(sense) - own_words))
            if theirs > mine:
                return f"about another sense ({sense.hypernym or sense.lemmas[0]}: {sense.gloss[:40]})"
        return None


def _sense_words(sense: Sense) -> set[str]:
    return _content(" ".join([sense.gloss, *sense.lemmas, sense.hypernym or ""]))
