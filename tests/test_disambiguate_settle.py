"""The sense step of the disambiguate stage (disambiguate/settle.py): which evidence settles a polysemous class (given
> images (clip) > list (wordnet) > undecided), what CLIP is shown and calibrated against (a scripted scorer), how a
settled sense reaches the rest of the stage, and the hint for an undecided class."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from synthdiv.lexicon.wordnet import wordnet_dir
from synthdiv.stages.disambiguate.ambiguity import Ambiguity, sense_of
from synthdiv.stages.disambiguate.scoring import ClassImages
from synthdiv.stages.disambiguate.senses import SenseChoice, list_senses
from synthdiv.stages.disambiguate.settle import settle_senses, undecided_hint, with_sense

pytestmark = pytest.mark.skipif(wordnet_dir() is None, reason="WordNet (Debian wordnet-base) is not installed")

CRANE_BIRD, CRANE_MACHINE = "n02012849", "n03126707"
KITE_HAWK, KITE_TOY, KITE_CHECKS = "n01608432", "n03621473", ("n13382471", "n13382306")  # the checks: not visual
TEMPLATE = "a photo of {}."
DIM = 4


class ScriptedScorer:
    """CLIP as a script: the k-th text of a call embeds as the k-th unit vector; the synthetic images as given."""

    def __init__(self, synthetic: np.ndarray | None = None) -> None:
        self.synthetic = np.zeros((8, DIM), np.float32) if synthetic is None else synthetic
        self.texts: list[list[str]] = []
        self.image_calls = 0

    def embed_images(self, images: list[Any]) -> np.ndarray:
        assert len(images) == 8  # unrelated_images()
        self.image_calls += 1
        return self.synthetic

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        self.texts.append(list(texts))
        return np.eye(len(texts), DIM, dtype=np.float32)


def _unit(k: int) -> np.ndarray:
    return np.eye(DIM, dtype=np.float32)[k]


def _poly(flags: list[bool]) -> list[Ambiguity]:
    return [Ambiguity(kinds=["polysemy"] if p else []) for p in flags]


def _images(means: list[np.ndarray | None]) -> list[ClassImages]:
    return [ClassImages([], m) for m in means]


# heron, kite, stork: the list settles the kite as the hawk; only the kite is a target
ROWS = [{"name": "heron"}, {"name": "kite"}, {"name": "stork"}]
LIST_KITE = list_senses(ROWS, [False, True, False])[1]
# what CLIP is shown for the kite: the list's order, visual senses only (the checks are left out)
KITE_TEXTS = [["a photo of kite (hawk).", "a photo of kite (plaything)."]]
CLIP_TOY = SenseChoice(KITE_TOY, "images (clip)", 1.0, {KITE_TOY: 1.0, KITE_HAWK: 0.0}, KITE_HAWK)


def test_a_given_sense_settles_it_and_nothing_is_asked() -> None:
    rows = [{"name": "crane", "wnid": CRANE_MACHINE}, {"name": "crane", "definition": "a bird"},
            {"name": "crane", "wnid": CRANE_BIRD}, {"name": "stork"}]
    scorer = ScriptedScorer()
    out = settle_senses(rows, _poly([True, True, False, False]), _images([_unit(0)] * 4), scorer, TEMPLATE)
    assert out == [SenseChoice(CRANE_MACHINE, "given (wnid)"), SenseChoice(None, "given (definition)"), None, None]
    assert scorer.texts == [] and scorer.image_calls == 0


def test_a_blank_definition_gives_no_sense() -> None:
    out = settle_senses([{"name": "kite", "definition": "  "}, {"name": "heron"}, {"name": "stork"}],
                        _poly([True, False, False]), _images([None] * 3), ScriptedScorer(), TEMPLATE)
    assert out == [list_senses([{"name": "kite"}, {"name": "heron"}, {"name": "stork"}], [True, False, False])[0],
                   None, None]
    assert out[0].evidence == "list (wordnet)"


def test_rows_and_their_ambiguity_must_match() -> None:
    with pytest.raises(ValueError, match="zip"):
        settle_senses([{"name": "heron"}, {"name": "stork"}], _poly([False]), _images([None]), ScriptedScorer(),
                      TEMPLATE)


def test_without_images_the_list_decides_and_clip_is_never_asked() -> None:
    scorer = ScriptedScorer()
    out = settle_senses(ROWS, _poly([False, True, False]), _images([_unit(3), None, _unit(3)]), scorer, TEMPLATE)
    assert out == [None, LIST_KITE, None] and LIST_KITE.wnid == KITE_HAWK
    assert scorer.texts == [] and scorer.image_calls == 0


def test_clip_overrules_the_list_where_the_images_stand_out() -> None:
    scorer = ScriptedScorer()
    # the heron's images come first and are no target's: skipped, not the end of the loop
    out = settle_senses(ROWS, _poly([False, True, False]), _images([_unit(3), _unit(1), None]), scorer, TEMPLATE)
    assert out == [None, CLIP_TOY, None]
    assert scorer.texts == KITE_TEXTS and scorer.image_calls == 1


def test_clip_settles_nothing_where_another_class_s_images_prefer_the_same() -> None:
    scorer = ScriptedScorer()
    out = settle_senses(ROWS, _poly([False, True, False]), _images([_unit(1), _unit(1), None]), scorer, TEMPLATE)
    assert out == [None, LIST_KITE, None] and scorer.texts == KITE_TEXTS


def test_a_class_alone_with_images_is_calibrated_against_the_synthetic_images_only() -> None:
    decisive = ScriptedScorer()
    assert settle_senses(ROWS, _poly([False, True, False]), _images([None, _unit(1), None]), decisive,
                         TEMPLATE) == [None, CLIP_TOY, None]
    # the first synthetic image stands in for the other classes' images: one that prefers the toy almost as much
    # counts twice, and the preference no longer stands out by three standard deviations
    synthetic = np.zeros((8, DIM), np.float32)
    synthetic[0] = 0.9 * _unit(1)
    out = settle_senses(ROWS, _poly([False, True, False]), _images([None, _unit(1), None]),
                        ScriptedScorer(synthetic), TEMPLATE)
    assert out == [None, LIST_KITE, None]


def test_a_name_wordnet_does_not_know_shows_clip_nothing() -> None:
    rows = [{"name": "zzyzx"}, {"name": "heron"}, {"name": "stork"}]
    scorer = ScriptedScorer()
    out = settle_senses(rows, _poly([True, False, False]), _images([_unit(0), None, None]), scorer, TEMPLATE)
    assert out == [SenseChoice(None, "undecided", None, {}), None, None] and scorer.texts == [[]]


def test_with_sense_passes_the_row_through_when_nothing_or_the_class_settled_it() -> None:
    row = {"name": "crane", "wnid": CRANE_MACHINE}
    for choice in (None, SenseChoice(CRANE_MACHINE, "given (wnid)"), SenseChoice(None, "given (definition)"),
                   SenseChoice("n99999999", "list (wordnet)")):
        amb = Ambiguity(kinds=["polysemy"])
        assert with_sense(row, amb, choice) is row
        assert (amb.own_sense, amb.other_senses) == (None, [])


def test_an_undecided_class_keeps_its_senses_in_the_list_s_order() -> None:
    row = {"name": "kite"}
    amb = Ambiguity(kinds=["polysemy"], other_senses=[sense_of(KITE_HAWK)])
    scores = {"n99999999": 0.9, KITE_TOY: 0.5, KITE_HAWK: 0.4, **dict.fromkeys(KITE_CHECKS, 0.0)}
    assert with_sense(row, amb, SenseChoice(None, "undecided", 0.0, scores)) is row
    assert amb.other_senses == [sense_of(w) for w in (KITE_TOY, KITE_HAWK, *KITE_CHECKS)] and amb.own_sense is None
    # no sense WordNet knows among the scores: the ambiguity keeps what it had
    amb = Ambiguity(kinds=["polysemy"], other_senses=[sense_of(KITE_HAWK)])
    with_sense(row, amb, SenseChoice(None, "undecided", 0.0, {"n99999999": 0.9}))
    assert amb.other_senses == [sense_of(KITE_HAWK)]


def test_a_settled_sense_fills_the_row_and_the_others_become_what_it_is_not() -> None:
    hawk = sense_of(KITE_HAWK)
    row = {"name": "kite", "index": 3}
    amb = Ambiguity(kinds=["polysemy"])
    out = with_sense(row, amb, SenseChoice(KITE_HAWK, "list (wordnet)", 0.5))
    assert out == {"name": "kite", "index": 3, "lemmas": list(hawk.lemmas), "hypernym": "hawk",
                   "definition": hawk.gloss}
    assert row == {"name": "kite", "index": 3}
    assert amb.own_sense == hawk
    assert amb.other_senses == [sense_of(w) for w in (KITE_TOY, *KITE_CHECKS)]  # the visual ones first
    own = with_sense({"name": "kite", "definition": "a bird of prey"}, Ambiguity(), SenseChoice(KITE_HAWK, "x"))
    assert own["definition"] == "a bird of prey"


def test_at_most_six_other_senses_are_kept() -> None:
    from synthdiv.lexicon.wordnet import noun_senses

    senses = noun_senses("bass")
    amb = Ambiguity(kinds=["polysemy"])
    with_sense({"name": "bass"}, amb, SenseChoice(senses[2], "images (clip)"))
    others = [sense_of(w) for w in senses if w != senses[2]]
    assert len(others) == 7
    assert amb.other_senses == sorted(others, key=lambda s: not s.visual)[:6]


def test_the_hint_names_three_senses_and_how_to_name_one() -> None:
    row = {"name": "crane", "index": 7}
    scores = {CRANE_BIRD: 0.5, "n00001740": 0.4, "n99999999": 0.3, CRANE_MACHINE: 0.2}
    assert undecided_hint(row, SenseChoice(None, "undecided", 0.0, scores)) == (
        "class 7 (crane): the list does not settle its sense (n02012849 crane (wading bird); n00001740 crane (that "
        "which is perceived or known or inferred); n99999999 crane (n99999999)); "
        "name it: 'crane n02012849' in a .txt, a wnid or definition column in a .csv (or an ImageFolder's "
        "classes.csv)")
    assert undecided_hint(row, SenseChoice(None, "undecided")) == (
        "class 7 (crane): the list does not settle its sense (); name it: 'crane n00000000' in a .txt, a wnid or "
        "definition column in a .csv (or an ImageFolder's classes.csv)")
