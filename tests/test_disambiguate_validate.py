"""The checks on a candidate description (disambiguate/validate.py), table-driven: the reason each text is refused
with, or None -- a sentence or task talk, a text naming another class (by the longest name, after the class's own
phrases are taken out), and a text about another sense of the name (on constructed senses, no WordNet needed)."""

from __future__ import annotations

import pytest

from synthdiv.stages.disambiguate.ambiguity import Ambiguity, Sense
from synthdiv.stages.disambiguate.validate import CandidateCheck, ClassNames, sentence_reason

SENTENCE = "a sentence, not a noun phrase"


@pytest.mark.parametrize(("text", "own_words", "reason"), [
    ("This class contains a foot-operated mouse", (), SENTENCE),
    ("  these are cranes", (), SENTENCE),
    ('"It shows a crane', (), SENTENCE),
    ("thistle in a meadow", (), None),
    ("The class is a crane", (), "talks about the task ('class'), not the thing"),
    ("crane of the CATEGORY bird", (), "talks about the task ('CATEGORY'), not the thing"),
    ("first class ticket", ("first", "class", "ticket"), None),
    ("first Class ticket", ("CLASS",), None),
    ("first class ticket, a description", ("class",), "talks about the task ('description'), not the thing"),
    ("a crane is a tall bird", (), SENTENCE),
    ("crane that contains nothing", (), None),
    ("crane, a tall grey bird that is found in marshes", (), None),
    ("army tank with a long gun", (), None),
])
def test_sentence_reason(text: str, own_words: tuple[str, ...], reason: str | None) -> None:
    assert sentence_reason(text, own_words) == reason


def test_within_finds_the_classes_whose_every_word_is_given() -> None:
    names = ClassNames(["tiger", "tiger cat", "cat", "lion"])
    assert names.within({"tiger", "cat"}) == {0, 1, 2}
    assert names.within({"cat", "lion"}) == {2, 3}
    assert names.within({"zebra"}) == set()


@pytest.mark.parametrize(("names", "text", "exclude", "own_phrases", "named"), [
    (["ox", "x1", "a"], "an ox and a x1", set(), [], None),  # names of one or two letters are not spotted
    (["cat"], "a cat on a mat", set(), [], 0),
    (["cat"], "a cat on a mat", {0}, [], None),
    (["shark", "tiger shark"], "a tiger shark", set(), [], 1),  # the longest name first
    (["tiger shark", "shark fin"], "tiger shark fin", set(), [], 0),  # then the first in the text
    (["tiger", "cardigan"], "tiger in a cardigan", {1}, ["cardigan"], 0),
    (["Cardigan", "Welsh corgi"], "Cardigan Welsh corgi", {0}, ["Cardigan", "Cardigan Welsh corgi"], None),
    (["tiger cat"], "tiger striped cat", set(), ["striped"], None),  # an own phrase breaks the text there
    (["tiger cat"], "tiger cat", set(), [""], 0),
])
def test_named(names: list[str], text: str, exclude: set[int], own_phrases: list[str], named: int | None) -> None:
    assert ClassNames(names).named(text, exclude, own_phrases) == named


# Two senses of "crane", as sense_of gives them (shortened glosses); no WordNet needed.
BIRD = Sense("n02012849", ("crane",), "tall wading bird of the fen", "wading bird", True)
MACHINE = Sense("n03126707", ("crane", "derrick"), "big machine with a boom that lifts heavy loads up at the docks",
                "lifting device", True)
POET = Sense("n10914447", ("Crane", "Hart Crane"), "United States poet", None, False)
OFF_MACHINE = "about another sense (lifting device: big machine with a boom that lifts heavy)"
OFF_POET = "about another sense (Crane: United States poet)"


def _check(own: Sense | None = BIRD, others: tuple[Sense, ...] = (MACHINE, POET),
           own_phrases: tuple[str, ...] = ("crane", "whooper")) -> CandidateCheck:
    names = ["crane", "tiger", "tiger cat", "first class ticket", "Crane"]
    amb = Ambiguity(kinds=["polysemy"], own_sense=own, other_senses=list(others))
    return CandidateCheck(0, names, ClassNames(names), list(own_phrases), amb)


@pytest.mark.parametrize(("text", "reason"), [
    ("crane", None),  # the name alone says nothing of a sense
    ("the crane", None),
    ("tall wading bird", None),
    ("crane with a boom", OFF_MACHINE),
    ("derrick", OFF_MACHINE),  # another sense's lemma
    ("lifting device", OFF_MACHINE),  # its hypernym
    ("crane with a boom in the fen", None),  # as many words of its own sense: not refused
    ("bird, often by a boom", None),  # stop words and "often" are no evidence
    ("bird with that boom", None),
    ("fen boom", None),  # three letters are a word
    ("bird up boom", None),  # two letters are not
    ("whooper machine", None),  # an own phrase besides the name counts for the class's sense
    ("crane, a big machine", OFF_MACHINE),
    ("United States crane", OFF_POET),  # the first sense is not the only one checked
    ("a crane is a big machine", SENTENCE),
    ("crane with a tiger", "names another class (tiger)"),
])
def test_candidate_check(text: str, reason: str | None) -> None:
    assert _check().reason(text) == reason


@pytest.mark.parametrize(("check", "text"), [
    (_check(others=()), "big machine with a boom"),  # no other sense
    (_check(own=None), "big machine with a boom"),  # own sense unknown: every sense may be the class's
])
def test_without_another_sense_or_its_own_any_sense_passes(check: CandidateCheck, text: str) -> None:
    assert check.reason(text) is None


def test_words_both_senses_share_are_evidence_for_the_own_one() -> None:
    nesting = Sense("n00000001", ("crane",), "bird that nests near a boom", "wading bird", True)
    assert _check(own=nesting).reason("heavy boom") is None  # boom: both senses'; heavy: the machine's alone
    assert _check(own=BIRD).reason("heavy boom") == OFF_MACHINE


def test_the_class_own_words_are_no_task_talk() -> None:
    names = ["ticket", "first class ticket"]
    check = CandidateCheck(1, names, ClassNames(names), ["first class ticket"], Ambiguity())
    assert check.reason("first class ticket stub") is None
    assert check.reason("first class ticket, a category of fare") == "talks about the task ('category'), not the thing"


def test_names_inside_the_own_name_and_same_names_are_never_another_class() -> None:
    names = ["tiger", "tiger cat", "Tiger cat", "cat"]
    check = CandidateCheck(1, names, ClassNames(names), ["tiger cat"], Ambiguity(), same_name={2})
    assert check.reason("a cat striped like a tiger") is None
    assert check.reason("a Tiger cat") is None
    tiger = CandidateCheck(0, names, ClassNames(names), ["tiger"], Ambiguity())
    assert tiger.reason("a tiger beside a cat") == "names another class (cat)"
    assert tiger.reason("a tiger cat") == "names another class (cat)"  # its own name taken out first
