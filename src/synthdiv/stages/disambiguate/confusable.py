"""Which other classes a class is most easily confused with: the names the LLM is told not to describe.

Same or near-same names come first ("crane" and "crane"; "Cardigan" and "cardigan"; "tiger cat" and "tiger"),
then the classes whose names are nearest by CLIP text embedding. Near-same names are found through an inverted
index of name words, so a 22k-class list is never compared pair by pair.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["STOP_WORDS", "normalise_name", "name_words", "mentions_name", "confusable_classes"]

_WORD = re.compile(r"[a-z0-9]+")
# Words that say nothing about which thing a name means.
STOP_WORDS = frozenset({"a", "an", "the", "of", "and", "or", "in", "on", "for", "with", "to"})


def normalise_name(name: str) -> str:
    """Case-folded words of ``name`` joined by single spaces ("T-shirt_top" -> "t shirt top")."""
    return " ".join(_WORD.findall(name.casefold().replace("_", " ")))


def name_words(name: str) -> frozenset[str]:
    """The content words of a name (stop words dropped), for near-same matching."""
    return frozenset(w for w in normalise_name(name).split() if w not in STOP_WORDS)


# A word shared by more names than this (or 1% of the list) does not make two names near-same on its own.
_COMMON_MIN = 64


def mentions_name(text: str, name: str) -> bool:
    """Whether ``text`` uses a word of ``name`` (or its plural / a longer form: "boots" for "boot").

    A name with no content word counts as mentioned.
    """
    wanted = [w for w in name_words(name) if len(w) > 1] or list(name_words(name))
    if not wanted:
        return True
    words = normalise_name(text).split()
    return any(t == w or (len(w) >= 3 and t.startswith(w)) for w in wanted for t in words)


def _near_same(names: Sequence[str]) -> list[list[tuple[float, int]]]:
    """For each class, ``(closeness, other)`` for the classes with the same or a near-same name.

    Closeness is 2 for the same normalised name, else the Jaccard overlap of the word sets, kept when it is at
    least 0.5 or one name's words contain the other's ("tiger" in "tiger cat"). Pairs are found through the
    words they share, leaving out words so common that they would make the search quadratic.
    """
    normal = [normalise_name(n) for n in names]
    words = [name_words(n) for n in names]
    same: dict[str, list[int]] = defaultdict(list)
    index: dict[str, list[int]] = defaultdict(list)
    for i, ws in enumerate(words):
        same[normal[i]].append(i)
        for w in ws:
            index[w].append(i)
    common = max(_COMMON_MIN, len(names) // 100)
    out: list[list[tuple[float, int]]] = [[] for _ in names]
    for i, ws in enumerate(words):
        seen = set(same[normal[i]])
        out[i].extend((2.0, j) for j in same[normal[i]] if j != i)
        for w in ws:
            if len(index[w]) > common:  # "dog" in hundreds of names says little; CLIP ranks those classes
                continue
            for j in index[w]:
                if j in seen:
                    continue
                seen.add(j)
                overlap = len(ws & words[j]) / len(ws | words[j])
                if overlap >= 0.5 or ws <= words[j] or words[j] <= ws:
                    out[i].append((overlap, j))
    return out


def confusable_classes(names: Sequence[str], name_embeddings: np.ndarray | None, k: int) -> list[list[int]]:
    """The ``k`` classes most confusable with each class, most confusable first.

    Args:
        names: Class names, in class-index order.
        name_embeddings: ``(len(names), dim)`` L2-normalised CLIP text embeddings of the names, or None to use
            names only.
        k: How many to return per class (fewer when there are fewer other classes).

    Returns:
        For each class, indices of other classes: same or near-same names first (closest first), then the
        nearest by cosine of the name embeddings.
    """
    import numpy as np

    if k <= 0 or len(names) < 2:
        return [[] for _ in names]
    near = _near_same(names)
    out: list[list[int]] = []
    for i in range(len(names)):
        sims = name_embeddings @ name_embeddings[i] if name_embeddings is not None else None
        ranked = sorted(near[i], key=lambda cj: (-cj[0], -(sims[cj[1]] if sims is not None else 0.0), cj[1]))
        chosen = [j for _, j in ranked[:k]]
        if len(chosen) < k and sims is not None:
            top = min(len(sims), k + len(chosen) + 1)  # enough to fill k after skipping itself and the chosen
            head = np.argpartition(-sims, top - 1)[:top] if top < len(sims) else np.arange(len(sims))
            order = head[np.lexsort((head, -sims[head]))]
            taken = set(chosen) | {i}
            for j in order:
                if len(chosen) >= k:
                    break
                if int(j) not in taken:
                    chosen.append(int(j))
                    taken.add(int(j))
        out.append(chosen)
    return out
