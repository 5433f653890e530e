"""The sense of a plain class name, read from its list (WordNet relatedness) and from real images (calibrated CLIP):
the senses each list of benchmarks/data/sense_lists.json is about, the two senses of one word in two lists, what
stays undecided, and CLIP that decides only where its preference stands out from unrelated inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthdiv.lexicon.relatedness import information_content, lin_similarity
from synthdiv.lexicon.wordnet import noun_senses, wordnet_dir
from synthdiv.stages.disambiguate.senses import DOMAIN_MARGIN, SenseChoice, clip_sense, list_senses, unrelated_images

needs_wordnet = pytest.mark.skipif(wordnet_dir() is None, reason="WordNet (Debian wordnet-base) is not installed")
LISTS = json.loads((Path(__file__).parents[1] / "benchmarks" / "data" / "sense_lists.json").read_text())
CRANE_BIRD, CRANE_MACHINE, CRANE_WRITER = "n02012849", "n03126707", "n10914447"
BAT_ANIMAL = "n02139199"
BAT_SPORTS = {"n02806379", "n03132076", "n04292414"}


def _choose(names: list[str]) -> dict[str, SenseChoice | None]:
    rows = [{"name": n} for n in names]
    return dict(zip(names, list_senses(rows, [len(noun_senses(n)) >= 2 for n in names]), strict=True))


@needs_wordnet
def test_lin_similarity_prefers_a_shared_specific_ancestor() -> None:
    heron = noun_senses("heron")[-1]  # the wading bird
    assert lin_similarity(CRANE_BIRD, heron) > lin_similarity(CRANE_WRITER, heron) > 0
    assert lin_similarity(CRANE_BIRD, CRANE_BIRD) == 1.0
    assert lin_similarity(CRANE_BIRD, heron) == lin_similarity(heron, CRANE_BIRD)
    assert information_content("n00001740") == 0.0  # entity, the root, says nothing
    assert information_content(CRANE_BIRD) > information_content("n01503061") > 0  # a crane says more than "bird"


@needs_wordnet
def test_at_least_95_percent_of_the_benchmark_names_take_their_lists_sense() -> None:
    right = total = 0
    for domain, names in LISTS.items():
        if domain.startswith("_"):
            continue
        chosen = _choose(list(names))
        for name, fits in names.items():
            if fits:
                total += 1
                right += chosen[name] is not None and chosen[name].wnid in fits
    assert total >= 70 and right / total >= 0.95, (right, total)


@needs_wordnet
def test_one_word_in_two_lists_takes_two_senses() -> None:
    animals = _choose(list(LISTS["animals"]))["bat"]
    sports = _choose(list(LISTS["sports"]))["bat"]
    assert (animals.wnid, animals.evidence) == (BAT_ANIMAL, "list (wordnet)")
    assert sports.wnid in BAT_SPORTS and sports.evidence == "list (wordnet)"
    assert _choose(["crane", "heron", "stork", "flamingo"])["crane"].wnid == CRANE_BIRD
    assert _choose(["crane", "forklift", "bulldozer", "excavator"])["crane"].wnid == CRANE_MACHINE


@needs_wordnet
def test_the_margin_is_over_a_rival_of_another_domain() -> None:
    choice = _choose(list(LISTS["tools"]))["saw"]
    ranked = list(choice.scores)
    # the hand saw and the power saw are one domain: the rival of the winner is the saying ("an old saw")
    assert set(ranked[:2]) == {"n04140064", "n03996145"} and lin_similarity(ranked[0], ranked[1]) >= 0.5
    assert choice.rival == ranked[2] == "n07153838" and lin_similarity(choice.wnid, choice.rival) < 0.5
    assert choice.strength == pytest.approx(choice.scores[choice.wnid] - choice.scores[choice.rival])
    assert list(choice.scores) == sorted(choice.scores, key=lambda w: -choice.scores[w])


@needs_wordnet
def test_what_the_list_cannot_separate_stays_undecided() -> None:
    bow = _choose(list(LISTS["sports"]))["bow"]  # the violin bow and the archer's bow score alike among sports gear
    assert not bow.decided and bow.wnid is None and bow.evidence == "undecided"
    assert bow.strength < DOMAIN_MARGIN and len(bow.scores) == len(noun_senses("bow"))
    # one other class is no domain, and a class alone has none
    assert not _choose(["crane", "heron"])["crane"].decided
    assert _choose(["crane"])["crane"].evidence == "undecided"


@needs_wordnet
def test_the_second_pass_reads_the_others_through_their_settled_senses() -> None:
    from synthdiv.stages.disambiguate import senses

    names = list(LISTS["sports"])
    one = pytest.MonkeyPatch()
    one.setattr(senses, "_PASSES", 1)
    try:
        first = _choose(names)
    finally:
        one.undo()
    second = _choose(names)
    changed = [n for n in names if first[n] and second[n] and first[n].scores != second[n].scores]
    assert changed  # the passes differ: the second reads the settled senses


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


@needs_wordnet
def test_clip_decides_only_where_its_preference_stands_out_from_unrelated_inputs() -> None:
    rng = np.random.default_rng(0)
    senses = [CRANE_WRITER, CRANE_BIRD, CRANE_MACHINE]
    texts = _unit(rng.normal(size=(3, 16)))
    unrelated = _unit(rng.normal(size=(12, 16)) * 0.1 + texts[0])  # everything prefers the writer a little
    # own images that prefer the bird far more than any unrelated input does
    own = _unit(texts[1] * 3 + rng.normal(size=16) * 0.01)
    choice = clip_sense(senses, texts, own, unrelated)
    assert choice is not None and (choice.wnid, choice.evidence) == (CRANE_BIRD, "images (clip)")
    assert choice.strength > 0 and choice.rival in (CRANE_WRITER, CRANE_MACHINE)
    # own images that look like the unrelated ones: CLIP prefers the writer there too, which settles nothing
    assert clip_sense(senses, texts, unrelated[0], unrelated[1:]) is None
    # too few unrelated inputs to calibrate against
    assert clip_sense(senses, texts, own, unrelated[:1]) is None


@needs_wordnet
def test_a_random_clip_does_not_decide_on_unrelated_images() -> None:
    from synthdiv.config.models import CLIPSpec
    from synthdiv.models.clip import create_scorer

    scorer = create_scorer(CLIPSpec(backend="open_clip", model="embedded", device="cpu"))
    images = scorer.embed_images(unrelated_images())
    senses = list(noun_senses("crane"))
    texts = scorer.embed_texts([f"a photo of a crane {k}." for k in range(len(senses))])
    decided = sum(clip_sense(senses, texts, images[k], np.delete(images, k, axis=0)) is not None
                  for k in range(len(images)))
    assert decided == 0


def test_unrelated_images_are_fixed() -> None:
    first, again = unrelated_images(), unrelated_images()
    assert len(first) == 8 and all(a.tobytes() == b.tobytes() for a, b in zip(first, again, strict=True))


# ---------------------------------------------------------------------------------------------- the stage


def _run_stage(make_config, tmp_path: Path, names: list[str]) -> tuple[dict, list, object]:
    from synthdiv.core.rundir import RunDir
    from synthdiv.engine.runner import run_stage
    from synthdiv.stages.disambiguate.stage import resolve_classes
    from synthdiv.utils.io import read_jsonl

    path = tmp_path / "classes.txt"
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    cfg = make_config(classes={"source": str(path)}, disambiguate={"candidates": 0, "confusable": 3},
                      models={"clip": {"backend": "open_clip", "model": "embedded", "device": "cpu"}})
    run_stage(cfg, "classes")
    summary = resolve_classes(cfg, RunDir(cfg.run_dir))
    return summary, read_jsonl(RunDir(cfg.run_dir).resolved), cfg


@needs_wordnet
def test_plain_names_without_llm_or_images_take_their_lists_sense(make_config, tmp_path, caplog) -> None:
    from rich.console import Console

    from synthdiv.stages.disambiguate.table import disambiguation_table

    names = ["crane", "heron", "stork", "bow", "bat", "eagle", "otter", "kite"]
    with caplog.at_level("WARNING"):
        summary, rows, cfg = _run_stage(make_config, tmp_path, names)
    by_name = {r["name"]: r for r in rows}
    assert by_name["crane"]["description"] == "crane (wading bird)"  # not WordNet's first sense, the writer
    assert by_name["kite"]["description"] == "kite (hawk)"
    assert by_name["bat"]["description"] in ("bat (placental)", "chiropteran")  # a lemma of that sense only
    crane = by_name["crane"]["sense"]
    assert (crane["wnid"], crane["evidence"], crane["hypernym"]) == (CRANE_BIRD, "list (wordnet)", "wading bird")
    assert crane["strength"] >= DOMAIN_MARGIN and by_name["heron"]["sense"]["evidence"] == "list (wordnet)"
    assert by_name["stork"]["sense"] is None  # one sense: nothing to settle
    assert summary["sense_list (wordnet)"] == sum(r["sense"] is not None and r["sense"]["wnid"] is not None
                                                  for r in rows)
    # what the list leaves open is listed with its senses and how to name one, and the table shows the evidence
    undecided = [r["name"] for r in rows if r["sense"] and r["sense"]["evidence"] == "undecided"]
    for name in undecided:
        assert any(f"({name}): the list does not settle its sense" in m and f"'{name} n" in m for m in caplog.messages)
    console = Console(record=True, width=250)
    console.print(disambiguation_table(cfg))
    text = console.export_text()
    assert "list (wordnet)" in text and "wading bird" in text and "senses by" in text


@needs_wordnet
def test_a_named_sense_is_kept_whatever_the_list_says(make_config, tmp_path) -> None:
    _, rows, _ = _run_stage(make_config, tmp_path, ["crane n03126707", "heron", "stork", "eagle"])
    assert rows[0]["wnid"] == CRANE_MACHINE and rows[0]["sense"]["evidence"] == "given (wnid)"
    assert rows[0]["description"] in ("crane (lifting device)", "crane, lifts and moves heavy objects")


@needs_wordnet
def test_the_llm_settles_an_undecided_sense_only_when_it_answers_the_same_both_ways() -> None:
    from synthdiv.stages.disambiguate.llm_sense import ask_llm_senses
    from tests.llm.fakes import FakeLLM

    names = list(LISTS["sports"])
    rows = [{"name": n} for n in names]
    choices = list_senses(rows, [len(noun_senses(n)) >= 2 for n in names])
    undecided = [i for i, c in enumerate(choices) if c is not None and not c.decided]
    assert [names[i] for i in undecided] == ["bow", "helmet"]
    bow = list(choices[undecided[0]].scores)[:4]
    helmet = list(choices[undecided[1]].scores)[:2]
    # the bow: "2", then "3" of the reversed four options -- the same sense; the helmet: "1" both times -- a position
    llm = FakeLLM("2", "The answer is 3.", "1", "1")
    settled = ask_llm_senses(llm, rows, choices, seed=0)
    assert (settled[undecided[0]].wnid, settled[undecided[0]].evidence) == (bow[1], "llm (list)")
    assert not settled[undecided[1]].decided and helmet[0] != helmet[1]
    assert [c for k, c in enumerate(settled) if k not in undecided] == [c for k, c in enumerate(choices)
                                                                        if k not in undecided]
    first, reverse = (call["messages"][-1]["content"] for call in llm.calls[:2])
    assert all(n in first for n in names) and 'Which meaning of "bow"' in first
    assert first.index("1. bow:") < first.index("2. bow:") and len(llm.calls) == 4
    assert first.split("1. bow:")[1].split("\n")[0] == reverse.split("4. bow:")[1].split("\n")[0]
    # an answer that is no option, and a backend that fails, settle nothing
    assert not ask_llm_senses(FakeLLM("7", "7", "x", "x"), rows, choices, seed=0)[undecided[0]].decided
    broken = FakeLLM()  # an empty queue raises
    assert ask_llm_senses(broken, rows, choices, seed=0) == choices


def test_unrelated_images_are_pinned_by_their_bytes() -> None:
    """The calibration images are part of every CLIP sense decision: a change to any of them (noise, greys, ramps,
    checkerboard, their size or seed) changes which classes CLIP may decide, so their bytes are pinned."""
    import hashlib

    def digest(images: list) -> str:
        assert all(i.mode == "RGB" for i in images)
        return hashlib.sha256(b"".join(i.tobytes() for i in images)).hexdigest()

    default = unrelated_images()
    assert [i.size for i in default] == [(64, 64)] * 8
    assert digest(default) == "550259cdf5af7d7210138dda66b53e17be529ecfe1598411f9c7b83b15db9311"
    assert digest(unrelated_images(seed=1, size=32)) == (
        "b1c9792d4d1d2dbd4a7ce7dfc0dc5cb5413b0e9078e80b08de6d927a230fa827")


def test_a_sense_choice_is_recorded_rounded_with_its_rival_and_scores() -> None:
    choice = SenseChoice("n02012849", "list (wordnet)", 0.123456, {"n02012849": 0.56789, "n03126707": 0.1}, "n03126707")
    assert choice.as_dict() == {"wnid": "n02012849", "evidence": "list (wordnet)", "strength": 0.1235,
                                "rival": "n03126707", "scores": {"n02012849": 0.5679, "n03126707": 0.1}}
    assert SenseChoice(None, "undecided").as_dict() == {"wnid": None, "evidence": "undecided", "strength": None,
                                                        "rival": None, "scores": {}}
    assert choice.decided and not SenseChoice(None, "undecided").decided


@needs_wordnet
def test_context_senses_are_the_given_synset_else_the_name_else_its_head_noun() -> None:
    from synthdiv.stages.disambiguate.senses import context_senses

    assert context_senses({"name": "bass", "wnid": "n02012849"}) == ("n02012849",)
    assert context_senses({"name": "bass", "wnid": None}) == noun_senses("bass")
    assert context_senses({"name": "plugh xyzzy bass"}) == noun_senses("bass")  # the last word, not the second
    assert context_senses({"name": "bass plugh"}) == ()  # the head noun is the last word
    assert context_senses({"name": "plugh"}) == ()


CRANE_BIRD, CRANE_MACHINE = "n02012849", "n03126707"  # senses of two domains (Lin similarity 0.08)


@needs_wordnet
def test_clip_decides_only_beyond_every_unrelated_input_with_its_margin_and_scores() -> None:
    texts = np.array([[0.0, 1.0], [1.0, 0.0]])  # the machine's text, the bird's
    own = np.array([1.0, 0.0])  # the class's images look like the bird: preference 1
    unrelated = np.array([[0.1, 0.0], [0.0, 0.1]])  # preferences 0.1 and -0.1
    choice = clip_sense([CRANE_MACHINE, CRANE_BIRD], texts, own, unrelated)
    assert choice == SenseChoice(CRANE_BIRD, "images (clip)", pytest.approx(0.9), {CRANE_BIRD: 1.0,
                                 CRANE_MACHINE: 0.0}, CRANE_MACHINE)
    assert list(choice.scores) == [CRANE_BIRD, CRANE_MACHINE]  # best first
    assert clip_sense([CRANE_BIRD], texts[:1], own, unrelated) is None  # one sense: nothing to choose
    assert clip_sense([CRANE_MACHINE, CRANE_BIRD], texts, own, unrelated[:1]) is None  # no spread to calibrate
    # an unrelated input that CLIP prefers as much as the class's own images: no decision
    assert clip_sense([CRANE_MACHINE, CRANE_BIRD], texts, own, np.array([[1.0, 0.0], [0.0, 0.1]])) is None
    # two senses of one domain: no rival, no decision
    bird = noun_senses("heron")[-1]
    assert clip_sense([CRANE_BIRD, bird], texts, own, unrelated) is None
