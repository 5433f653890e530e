"""The disambiguation rule (disambiguate/rule.py), table-driven: every branch by its outcome -- the order of the
candidates, the reason recorded and whether CLIP had signal."""

from __future__ import annotations

from typing import Any

import pytest

from synthdiv.stages.disambiguate.rule import choose_order


def _r(text: str, source: str, score: float | None, rank: int, margin: float | None = None,
       rejected: str | None = None) -> dict[str, Any]:
    return {"text": text, "source": source, "score": score, "rank": rank, "margin": margin, "rejected": rejected}


NAME = _r("crane", "name", 0.9, 0, rejected="ambiguous bare name")
LLM = _r("a grey crane in a marsh", "llm", 0.8, 1, margin=0.01)
HYPERNYM = _r("crane (wading bird)", "hypernym", 0.3, 2, margin=0.02)
LEMMA = _r("Grus americana", "lemma", 0.1, 3, margin=0.0)
DEFINITION = _r("crane, large long-necked wading bird", "definition", 0.5, 4, margin=0.03)
OTHER_TOKENS = _r("Crane", "llm", 0.95, 5, margin=0.5, rejected="same CLIP tokens as the name of class 1 (Crane)")
SENSE_B = _r("crane (lifting device)", "sense", 0.2, 6, margin=0.0)
SENSE_A = _r("crane (wading bird)", "sense", 0.25, 7, margin=0.0)

CASES = [
    # (id, records, ambiguous, basis, signal_margin, grounded_order, trust_images, texts, reason, signal)
    ("unambiguous: CLIP ranks all, the name included", [LLM, NAME, HYPERNYM], False, "images", 0.05, [], True,
     ["crane", "a grey crane in a marsh", "crane (wading bird)"], "clip", True),
    ("unambiguous without any basis: no signal", [NAME, LLM], False, "none", 0.05, [], True,
     ["crane", "a grey crane in a marsh"], "clip", False),
    ("ambiguous, nothing valid: the bare name is all there is", [NAME, OTHER_TOKENS], True, "images", 0.05, [],
     True, ["Crane", "crane"], "bare (no valid candidate)", False),
    ("ambiguous, real images: CLIP orders the valid ones, never the bare name nor another class's tokens",
     [NAME, OTHER_TOKENS, LEMMA, LLM, HYPERNYM], True, "images", 0.05, [], True,
     ["a grey crane in a marsh", "crane (wading bird)", "Grus americana"], "clip (signal)", True),
    ("ambiguous, images not trusted (undecided sense): grounded order, not CLIP's",
     [NAME, LLM, SENSE_B, SENSE_A], True, "images", 0.05, ["crane (wading bird)", "crane (lifting device)"], False,
     ["crane (wading bird)", "crane (lifting device)", "a grey crane in a marsh"], "grounded (sense)", False),
    ("ambiguous, a text margin at the bar is signal", [NAME, LLM, DEFINITION, HYPERNYM], True, "definition", 0.03,
     [], True, ["a grey crane in a marsh", "crane, large long-necked wading bird", "crane (wading bird)"],
     "clip (signal)", True),
    ("ambiguous, margins under the bar: grounded beats a valid LLM candidate, lemma first",
     [NAME, LLM, DEFINITION, HYPERNYM, LEMMA], True, "definition", 0.05, [], True,
     ["Grus americana", "crane (wading bird)", "crane, large long-necked wading bird", "a grey crane in a marsh"],
     "grounded (lemma)", False),
    ("ambiguous, no basis: the grounded order given breaks ties within a source",
     [NAME, SENSE_B, SENSE_A], True, "none", 0.05, ["crane (wading bird)", "crane (lifting device)"], True,
     ["crane (wading bird)", "crane (lifting device)"], "grounded (sense)", False),
    ("ambiguous, only free LLM text: it is ordered by score", [NAME, LLM, _r("a whooping crane", "llm", 0.9, 9)],
     True, "none", 0.05, [], True, ["a whooping crane", "a grey crane in a marsh"], "llm (no grounded candidate)",
     False),
    ("ambiguous, a rejected grounded candidate never leads", [NAME, {**LEMMA, "rejected": "names another class"},
                                                              HYPERNYM], True, "none", 0.05, [], True,
     ["crane (wading bird)"], "grounded (hypernym)", False),
]


@pytest.mark.parametrize(("records", "ambiguous", "basis", "signal_margin", "grounded_order", "trust_images",
                          "texts", "reason", "signal"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_the_rule(records, ambiguous, basis, signal_margin, grounded_order, trust_images, texts, reason,
                  signal) -> None:
    choice = choose_order(records, ambiguous, basis, signal_margin, grounded_order, trust_images)
    assert (choice.texts, choice.reason, choice.signal) == (texts, reason, signal)


def test_scores_of_none_rank_last_and_ties_keep_their_rank() -> None:
    records = [_r("b", "llm", None, 0), _r("a", "llm", 0.5, 2), _r("c", "llm", 0.5, 1)]
    assert choose_order(records, False, "none", 0.05, []).texts == ["c", "a", "b"]


def test_a_score_of_zero_ranks_below_a_positive_one() -> None:
    records = [_r("zero", "llm", 0.0, 0), _r("some", "llm", 0.1, 1)]
    assert choose_order(records, False, "none", 0.05, []).texts == ["some", "zero"]


def test_real_images_are_trusted_unless_said_otherwise() -> None:
    choice = choose_order([NAME, LLM, LEMMA], True, "images", 0.05, [])
    assert (choice.reason, choice.signal) == ("clip (signal)", True)


def test_an_ambiguous_bare_name_is_never_valid_even_unrejected() -> None:
    bare = {**NAME, "rejected": None}
    choice = choose_order([bare], True, "images", 0.05, [])
    assert choice.reason == "bare (no valid candidate)"
    assert choose_order([bare, LEMMA], True, "images", 0.05, []).texts == ["Grus americana"]


def test_a_grounded_text_missing_from_the_given_order_goes_after_those_in_it() -> None:
    stray = _r("crane (origami)", "sense", 0.9, 8, margin=0.0)
    choice = choose_order([NAME, stray, SENSE_A], True, "none", 0.05, ["crane (wading bird)"])
    assert choice.texts == ["crane (wading bird)", "crane (origami)"]
