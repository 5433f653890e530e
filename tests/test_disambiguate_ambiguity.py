"""Ambiguous class names: detection (tokenizer collisions, number, WordNet senses), candidate checks, grounded
candidates and the rule that no ambiguous class ends with its bare name -- on real ImageNet-1k metadata, on plain
class files and on random subsets of ImageNet-1k (the rule must hold for any list, not one it was tuned on)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthdiv.core.rundir import RunDir
from synthdiv.lexicon.wordnet import base_form, noun_senses, wordnet_dir
from synthdiv.stages.disambiguate.ambiguity import detect_ambiguity, token_ids_of
from synthdiv.stages.disambiguate.grounded import definition_phrase
from synthdiv.stages.disambiguate.validate import ClassNames, sentence_reason
from synthdiv.stages.prompts.text import fill, repair_mention
from synthdiv.utils.io import read_jsonl
from tests.llm.fakes import FakeLLM

CLIP = {"backend": "open_clip", "model": "embedded", "device": "cpu"}
needs_wordnet = pytest.mark.skipif(wordnet_dir() is None, reason="WordNet (Debian wordnet-base) is not installed")
# The ImageNet-1k homonyms of the report: two cranes, two maillots, the corgi and the sweater; kite, tank, mouse.
HOMONYMS = ["n02012849", "n03126707", "n03710637", "n03710721", "n02113186", "n02963159", "n01608432", "n04389033",
            "n03793489"]
# What a small model answered in the report: sentences, and a candidate naming another class.
BAD_ANSWER = ('["This class contains a foot-operated mouse", "Mouse, hand-operated electronic device: \\"cardigan\\"", '
              '"The class is a crane, a large bird"]')


def _tokens(texts: list[str]) -> list[tuple[int, ...]]:
    return token_ids_of(object())(texts)  # CLIP's BPE, as open_clip ships it


# ---------------------------------------------------------------------------------------------- detection


@pytest.mark.wordnet  # the homonyms' senses come from WordNet
def test_collisions_are_found_in_token_space_and_numbers_by_base_form() -> None:
    rows = [{"name": n} for n in ("Cardigan", "cardigan", "crane.", "Crane", "mouse", "mice", "goldfish")]
    amb = detect_ambiguity(rows, _tokens)
    assert amb[0].with_classes == [1] and "collision" in amb[0].kinds  # CLIP lower-cases: same tokens
    assert "collision" not in amb[2].kinds  # "crane." keeps its period as a token
    assert "number" in amb[4].kinds and amb[4].with_classes == [5]
    assert "collision" not in amb[6].kinds and "number" not in amb[6].kinds


@needs_wordnet
def test_polysemy_and_own_sense_from_wordnet() -> None:
    (crane, goldfish) = detect_ambiguity([{"name": "crane", "wnid": "n03126707"}, {"name": "goldfish"}], _tokens)
    assert crane.kinds == ["polysemy"] and crane.reasons == ["5 noun senses in WordNet"]
    assert crane.own_sense.hypernym == "lifting device"
    assert "wading bird" in [s.hypernym for s in crane.other_senses]
    assert "n03126707" not in [s.wnid for s in crane.other_senses]
    assert not goldfish.ambiguous
    assert base_form("mice") == "mouse" and base_form("boxes") == "box" and len(noun_senses("kites")) == 4


def test_without_wordnet_collisions_still_count_and_it_says_so_once(monkeypatch, caplog) -> None:
    monkeypatch.setattr("synthdiv.stages.disambiguate.ambiguity.wordnet_dir", lambda: None)
    with caplog.at_level(logging.WARNING):
        amb = detect_ambiguity([{"name": "Crane"}, {"name": "crane"}, {"name": "kite"}], _tokens)
    assert [a.kinds for a in amb] == [["collision"], ["collision"], []]
    assert sum("WordNet is not installed" in r.message for r in caplog.records) == 1


# ---------------------------------------------------------------------------------------------- checks


@pytest.mark.parametrize(("text", "rejected"), [
    ("This class contains a foot-operated mouse", True),
    ("The class is a crane", True),
    ("a crane is a tall bird", True),
    ("It shows a crane", True),
    ("crane, a tall grey bird that is found in marshes", False),
    ("The Cardigan Welsh corgi", False),
    ("army tank with a long gun", False),
])
def test_sentences_are_not_noun_phrases(text: str, rejected: bool) -> None:
    assert (sentence_reason(text) is not None) is rejected


def test_a_candidate_naming_another_class_is_found_after_the_own_name_is_removed() -> None:
    names = ClassNames(["Cardigan", "cardigan", "mouse", "tiger", "tiger cat"])
    assert names.named('Mouse, hand-operated electronic device: "cardigan"', {2}, ["mouse", "computer mouse"]) == 0
    assert names.named("Cardigan Welsh corgi", {0, 1}, ["Cardigan", "Cardigan Welsh corgi"]) is None
    assert names.named("a striped tiger cat", {4}, ["tiger cat"]) is None


def test_definition_phrase_is_a_short_noun_phrase() -> None:
    assert definition_phrase("large long-necked wading bird of marshes and plains in many parts of the world") == (
        "large long-necked wading bird of marshes and plains")
    assert definition_phrase("knitted jacket that is fastened up the front with buttons") == (
        "knitted jacket that is fastened up the front")
    assert definition_phrase("tights for dancers; worn on stage") == "tights for dancers"
    assert definition_phrase(None) is None and definition_phrase("  ") is None


def test_prompts_compose_the_noun_phrase_grammatically() -> None:
    assert fill("a photo of a {description}", {"description": "army tank"}) == "a photo of an army tank"
    scene = repair_mention("on a sunny beach", "Cardigan Welsh corgi")
    assert fill("a photo of {context}", {"context": scene}) == "a photo of a Cardigan Welsh corgi on a sunny beach"
    scene = repair_mention("a crane standing in a marsh", "crane (wading bird)")
    assert scene == "a crane (wading bird) standing in a marsh"


# ---------------------------------------------------------------------------------------------- the stage


def _resolve(make_config, monkeypatch, classes: dict[str, Any], llm: FakeLLM | None, **dis: Any) -> tuple[dict, list]:
    from synthdiv.engine.runner import run_stage
    from synthdiv.stages.disambiguate.stage import resolve_classes

    if llm is not None:
        monkeypatch.setattr("synthdiv.stages.disambiguate.stage.create_llm", lambda spec, cache_dir=None: llm)
    cfg = make_config(classes=classes, disambiguate={"confusable": 3, "max_retries": 0, **dis}, models={"clip": CLIP})
    run_stage(cfg, "classes", redo=True)  # hypothesis examples share one tmp_path
    summary = resolve_classes(cfg, RunDir(cfg.run_dir))
    return summary, read_jsonl(RunDir(cfg.run_dir).resolved)


def _assert_the_rule(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    ambiguous = [r for r in rows if r["ambiguity"]]
    assert summary["left_bare"] == 0 and summary["ambiguous"] == len(ambiguous)
    assert all(r["description"].casefold() != r["name"].casefold() for r in ambiguous)
    assert len(set(_tokens([r["description"] for r in rows]))) == len(rows)  # no two classes share CLIP tokens
    assert summary["distinct_token_descriptions"] == len(rows)
    assert all(sentence_reason(r["description"]) is None for r in rows)


@needs_wordnet
def test_imagenet_homonyms_without_clip_signal_take_the_grounded_sense(make_config, monkeypatch) -> None:
    llm = FakeLLM(*[BAD_ANSWER] * len(HOMONYMS))
    summary, rows = _resolve(make_config, monkeypatch, {"source": "imagenet-1k", "subset": HOMONYMS}, llm,
                             candidates=3, signal_margin=10.0)
    _assert_the_rule(summary, rows)
    assert [r["description"] for r in rows] == [
        "crane (wading bird)", "crane (lifting device)", "maillot (tights)", "tank suit", "Cardigan Welsh corgi",
        "cardigan (sweater)", "kite (hawk)", "army tank", "computer mouse"]
    assert summary["ambiguous"] == 9 and summary["ambiguous_collision"] == 6
    crane, mouse = dict(rows[0]["llm_rejected"]), dict(rows[8]["llm_rejected"])
    assert crane["The class is a crane, a large bird"].startswith("talks about the task")
    assert mouse["This class contains a foot-operated mouse"].startswith("a sentence")
    assert mouse['Mouse, hand-operated electronic device: "cardigan"'] == "names another class (Cardigan)"
    first = rows[0]
    assert first["confusable"][0] == "crane"  # the colliding class is named to the LLM first
    assert first["lemmas"] == ["crane"] and first["hypernym"] == "wading bird"
    assert rows[4]["lemmas"] == ["Cardigan", "Cardigan Welsh corgi"]


@needs_wordnet
def test_a_plain_class_file_gets_polysemy_and_number_detection(make_config, monkeypatch, tmp_path) -> None:
    path = tmp_path / "classes.txt"
    path.write_text("kite\nmouse\nmice\ngoldfish\n", encoding="utf-8")
    summary, rows = _resolve(make_config, monkeypatch, {"source": str(path)}, None, candidates=0)
    _assert_the_rule(summary, rows)
    kinds = [r["ambiguity"]["kinds"] if r["ambiguity"] else [] for r in rows]
    assert kinds == [["polysemy"], ["number", "polysemy"], ["number", "polysemy"], []]
    assert rows[0]["description"] in ("kite (plaything)", "kite (hawk)")  # a sense a photo can show
    assert rows[3]["description"] == "goldfish" and rows[3]["status"] == "no-llm"


@needs_wordnet
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_the_rule_holds_for_random_imagenet_subsets(make_config, monkeypatch, data: st.DataObject) -> None:
    from synthdiv.stages.classes.imagenet import imagenet_wnids

    wnids = list(imagenet_wnids("imagenet-1k"))
    subset = data.draw(st.lists(st.sampled_from(wnids), min_size=2, max_size=12, unique=True))
    summary, rows = _resolve(make_config, monkeypatch, {"source": "imagenet-1k", "subset": subset}, None,
                             candidates=0, signal_margin=data.draw(st.sampled_from([0.0, 0.05, 10.0])))
    _assert_the_rule(summary, rows)
