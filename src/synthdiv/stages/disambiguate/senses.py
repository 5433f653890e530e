"""Which WordNet sense a class without a given sense means: read from the list itself, and from its real images.

A class file of plain names says "crane" and means one sense; which one, the rest of the list says: in a list of
herons and eagles it is the bird, in a list of forklifts the machine. The evidence, strongest first:

* ``given``: the class names its sense (a WordNet id, or a definition: a CSV column, a ``name nXXXXXXXX`` line of a
  text file, a ``classes.csv`` beside an ImageFolder). Nothing is inferred.
* ``images (clip)``: CLIP prefers one sense on the class's own real images by more than it prefers it on any
  unrelated input (the other classes' images and a fixed set of synthetic images: noise, flat colours, gradients).
  That calibration is what keeps a random or weak CLIP, which prefers some text everywhere, from deciding.
* ``list (wordnet)``: the sense most related to the other classes of the list. A sense's relatedness to a class is
  its Lin similarity (:mod:`synthdiv.lexicon.relatedness`) to that class's closest sense; its domain score is the
  mean over the better half of the other classes (a list may hold two domains). The margin is over the best rival
  sense, one not related to the winner (a cricket bat and a baseball bat are no rivals in a list of sports gear).
  Two passes: the second reads the other classes through the senses the first settled.
* ``llm (list)``: where an LLM is configured, it is told the whole list and picks a sense consistently
  (:mod:`synthdiv.stages.disambiguate.llm_sense`).
* ``undecided``: nothing separates the senses. The class is listed by the stage with its candidate senses and a hint
  to name the sense in the class file; its candidates follow the domain order, and the run goes on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from synthdiv.lexicon.relatedness import lin_similarity
from synthdiv.lexicon.wordnet import noun_senses

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["SenseChoice", "list_senses", "clip_sense", "context_senses", "unrelated_images", "DOMAIN_MARGIN"]

# A domain margin below this does not settle a sense (benchmarks/sense_choice.py: on its lists the smallest margin of
# a right choice is 0.027; the two names those lists cannot settle, a bow and a helmet among sports gear, lie under it).
DOMAIN_MARGIN = 0.02
# Two senses at least this similar belong to one domain: neither is the other's rival.
_SAME_DOMAIN = 0.5
_PASSES = 2
# CLIP's preference on the own images must stand this many standard deviations above its preference on unrelated
# inputs (and above all of them).
_NULL_Z = 3.0


@dataclass
class SenseChoice:
    """The sense of one class and what settled it."""

    wnid: str | None  # the chosen synset; None where undecided
    evidence: str  # "given (wnid)" | "given (definition)" | "images (clip)" | "list (wordnet)" | "llm (list)"
    #                | "undecided"
    strength: float | None = None  # the margin over the best rival sense (CLIP: over the unrelated inputs)
    scores: dict[str, float] = field(default_factory=dict)  # each candidate sense's score, best first
    rival: str | None = None  # the best sense of another domain

    @property
    def decided(self) -> bool:
        return self.evidence != "undecided"

    def as_dict(self) -> dict[str, Any]:
        return {"wnid": self.wnid, "evidence": self.evidence,
                "strength": None if self.strength is None else round(self.strength, 4),
                "rival": self.rival, "scores": {k: round(v, 4) for k, v in self.scores.items()}}


def context_senses(row: dict[str, Any]) -> tuple[str, ...]:
    """The senses a class may stand for when it is read as context: its own synset, else its name's senses (a
    multi-word name WordNet does not know speaks through its head noun: "steel bass" through "bass")."""
    if row.get("wnid"):
        return (row["wnid"],)
    senses = noun_senses(row["name"])
    words = row["name"].split()
    if not senses and len(words) > 1:
        senses = noun_senses(words[-1])
    return senses


def _domain_scores(own: tuple[str, ...], context: Sequence[tuple[str, ...]], i: int) -> dict[str, float]:
    scores = {}
    for sense in own:
        related = sorted((max(lin_similarity(sense, t) for t in senses)
                          for j, senses in enumerate(context) if j != i and senses), reverse=True)
        top = related[: max(3, math.ceil(len(related) / 2))]
        scores[sense] = sum(top) / len(top) if top else 0.0
    return dict(sorted(scores.items(), key=lambda kv: -kv[1]))


def _rival(best: str, ranked: Sequence[str]) -> str | None:
    return next((s for s in ranked if s != best and lin_similarity(best, s) < _SAME_DOMAIN), None)


def list_senses(rows: Sequence[dict[str, Any]], targets: Sequence[bool]) -> list[SenseChoice | None]:
    """The ``list (wordnet)`` choice for every class with ``targets[i]`` (a polysemous name, no sense given), by the
    other classes of ``rows``; ``None`` for the others. Undecided choices still carry their scores."""
    sense_sets = [context_senses(row) for row in rows]
    context = list(sense_sets)
    out: list[SenseChoice | None] = [None] * len(rows)
    for _ in range(_PASSES):
        for i, target in enumerate(targets):
            if target:
                out[i] = _choose(_domain_scores(sense_sets[i], context, i), len([s for s in context if s]) - 1)
        context = [(c.wnid,) if c is not None and c.decided else s for c, s in zip(out, sense_sets, strict=True)]
    return out


def _choose(scores: dict[str, float], context: int) -> SenseChoice:
    ranked = list(scores)
    if not ranked or context < 2:  # one other class is no domain
        return SenseChoice(None, "undecided", None, scores)
    best = ranked[0]
    rival = _rival(best, ranked)
    margin = scores[best] - (scores[rival] if rival else 0.0)
    if margin < DOMAIN_MARGIN:
        return SenseChoice(None, "undecided", margin, scores, rival)
    return SenseChoice(best, "list (wordnet)", margin, scores, rival)


def unrelated_images(seed: int = 0, size: int = 64) -> list[Any]:
    """Synthetic images no class is about -- uniform noise, flat greys, gradients, a checkerboard -- against which
    CLIP's preference on a class's own images is calibrated."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    arrays = [
        rng.integers(0, 256, (size, size, 3)),
        np.full((size, size, 3), 0), np.full((size, size, 3), 128), np.full((size, size, 3), 255),
        np.repeat(np.tile(ramp, (size, 1))[:, :, None], 3, axis=2),
        np.repeat(np.tile(ramp[:, None], (1, size))[:, :, None], 3, axis=2),
        np.kron((np.indices((8, 8)).sum(axis=0) % 2) * 255, np.ones((size // 8, size // 8)))[:, :, None].repeat(3, 2),
        rng.normal(128, 40, (size, size, 3)),
    ]
    return [Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)) for a in arrays]


