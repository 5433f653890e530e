"""Text helpers for prompts: template filling with article agreement, normalised keys, class mentions, repair, and
the CLIP text encoder's token limit.

Prompts go to a CLIP text encoder (Stable Diffusion's, and the scorer's) that reads at most 77 BPE tokens, start
and end markers included; anything longer is silently cut by the generator, so the class could vanish from a
prompt. Tokens are counted with open_clip's ``SimpleTokenizer`` (its vocabulary ships with the package).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_PROMPT_TOKENS",
    "fill",
    "with_article",
    "text_key",
    "strip_article",
    "mentions",
    "repair_mention",
    "count_tokens",
    "trim_to_tokens",
    "is_chatter",
    "looks_like_text",
]

MAX_PROMPT_TOKENS = 75  # 77 positions minus the start and end markers

_PLACEHOLDER = re.compile(r"\{(description|context|style)\}")
_ARTICLE_BEFORE = re.compile(r"(?:^|(?<=\s))([Aa]n?) $")
_LEADING_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)
_NON_WORD = re.compile(r"[^\w]+")
_ARTICLES = {"a", "an", "the"}
_CHATTER = re.compile(
    r"^(?:sorry|i |i'm|i am|i can|here (?:are|is)|sure\b|certainly|of course|as an ai|note:|please|thank)"
    r"|\b(?:jsons?|list of|strings?|sentences?|revised|rewrite|say it again)\b|https?://|www\.",
    re.IGNORECASE,
)
_JOINS_DIRECTLY = {
    "on", "in", "at", "under", "near", "by", "with", "beside", "inside", "among", "against", "behind", "above",
    "below", "next", "during", "through", "across", "along", "around", "over", "underneath", "between", "from",
    "into", "onto", "outside", "sitting", "standing", "lying", "resting", "floating", "hanging", "seen", "photographed",
}


def _starts_with_vowel_sound(text: str) -> bool:
    word = text.lstrip().split(" ", 1)[0].lower()
    if not word:
        return False
    if word.startswith(("uni", "use", "usu", "uti", "eu", "one", "once")):
        return False
    return word[0] in "aeiou" or word.startswith(("hour", "honest", "heir"))


def with_article(phrase: str) -> str:
    """``phrase`` with "a"/"an" in front, unless it already starts with an article."""
    phrase = phrase.strip()
    if _LEADING_ARTICLE.match(phrase):
        return phrase
    return f"{'an' if _starts_with_vowel_sound(phrase) else 'a'} {phrase}"


def fill(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{description}``, ``{context}``, ``{style}``; an "a"/"an" just before a placeholder agrees with the
    value, and is dropped when the value brings its own article ("a {description}" + "an owl" -> "an owl")."""
    out = ""
    pos = 0
    for match in _PLACEHOLDER.finditer(template):
        out += template[pos : match.start()]
        value = values[match.group(1)].strip()
        article = _ARTICLE_BEFORE.search(out)
        if article:
            out = out[: article.start(1)]
            value = with_article(value)
            if article.group(1)[0].isupper():
                value = value[0].upper() + value[1:]
        out += value
        pos = match.end()
    return re.sub(r"\s+", " ", out + template[pos:]).strip()


def is_chatter(text: str) -> bool:
    """Whether a list item is the model talking ("Sorry, I cannot...", "Here are 5 scenes") rather than an item."""
    return _CHATTER.search(text.strip()) is not None


_CODE = re.compile(r"[{}\[\]<>=_\\|@#$%^~`]|[a-z][A-Z]|\w\(")


def looks_like_text(text: str, min_words: int = 1, min_letters: float = 0.7) -> bool:
    """Whether ``text`` is words: at least ``min_words`` words of two or more letters, and letters making up at
    least ``min_letters`` of its non-space characters, and nothing code-like (rejects "# 6", "1", dates, numbers,
    "petworksImporter(")."""
    chars = [c for c in text if not c.isspace()]
    if not chars or sum(c.isalpha() for c in chars) < min_letters * len(chars):
        return False
    if _CODE.search(text):
        return False
    return len(re.findall(r"[^\W\d_]{2,}", text)) >= min_words


def text_key(text: str) -> str:
    """A normalised key for exact-duplicate removal: case-folded words without punctuation or articles."""
    return " ".join(w for w in _NON_WORD.sub(" ", text.casefold()).split() if w not in _ARTICLES)


def strip_article(phrase: str) -> str:
    return _LEADING_ARTICLE.sub("", phrase.strip())


def _word_pattern(phrase: str) -> re.Pattern[str] | None:
    words = _NON_WORD.sub(" ", strip_article(phrase).casefold()).split()
    if not words:
        return None
    body = r"\W+".join(re.escape(w) for w in words)
    return re.compile(rf"\b{body}(?:s|es)?\b", re.IGNORECASE)


def mentions(text: str, description: str) -> bool:
    """Whether ``text`` contains the whole description (articles, case, punctuation and a plural "s" ignored)."""
    pattern = _word_pattern(description)
    return pattern is not None and pattern.search(text) is not None


def _head(description: str) -> str:
    return re.split(r"[,(;:]", strip_article(description), maxsplit=1)[0].strip()


def repair_mention(text: str, description: str) -> str:
    """Make ``text`` name the class by its description.

    When the text names the description's head ("crane" of "a crane, a tall grey wading bird"), that mention is
    replaced by the whole description; otherwise the description is put in front: "in a marsh at dawn" ->
    "a crane, a tall grey wading bird in a marsh at dawn".
    """
    text = text.strip()
    head = _head(description)
    pattern = _word_pattern(head) if head and head.casefold() != strip_article(description).casefold() else None
    if pattern is not None:
        match = re.search(rf"(?:\b(?:a|an|the)\s+)?{pattern.pattern}", text, re.IGNORECASE)
        if match:
            return f"{text[: match.start()]}{with_article(description)}{text[match.end():]}".strip()
    first = text.split(" ", 1)[0].casefold()
    sep = " " if first in _JOINS_DIRECTLY or (first.endswith("ing") and len(first) > 4) else ", "
    return f"{with_article(description)}{sep}{text[0].lower() + text[1:] if text else text}".strip(" ,")


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def count_tokens(text: str) -> int:
    """CLIP BPE tokens of ``text``, without the start and end markers."""
    return len(_tokenizer().encode(text))


def trim_to_tokens(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` tokens, trailing punctuation dropped ("" if none fits)."""
    if count_tokens(text) <= limit:
        return text
    words = text.split()
    lo, hi = 0, len(words)  # largest prefix of words that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(" ".join(words[:mid])) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo]).rstrip(" ,;:-")
