"""How related two WordNet noun senses are: Lin's similarity over WordNet's hypernym hierarchy.

Lin (1998) scores two concepts by the information their most informative common ancestor carries, relative to
their own: ``sim(a, b) = 2 IC(lcs) / (IC(a) + IC(b))``, from 0 (nothing shared but the root) to 1 (the same
concept). The information content is intrinsic (Seco, Veale & Hayes, 2004): ``IC(c) = 1 - log(hypo(c) + 1) /
log(N)``, where ``hypo(c)`` counts the concepts below ``c`` and ``N`` every noun synset. It needs no sense-tagged
corpus, only ``data.noun``: a concept with many hyponyms ("person", "artifact") says little, a small one ("wading
bird", "hand tool") says much. That is what makes it a measure of a shared domain: two birds share "bird", a bird
and a writer share only "organism". (Wu-Palmer's depth ratio does not: the person subtree is shallow, so unrelated
people look as close as two birds.)

``hypo`` sums the hyponyms of every child, so a concept reached by two hypernym paths counts twice below their
common ancestor; WordNet's noun hierarchy is nearly a tree and the error is small. The hierarchy is read once, on
first use (about a second); without WordNet every similarity is 0.
"""

from __future__ import annotations

import functools
import logging
import math

from synthdiv.lexicon.wordnet import wordnet_dir

logger = logging.getLogger(__name__)

__all__ = ["information_content", "lin_similarity", "ancestors"]


@functools.cache
def _hierarchy() -> dict[str, tuple[str, ...]]:
    """Every noun synset id -> its hypernym ids (instance hypernyms included), read from ``data.noun``."""
    folder = wordnet_dir()
    if folder is None:
        return {}
    parents: dict[str, tuple[str, ...]] = {}
    with open(folder / "data.noun", "rb") as fh:
        for raw in fh:
            if raw.startswith(b"  "):  # the licence header
                continue
            fields = raw.split(b" ")
            pos = 4 + 2 * int(fields[3], 16)
            pointers = (fields[pos + 1 + 4 * i : pos + 5 + 4 * i] for i in range(int(fields[pos])))
            parents["n" + fields[0].decode()] = tuple(
                "n" + p[1].decode() for p in pointers if p[0] in (b"@", b"@i") and p[2] == b"n"
            )
    return parents


@functools.cache
def _hyponym_counts() -> dict[str, int]:
    """``hypo(c)`` for every synset: children are counted before their parents (a topological order)."""
    parents = _hierarchy()
    pending = {wnid: 0 for wnid in parents}  # children not yet added into their parent
    for ups in parents.values():
        for up in ups:
            if up in pending:
                pending[up] += 1
    counts = dict.fromkeys(parents, 0)
    ready = [wnid for wnid, n in pending.items() if n == 0]
    while ready:
        wnid = ready.pop()
        for up in parents[wnid]:
            if up in counts:
                counts[up] += counts[wnid] + 1
                pending[up] -= 1
                if pending[up] == 0:
                    ready.append(up)
    return counts


def information_content(wnid: str) -> float:
    """Intrinsic information content of a noun synset, in [0, 1]: 1 for a leaf, 0 for the root (``entity``)."""
    counts = _hyponym_counts()
    if wnid not in counts:
        return 0.0
    # the root's count exceeds N where paths join (see the module docstring): clamp, so that IC stays in [0, 1]
    return max(0.0, 1.0 - math.log(counts[wnid] + 1) / math.log(len(counts)))


@functools.lru_cache(maxsize=65536)
def ancestors(wnid: str) -> frozenset[str]:
    """``wnid`` and every synset above it (through all hypernym paths)."""
    out = {wnid}
    for up in _hierarchy().get(wnid, ()):
        out |= ancestors(up)
    return frozenset(out)


@functools.lru_cache(maxsize=262144)
def lin_similarity(a: str, b: str) -> float:
    """Lin's similarity of two noun synsets (see the module docstring), in [0, 1]; 0 without WordNet."""
    if a == b:
        return 1.0 if a in _hierarchy() else 0.0
    common = ancestors(a) & ancestors(b)
    if not common:
        return 0.0
    shared = max(information_content(c) for c in common)
    own = information_content(a) + information_content(b)
    return 2.0 * shared / own if own > 0 else 0.0
