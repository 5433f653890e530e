"""The disambiguate stage's sense step: settle the sense of every polysemous class that does not name its own.

It weighs the evidence of :mod:`synthdiv.stages.disambiguate.senses` (given > images (clip) > list (wordnet) >
undecided), then hands the settled sense to the rest of the stage as if the class had named it: the LLM is told that
sense's definition and what the class is not, candidates about another sense are refused, and the grounded
candidates are that sense's lemmas, hypernym and definition. An undecided class keeps every sense as a candidate,
in the order the list favours, and is listed with a hint to name its sense.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from synthdiv.lexicon.wordnet import noun_senses
from synthdiv.stages.disambiguate.ambiguity import MAX_SENSES, Ambiguity, sense_of
from synthdiv.stages.disambiguate.grounded import definition_phrase
from synthdiv.stages.disambiguate.senses import SenseChoice, clip_sense, list_senses, unrelated_images

if TYPE_CHECKING:
    from synthdiv.models.clip.base import ImageTextScorer
    from synthdiv.stages.disambiguate.scoring import ClassImages

logger = logging.getLogger(__name__)

__all__ = ["settle_senses", "with_sense", "undecided_hint"]

_CLIP_SENSES = 6  # senses of one name shown to CLIP (visual ones first); "plate" has 15


def _given(row: dict[str, Any]) -> SenseChoice | None:
    if row.get("wnid"):
        return SenseChoice(row["wnid"], "given (wnid)")
    if (row.get("definition") or "").strip():
        return SenseChoice(None, "given (definition)")
    return None


def _sense_text(name: str, wnid: str) -> str:
    sense = sense_of(wnid)
    qualifier = (sense.hypernym if sense else None) or definition_phrase(sense.gloss if sense else None) or wnid
    return f"{name} ({qualifier})"


def settle_senses(
    rows: list[dict[str, Any]],
    ambiguity: list[Ambiguity],
    images: list[ClassImages],
    scorer: ImageTextScorer,
    clip_template: str,
) -> list[SenseChoice | None]:
    """The sense of every class whose name WordNet knows in several senses (None for the others).

    Args:
        rows: The classes (``name``, ``wnid``, ``definition``).
        ambiguity: Their :class:`Ambiguity` (``polysemy`` marks the classes with several senses).
        images: The classes' embedded real images (a class without images has ``mean`` None).
        scorer: The run's CLIP, for the calibrated ``images (clip)`` evidence.
        clip_template: How a text is put to CLIP against images ("a photo of {}.").
    """
    polysemous = ["polysemy" in amb.kinds for amb in ambiguity]
    given = [_given(row) if p else None for row, p in zip(rows, polysemous, strict=True)]
    targets = [p and g is None for p, g in zip(polysemous, given, strict=True)]
    if not any(targets):
        return given
    out = [g if g is not None else c for g, c in zip(given, list_senses(rows, targets), strict=True)]
    with_images = [i for i, im in enumerate(images) if im.mean is not None]
    if not any(targets[i] for i in with_images):
        return out
    import numpy as np

    synthetic = scorer.embed_images(unrelated_images())
    for i in with_images:
        if not targets[i]:
            continue
        senses = _clip_order(rows[i]["name"], out[i])
        texts = scorer.embed_texts([clip_template.format(_sense_text(rows[i]["name"], w)) for w in senses])
        unrelated = np.concatenate([np.stack([images[j].mean for j in with_images if j != i] or [synthetic[0]]),
                                    synthetic])
        by_clip = clip_sense(senses, texts, images[i].mean, unrelated)
        if by_clip is not None:
            out[i] = by_clip
    return out


def _clip_order(name: str, choice: SenseChoice | None) -> list[str]:
    ranked = list(choice.scores) if choice is not None and choice.scores else list(noun_senses(name))
    visual = [w for w in ranked if (sense := sense_of(w)) is not None and sense.visual]
    return (visual or ranked)[:_CLIP_SENSES]


def with_sense(row: dict[str, Any], amb: Ambiguity, choice: SenseChoice | None) -> dict[str, Any]:
    """``row`` as the rest of the stage reads it once ``choice`` settled its sense: the sense's lemmas, hypernym and
    definition filled in where the class gave none, and ``amb`` told its own sense (the others become what the class
    is not). An undecided class keeps its senses, ordered as the list favours them. The row itself is unchanged."""
    if choice is None or choice.evidence.startswith("given"):
        return row
    if not choice.decided:
        ranked = [s for s in (sense_of(w) for w in choice.scores) if s is not None]
        amb.other_senses = ranked[:MAX_SENSES] or amb.other_senses
        return row
    own = sense_of(choice.wnid)
    if own is None:
        return row
    amb.own_sense = own
    others = [s for s in (sense_of(w) for w in noun_senses(row["name"]) if w != choice.wnid) if s is not None]
    amb.other_senses = sorted(others, key=lambda s: not s.visual)[:MAX_SENSES]
    return {**row, "lemmas": list(own.lemmas), "hypernym": own.hypernym,
            "definition": row.get("definition") or own.gloss}


def undecided_hint(row: dict[str, Any], choice: SenseChoice) -> str:
    """One line naming an undecided class, its candidate senses and how to settle it in the class file."""
    senses = list(choice.scores)[:3]
    shown = "; ".join(f"{w} {_sense_text(row['name'], w)}" for w in senses)
    example = senses[0] if senses else "n00000000"
    return (f"class {row['index']} ({row['name']}): the list does not settle its sense ({shown}); name it: "
            f"'{row['name']} {example}' in a .txt, a wnid or definition column in a .csv (or an ImageFolder's "
            "classes.csv)")
