"""WordNet 3.0 nouns, read from the WordNet database files: synsets by ImageNet id, the senses of a word, base forms.

ImageNet ids are ``n`` + the synset's byte offset in ``data.noun``, so a synset lookup is one seek. The senses of a
word come from ``index.noun`` (loaded once, on first use) and base forms ("mice" -> "mouse") from ``noun.exc`` and
WordNet's suffix rules (morphy). :func:`is_english_word` asks all four parts of speech (``index.{noun,verb,adj,adv}``
and their exception lists), for the debris checks of LLM text (:mod:`synthdiv.lexicon.debris`). The database
comes from Debian's ``wordnet-base`` (``/usr/share/wordnet``), or the folder in ``$WNSEARCHDIR``. No WordNet, no
lookups: :func:`lookup` returns ``None``, :func:`noun_senses` nothing, :func:`is_english_word` False, and callers
fall back to timm's ImageNet metadata and to name collisions alone.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = [
    "Synset", "lookup", "wordnet_dir", "WNID_RE", "noun_senses", "base_form", "hypernym_of", "VISUAL_LEXFILES",
    "is_english_word",
]

WNID_RE = re.compile(r"^n\d{8}$")
_CANDIDATES = ("/usr/share/wordnet", "/usr/local/share/wordnet", "/usr/share/wordnet/dict")
# Lexicographer files of things a picture can show: animals, artifacts, body, food, objects, people, plants.
VISUAL_LEXFILES = frozenset({5, 6, 8, 13, 17, 18, 20})
# WordNet's noun suffix rules (morphy), tried in order.
_SUFFIXES = (("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
             ("ies", "y"), ("s", ""))
# morphy's suffix rules of every part of speech (the irregular forms are in <pos>.exc)
_MORPHY = {
    "noun": _SUFFIXES,
    "verb": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")),
    "adj": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "adv": (),
}


@dataclass(frozen=True)
class Synset:
    """A noun synset: its id, lemmas (spaces, not underscores), gloss, lexicographer file and hypernym ids."""

    wnid: str
    lemmas: tuple[str, ...]
    gloss: str
    lexfile: int = 0
    hypernyms: tuple[str, ...] = ()


@functools.cache
def wordnet_dir() -> Path | None:
    """The folder holding ``data.noun``, or None when WordNet is not installed."""
    env = os.environ.get("WNSEARCHDIR")
    for folder in ([env] if env else []) + list(_CANDIDATES):
        if folder and (Path(folder) / "data.noun").is_file():
            return Path(folder)
    return None


@functools.lru_cache(maxsize=65536)
def lookup(wnid: str) -> Synset | None:
    """The noun synset with ImageNet id ``wnid``, or None if WordNet is missing or has no such synset."""
    if not WNID_RE.match(wnid):
        return None
    folder = wordnet_dir()
    if folder is None:
        return None
    offset = int(wnid[1:])
    with open(folder / "data.noun", "rb") as fh:
        fh.seek(offset)
        line = fh.readline().decode("utf-8", errors="replace")
    fields = line.split(" ")
    if not fields or fields[0] != wnid[1:]:
        return None
    n_words = int(fields[3], 16)
    lemmas = tuple(_lemma_text(fields[4 + 2 * i]) for i in range(n_words))
    pos = 4 + 2 * n_words
    n_pointers = int(fields[pos])
    pointers = [fields[pos + 1 + 4 * i : pos + 5 + 4 * i] for i in range(n_pointers)]
    hypernyms = tuple(f"n{p[1]}" for p in pointers if p[0] in ("@", "@i") and p[2] == "n")
    gloss = line.partition(" | ")[2].strip()
    return Synset(wnid=wnid, lemmas=lemmas, gloss=gloss, lexfile=int(fields[1]), hypernyms=hypernyms)


def _lemma_text(raw: str) -> str:
    # data.noun marks adjective positions as "(a)", "(p)"; they are not part of the lemma
    return re.sub(r"\([a-z]+\)$", "", raw).replace("_", " ")


def hypernym_of(wnid: str) -> Synset | None:
    """The first hypernym (or instance hypernym) synset of ``wnid``, or None."""
    synset = lookup(wnid)
    return lookup(synset.hypernyms[0]) if synset and synset.hypernyms else None


@functools.cache
def _index() -> dict[str, tuple[str, ...]]:
    """``index.noun``: lemma (lower case, underscores) -> its synset ids, in WordNet's sense order."""
    folder = wordnet_dir()
    if folder is None or not (folder / "index.noun").is_file():
        return {}
    out: dict[str, tuple[str, ...]] = {}
    with open(folder / "index.noun", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith(" "):  # the licence header
                continue
            fields = line.split()
            n_senses, n_pointers = int(fields[2]), int(fields[3])
            offsets = fields[4 + n_pointers + 2 :]
            out[fields[0]] = tuple(f"n{o}" for o in offsets[:n_senses])
    return out


@functools.cache
def _exceptions() -> dict[str, str]:
    folder = wordnet_dir()
    if folder is None or not (folder / "noun.exc").is_file():
        return {}
    pairs = (line.split() for line in (folder / "noun.exc").read_text(encoding="utf-8").splitlines())
    return {p[0]: p[1] for p in pairs if len(p) >= 2}


def _key(word: str) -> str:
    return "_".join(word.casefold().split())


def base_form(word: str) -> str:
    """The singular of a noun ("mice" -> "mouse", "boxes" -> "box"), by WordNet's exception list and suffix rules.

    Without WordNet, or for a word it does not know, the plain suffix rules still turn a regular plural into its
    singular when the result looks like a word ("boots" -> "boot"); anything else comes back unchanged (lower case).
    """
    key = _key(word)
    index, exceptions = _index(), _exceptions()
    if key in exceptions:
        return exceptions[key].replace("_", " ")
    if key in index and not key.endswith("s"):
        return key.replace("_", " ")
    for suffix, repl in _SUFFIXES:
        stem = key[: -len(suffix)] + repl
        known = stem in index or (not index and suffix == "s" and not key.endswith("ss"))
        if key.endswith(suffix) and len(stem) >= 2 and known:
            return stem.replace("_", " ")
    return key.replace("_", " ")


def noun_senses(word: str) -> tuple[str, ...]:
    """The noun synset ids of ``word`` (or of its base form), in WordNet's order; empty without WordNet."""
    index = _index()
    key = _key(word)
    return index.get(key) or index.get(_key(base_form(word)), ())


@functools.cache
def _lexicon() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Per part of speech: (the lemmas of ``index.<pos>``, the inflected forms listed in ``<pos>.exc``), keys in
    lower case with underscores; empty without WordNet."""
    folder = wordnet_dir()
    if folder is None:
        return {}
    out = {}
    for pos in _MORPHY:
        lemmas: set[str] = set()
        if (folder / f"index.{pos}").is_file():
            with open(folder / f"index.{pos}", encoding="utf-8", errors="replace") as fh:
                lemmas = {line.split(" ", 1)[0] for line in fh if not line.startswith(" ")}
        forms: set[str] = set()
        if (folder / f"{pos}.exc").is_file():
            with open(folder / f"{pos}.exc", encoding="utf-8", errors="replace") as fh:
                forms = {line.split(" ", 1)[0] for line in fh if line.strip()}
        out[pos] = (frozenset(lemmas), frozenset(forms))
    return out


def is_english_word(word: str) -> bool:
    """Whether WordNet knows ``word`` in any part of speech: as a lemma, an irregular form of its exception lists
    ("ran", "geese", "better") or a regular inflection by morphy's suffix rules ("standing", "painted", "taller").

    False without WordNet (callers check :func:`wordnet_dir` to tell "unknown" from "no lexicon").
    """
    key = _key(word)
    if not key:
        return False
    for pos, (lemmas, forms) in _lexicon().items():
        if key in lemmas or key in forms:
            return True
        if any(key.endswith(suffix) and key[: len(key) - len(suffix)] + repl in lemmas
               for suffix, repl in _MORPHY[pos] if len(key) > len(suffix)):
            return True
    return False
