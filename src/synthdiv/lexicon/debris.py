"""Debris: LLM text that must not reach a prompt, and why.

A small model decoding freely leaves pieces of its answer format and of our instructions in its items, and makes
up words: the quickstart's SmolLM2 gave the description ``herode-1": "Trouser``, the candidates ``name": "coat``
and ``type": "sandal``, the styles "a hard candish of" and "stintyshkovd's", and contexts ending in "(pick one
example)". :func:`debris_reason` says why a text is debris, or None; the disambiguate candidates
(:mod:`synthdiv.stages.disambiguate.propose`), the contexts (:mod:`synthdiv.stages.prompts.contexts`) and the styles
(:mod:`synthdiv.stages.prompts.styles`) are checked with it, and a refused item is asked again with the reason told to
the model (:func:`synthdiv.models.llm.structured.ask_list`).

The rules are data (:data:`RULES`, tried in order, the first that matches gives the reason):

* ``fragment``: a JSON key/value piece (``name": "coat``, ``"type": ``, ``a", "b``);
* ``markup``: a stray quote, brace, bracket, backslash, slash or markdown mark, or unbalanced parentheses;
* ``echo``: words of our instructions and corrections ("(pick one example)", "e.g.", "for instance", "such as",
  "here is", "list of", "noun phrase", "style 2", "first item", "300 characters"...), placeholders ("...",
  "lorem ipsum") and the model's doubts ("not sure");
* ``dangling``: an unfinished ending ("a hard candish of", "a dog with", a trailing comma);
* ``unknown word``: a word no lexicon knows. The lexicon is WordNet in all four parts of speech with morphy's
  inflections (:func:`synthdiv.lexicon.wordnet.is_english_word`), plus :data:`FUNCTION_WORDS` (which WordNet
  leaves out), :data:`EXTRA_WORDS` (common words newer than WordNet 3.0), numbers ("3D", "1920s", "19th") and the
  words of the class's own names. Without WordNet this rule is skipped (the log says so once).

Words of the names given to :func:`debris_reason` (the class name, its description) are taken out before the
rules run, so a class called ``t-shirt_top`` does not make its own contexts debris.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from synthdiv.lexicon.wordnet import is_english_word, wordnet_dir

logger = logging.getLogger(__name__)

__all__ = [
    "Rule", "RULES", "FUNCTION_WORDS", "EXTRA_WORDS", "DANGLING", "debris_reason", "words_of", "drop_dangling",
]

def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words WordNet leaves out (it has nouns, verbs, adjectives and adverbs only): articles, pronouns, prepositions,
# conjunctions, auxiliaries, determiners and the pieces of contractions.
FUNCTION_WORDS = _word_set("""
a an the this that these those some any each every either neither both all no none another other such
i me my mine you your yours he him his she her hers it its we us our ours they them their theirs one ones
who whom whose which what whatever where when why how there here than then as so if nor and or but yet not
of to for from with without within into onto upon about above across after against along amid among around at
before behind below beneath beside besides between beyond by despite down during except inside near off on
out outside over past since through throughout till toward towards under underneath until up via while
am is are was were be been being has have had having do does did will would can could shall should may might
must s t ll ve re d m ca wo
""")

# Common words of image prompts that WordNet 3.0 (2006) predates.
EXTRA_WORDS = _word_set("""
selfie smartphone smartphones hoodie hoodies manga cgi claymation emoji emojis webcam skatepark
lowpoly poly voxel voxels photorealistic hdr dslr gopro iphone ipad bokeh lineart papercraft plushie screenprint
screenshot terracotta wireframe
""")

# Words a noun phrase cannot end on: an item ending on one was cut off ("a hard candish of").
DANGLING = _word_set("""
a an the of to for from with without into onto than as at and or but nor
its their his her my your our this these those every each some such very like whose
is are was were be has have
""")


@dataclass(frozen=True)
class Rule:
    """One debris rule: its name, and ``check(text, known) -> reason | None`` (``known``: extra words to accept)."""

    name: str
    check: Callable[[str, frozenset[str]], str | None]


def _pattern_rule(name: str, pattern: str, reason: str) -> Rule:
    """A rule refusing text that ``pattern`` matches; ``reason`` may use ``{match}``."""
    regex = re.compile(pattern, re.IGNORECASE)

    def check(text: str, known: frozenset[str]) -> str | None:
        found = regex.search(text)
        return reason.format(match=found.group(0).strip()) if found else None

    return Rule(name, check)


_FRAGMENT = (
    r'"\s*:|:\s*"'  # "key": or : "value"
    r'|"\s*,\s*"'  # a", "b
    r"|\b(?:name|type|description|style|scene|context|label|text|category|class|item)\s*\"?\s*:"  # name: coat
)
_MARKUP = (
    r'["\u201c\u201d{}\[\]<>\\|`*#_=~^]'  # quotes, braces, brackets, backslashes, markdown
    r"|(?<![^\W\d_])['\u2018\u2019]|['\u2018\u2019](?![^\W\d_]|\s|$)"  # a quote that is no apostrophe
    r"|(?<!\w)/|/(?!\w)"  # a slash outside "and/or", "24/7"
)
_ECHO = (
    r"\(\s*pick one[^)]*\)?|\b(?:pick|choose) one\b|\be\.\s?g\b\.?|\bi\.\s?e\.|\bexamples?\b|\bfor instance\b"
    r"|\bsuch as\b|\bhere (?:is|are)\b|\blist of\b|\betc\b\.?|\bnoun phrases?\b|\bjson\b|\bclass name\b"
    r"|\bthis (?:object|class)\b|\b(?:style|scene|context|option|item|description|answer) ?#?\d+\b"
    r"|\.\.\.|\u2026|\blorem ipsum\b|\b(?:tbd|todo|n/a)\b|\(optional\)|\byour (?:answer|object|class|style)\b"
    r"|\bitems?\b|\b\d+ characters\b|\bnot sure\b"  # our corrections' words ("first item", "300 characters")
)


def _balanced(text: str, known: frozenset[str]) -> str | None:
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            break
    return None if depth == 0 else "has unbalanced parentheses"


def _markup(text: str, known: frozenset[str]) -> str | None:
    found = re.search(_MARKUP, text)
    if found:
        return f"contains a stray {found.group(0)!r}"
    return _balanced(text, known)


def _dangling(text: str, known: frozenset[str]) -> str | None:
    stripped = text.rstrip()
    if stripped and stripped[-1] in ",;:-(&/":
        return f"ends on {stripped[-1]!r} (unfinished)"
    words = stripped.rstrip(".!?").split()
    last = words[-1].casefold() if words else ""
    return f'ends on "{last}" (unfinished)' if last in DANGLING else None


def drop_dangling(text: str) -> str:
    """``text`` without the words it cannot end on (a phrase cut at a token limit: "a crane in a marsh at")."""
    words = text.rstrip(" ,;:-(&/").split()
    while words and words[-1].casefold() in DANGLING:
        words.pop()
        words[-1:] = [words[-1].rstrip(",;:-(&/")] if words else []
    return " ".join(words)


_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*(?:st|nd|rd|th|s|d|k|mm|cm|m|px|x)?$")
_TOKEN = re.compile(r"[^\W_]+(?:['-][^\W_]+)*'?")
_CLITIC = re.compile(r"(?:n't|'(?:s|re|ve|ll|d|m|t)|')$")


def words_of(text: str) -> list[str]:
    """The words of ``text``, lower case, accents and possessive/contraction endings removed ("Owl's" -> "owl")."""
    plain = text.replace("\u2019", "'").replace("\u2018", "'")
    plain = unicodedata.normalize("NFKD", plain).encode("ascii", "ignore").decode()
    out = []
    for token in _TOKEN.findall(plain.casefold()):
        stem = _CLITIC.sub("", token) if not token.endswith("s'") else token[:-1]
        if stem:
            out.append(stem)
    return out


def _is_known(word: str, known: frozenset[str]) -> bool:
    if word in known or word in FUNCTION_WORDS or word in EXTRA_WORDS or _NUMBER.match(word):
        return True
    if is_english_word(word):
        return True
    parts = word.split("-")
    return len(parts) > 1 and all(p and _is_known(p, known) for p in parts)


@functools.cache
def _have_lexicon() -> bool:
    if wordnet_dir() is None:
        logger.warning("WordNet (Debian wordnet-base, or $WNSEARCHDIR) is not installed: LLM text is not checked "
                       "for unknown words")
        return False
    return True


def _unknown_word(text: str, known: frozenset[str]) -> str | None:
    if not _have_lexicon():
        return None
    for word in words_of(text):
        if not _is_known(word, known):
            return f'"{word}" is not an English word'
    return None


RULES: tuple[Rule, ...] = (
    _pattern_rule("fragment", _FRAGMENT, 'is a JSON key/value fragment ({match}), not a phrase'),
    Rule("markup", _markup),
    _pattern_rule("echo", _ECHO, 'repeats the instructions ("{match}")'),
    Rule("dangling", _dangling),
    Rule("unknown word", _unknown_word),
)


def _without_names(text: str, names: Iterable[str]) -> str:
    """``text`` with each name (longest first, any case, a plural ending included) replaced by "thing": a name's
    own characters never count as debris."""
    for name in sorted({n.strip() for n in names if n and n.strip()}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?:e?s)?(?!\w)", "thing", text, flags=re.IGNORECASE)
    return text


def debris_reason(text: str, names: Iterable[str] = (), rules: Iterable[Rule] = RULES) -> str | None:
    """Why ``text`` (an LLM item) is debris, or None when it reads as a clean English phrase.

    Args:
        text: The item, after the caller's own clean-up (edges, glosses).
        names: The class's names and description: their occurrences, and their words anywhere, are allowed.
        rules: The rules to apply, in order (:data:`RULES`).
    """
    names = list(names)
    names += [n.replace("_", " ") for n in names if "_" in n]
    known = frozenset(w for n in names for w in words_of(n)) | frozenset(
        p for n in names for w in words_of(n) for p in w.split("-"))
    body = _without_names(text, names)
    for rule in rules:
        reason = rule.check(body, known)
        if reason:
            return reason
    return None
