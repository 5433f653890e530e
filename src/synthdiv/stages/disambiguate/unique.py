"""Making the chosen descriptions unique across the class list: two classes never end with the same text.

Classes pick in order of their best score (the most certain first). A class whose best candidate is taken falls
back to its next-best candidate; when all of its candidates are taken, the distinguishing part of its definition
is appended to its best one, then its WordNet id, then its index, so the result is always unique.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from synthdiv.stages.disambiguate.confusable import STOP_WORDS, name_words, normalise_name

logger = logging.getLogger(__name__)

__all__ = ["Pick", "text_key", "distinguishing_part", "make_unique", "make_token_unique"]

_MAX_CLAUSE_WORDS = 10


@dataclass
class Pick:
    """What a class ends with: the text, its rank among the candidates (None when made up) and why."""

    text: str
    rank: int | None
    reason: str  # "best" | "next-best (unique)" | "definition (unique)" | "wnid (unique)" | "index (unique)"


def text_key(text: str) -> str:
    """Two descriptions are the same when their case-folded words are ("A crane." == "a  crane")."""
    return normalise_name(text)


def _first_clause(definition: str) -> str:
    clause = re.split(r"[;:]", definition, maxsplit=1)[0].strip().rstrip(".")
    return " ".join(clause.split()[:_MAX_CLAUSE_WORDS])


def distinguishing_part(definition: str | None, other_definitions: Sequence[str | None]) -> str | None:
    """The part of ``definition`` that tells it from ``other_definitions``.

    Its first clause when no other definition starts the same way; else the words of the definition that no
    other definition uses (at most six); None when nothing distinguishes it.
    """
    if not definition or not definition.strip():
        return None
    clause = _first_clause(definition)
    others = [d for d in other_definitions if d]
    if clause and all(text_key(_first_clause(d)) != text_key(clause) for d in others):
        return clause
    used = set().union(*(name_words(d) for d in others)) if others else set()
    words = [w for w in normalise_name(definition).split() if w not in STOP_WORDS and w not in used]
    words = list(dict.fromkeys(words))[:6]
    return " ".join(words) or None


def make_unique(
    ranked: Sequence[Sequence[str]],
    priority: Sequence[float | None],
    definitions: Sequence[str | None],
    wnids: Sequence[str | None],
) -> list[Pick]:
    """Choose one text per class so that no two classes share a :func:`text_key`.

    Args:
        ranked: Per class, its candidate texts best first (never empty).
        priority: Per class, the score of its best candidate (None when unscored); higher picks first, ties and
            unscored classes in index order.
        definitions: Per class, its definition or None.
        wnids: Per class, its WordNet id or None.

    Returns:
        One :class:`Pick` per class, in class order.
    """
    order = sorted(range(len(ranked)), key=lambda i: (priority[i] is None, -(priority[i] or 0.0), i))
    owner: dict[str, int] = {}
    picks: list[Pick | None] = [None] * len(ranked)
    for i in order:
        for rank, text in enumerate(ranked[i]):
            if text_key(text) not in owner:
                picks[i] = Pick(text, rank, "best" if rank == 0 else "next-best (unique)")
                break
        else:
            picks[i] = _made_up(i, ranked[i][0], owner, definitions, wnids)
        owner[text_key(picks[i].text)] = i
    moved = sum(p.reason != "best" for p in picks if p is not None)
    if moved:
        logger.info("%d class(es) took another description so that every description is unique", moved)
    return [p for p in picks if p is not None]


def _made_up(
    i: int, best: str, owner: dict[str, int], definitions: Sequence[str | None], wnids: Sequence[str | None]
) -> Pick:
    holder = owner[text_key(best)]
    part = distinguishing_part(definitions[i], [definitions[holder]])
    tries = []
    if part:
        tries.append((f"{best}, {part}", "definition (unique)"))
    if wnids[i]:
        tries.append((f"{best} ({wnids[i]})", "wnid (unique)"))
    tries.append((f"{best} (class {i})", "index (unique)"))
    for text, reason in tries:
        if text_key(text) not in owner:
            return Pick(text, None, reason)
    n = 2
    while text_key(f"{best} (class {i}, {n})") in owner:
        n += 1
    return Pick(f"{best} (class {i}, {n})", None, "index (unique)")


def make_token_unique(
    picks: list[Pick], token_ids: Callable[[list[str]], list[tuple[int, ...]]], wnids: Sequence[str | None]
) -> list[Pick]:
    """``picks`` with no two texts that the text encoder reads as the same tokens (a tokenizer may map different
    words to one unknown token); a later class that collides gets its wnid, else its index, appended."""
    out = list(picks)
    tokens = token_ids([p.text for p in out])
    owner: dict[tuple[int, ...], int] = {}
    for i, ids in enumerate(tokens):
        if ids in owner:
            suffix = wnids[i] or f"class {i}"
            text = f"{out[i].text} ({suffix})"
            n = 2
            while tuple(token_ids([text])[0]) in owner:
                text, n = f"{out[i].text} ({suffix}, {n})", n + 1
            out[i] = Pick(text, None, "wnid (unique tokens)" if wnids[i] else "index (unique tokens)")
            ids = token_ids([text])[0]
        owner[ids] = i
    return out