def clip_sense(senses: Sequence[str], texts: np.ndarray, own: np.ndarray, unrelated: np.ndarray) -> SenseChoice | None:
    """The ``images (clip)`` choice among ``senses`` (their embedded texts ``texts``, one row each), or None.

    CLIP's preference for its best sense over the best rival (a sense of another domain) on the class's own mean
    image embedding ``own`` must exceed its preference on every row of ``unrelated`` (other classes' images and
    :func:`unrelated_images`), and by at least ``_NULL_Z`` standard deviations of those: a random CLIP prefers some
    text everywhere, and with a score of one against many it would still win now and then.
    """
    import numpy as np

    if len(senses) < 2 or len(unrelated) < 2:
        return None
    own_sims = texts @ own
    order = [int(k) for k in np.argsort(-own_sims, kind="stable")]
    best = order[0]
    rival = next((k for k in order[1:] if lin_similarity(senses[best], senses[k]) < _SAME_DOMAIN), None)
    if rival is None:
        return None
    null = unrelated @ (texts[best] - texts[rival])
    preference = float(own_sims[best] - own_sims[rival])
    excess = preference - float(null.max())
    if excess <= 0 or preference < float(null.mean()) + _NULL_Z * float(null.std()):
        return None
    scores = {senses[k]: float(own_sims[k]) for k in order}
    return SenseChoice(senses[best], "images (clip)", excess, scores, senses[rival])
