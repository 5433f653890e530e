"""Debris checks of LLM text (synthdiv.lexicon.debris) and where they apply: disambiguate candidates, contexts,
styles (a rendition head word, the built-in vocabulary filling the LLM's gap, marked in the provenance).

The refused strings are the quickstart's own debris (SmolLM2-135M, issue 21)."""

from __future__ import annotations

import json
import logging

import pyarrow.parquet as pq
import pytest

from synthdiv.lexicon.debris import RULES, debris_reason, drop_dangling, words_of
from synthdiv.lexicon.wordnet import is_english_word, wordnet_dir

needs_wordnet = pytest.mark.wordnet  # skipped where WordNet is not installed (tests/conftest.py)

# (text, the rule that refuses it, a part of its reason). Each rule has cases; the unknown-word ones need WordNet.
REFUSED = [
    ('herode-1": "Trouser', "fragment", "JSON key/value fragment"),
    ('name": "sandal shoes', "fragment", "JSON key/value fragment"),
    ('type": "sandal', "fragment", "JSON key/value fragment"),
    ('name": "coat', "fragment", "JSON key/value fragment"),
    ('a goldfish in a pond", "on a table', "fragment", "JSON key/value fragment"),
    ("label: a red coat", "fragment", "JSON key/value fragment"),
    ('a "red" coat', "markup", "stray '\"'"),
    ("a coat {with} buttons", "markup", "stray '{'"),
    ("a coat [on a hanger]", "markup", "stray '['"),
    ("a coat\\n on a hanger", "markup", "stray '\\\\'"),
    ("a **red** coat", "markup", "stray '*'"),
    ("/coat, an outer garment", "markup", "stray '/'"),
    ("'coat on a hanger", "markup", "stray \"'\""),
    ("a coat (on a hanger", "markup", "unbalanced parentheses"),
    ("on a wooden table in morning light (pick one example)", "echo", '"(pick one example)"'),
    ("a coat, e.g. a trench coat", "echo", '"e.g."'),
    ("an example of a coat", "echo", '"example"'),
    ("for instance a coat on a hanger", "echo", '"for instance"'),
    ("fabrics such as wool and tweed", "echo", '"such as"'),
    ("here is a coat on a hanger", "echo", '"here is"'),
    ("a list of coats", "echo", '"list of"'),
    ("scene 2 in a park", "echo", '"scene 2"'),
    ("a coat in a park ...", "echo", '"..."'),
    ("first item", "echo", '"item"'),
    ("break below the last 4 characters", "echo", '"4 characters"'),
    ("not sure what these look like, but on the kitchen table", "echo", '"not sure"'),
    ("a hard candish of", "dangling", 'ends on "of"'),
    ("a dishonesty of", "dangling", 'ends on "of"'),
    ("a coat hanging on a hook with", "dangling", 'ends on "with"'),
    ("a coat hanging on a hook,", "dangling", "ends on ','"),
    pytest.param("stintyshkovd's", "unknown word", '"stintyshkovd" is not an English word', marks=needs_wordnet),
    pytest.param("a hard candish", "unknown word", '"candish" is not an English word', marks=needs_wordnet),
    pytest.param("herode trousers", "unknown word", '"herode" is not an English word', marks=needs_wordnet),
]

ACCEPTED = [
    "oil painting", "pencil sketch", "watercolor", "3D render", "origami", "stained glass", "video game render",
    "a crane standing in a marsh at dawn", "sneaker (shoe)", "a dog's bed in a child's bedroom", "the dogs' kennel",
    "a café in Paris", "sun-dappled forest floor", "a 1920s photograph", "it isn't raining", "geese flying higher",
    "a sneaker lying on wet pavement, lit by neon signs", "a selfie on a smartphone", "open 24/7, rain and/or snow",
]


@pytest.mark.parametrize(("text", "rule", "reason"), REFUSED)
def test_debris_is_refused_with_its_reason(text, rule, reason):
    assert reason in (debris_reason(text) or ""), debris_reason(text)


@pytest.mark.parametrize("text", ACCEPTED)
@needs_wordnet
def test_clean_phrases_pass(text):
    assert debris_reason(text) is None


@pytest.mark.parametrize("rule", [r.name for r in RULES])
def test_each_rule_is_needed(rule):
    """Without any one rule, each of its cases is accepted or refused for another reason: removing a rule fails the
    table above, and a rule without cases fails here."""
    cases = [p.values if hasattr(p, "values") else p for p in REFUSED]
    mine = [(text, reason) for text, r, reason in cases if r == rule]
    assert mine, f"no case refused by the rule {rule!r}"
    if rule == "unknown word" and wordnet_dir() is None:
        pytest.skip("WordNet is not installed")
    without = tuple(r for r in RULES if r.name != rule)
    for text, reason in mine:
        assert reason not in (debris_reason(text, rules=without) or ""), text


@needs_wordnet
def test_the_class_names_own_words_and_characters_are_allowed():
    assert debris_reason("a herode on a shelf") is not None
    assert debris_reason("a herode on a shelf", names=["herode"]) is None
    assert debris_reason("a t-shirt_top folded on a bed", names=["t-shirt_top"]) is None
    assert debris_reason("a t-shirt top folded on a bed", names=["t-shirt_top"]) is None
    assert debris_reason("two baggages", names=["bag"]) is None  # a word, not the name inside another word


def test_without_wordnet_the_lexicon_is_skipped_and_said_once(monkeypatch, caplog):
    from synthdiv.lexicon import debris

    monkeypatch.setattr("synthdiv.lexicon.wordnet.wordnet_dir", lambda: None)
    monkeypatch.setattr("synthdiv.lexicon.debris.wordnet_dir", lambda: None)
    debris._have_lexicon.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="synthdiv.lexicon.debris"):
            assert debris_reason("stintyshkovd's") is None
            assert debris_reason("a hard candish") is None
            assert debris_reason("a hard candish of") is not None  # the other rules still apply
        assert sum("WordNet" in r.message for r in caplog.records) == 1
    finally:
        debris._have_lexicon.cache_clear()


@needs_wordnet
@pytest.mark.parametrize(("word", "known"), [
    ("standing", True), ("painted", True), ("taller", True), ("geese", True), ("ran", True), ("better", True),
    ("softly", True), ("x-ray", True), ("candish", False), ("stintyshkovd", False), ("the", False),
])
def test_is_english_word(word, known):
    assert is_english_word(word) is known


def test_words_of_and_drop_dangling():
    assert words_of("The Owl’s nest, dogs' beds; isn't it") == ["the", "owl", "nest", "dogs", "beds", "is", "it"]
    assert drop_dangling("a crane in a marsh at") == "a crane in a marsh"
    assert drop_dangling("a crane with,") == "a crane"
    assert drop_dangling("a crane in a marsh") == "a crane in a marsh"


# -- where the checks apply ----------------------------------------------------------------------------------------


@needs_wordnet
@pytest.mark.parametrize(("item", "reason"), [
    ("a hard candish of", 'ends on "of"'), ("a dishonesty of", 'ends on "of"'),
    ("stintyshkovd's", '"stintyshkovd" is not an English word'), ("vintage", "not a rendition"),
    ("dishonesty", "not a rendition"), ("translation art", "not a rendition"), ("still", "not a rendition"),
    ('paint", "oil painting', "JSON key/value fragment"),
])
def test_style_processor_refuses_debris_and_non_renditions(item, reason):
    from synthdiv.stages.prompts.styles import style_processor

    assert reason in (style_processor()(item)[2] or "")


@needs_wordnet
@pytest.mark.parametrize("style", ["oil painting", "pencil sketch", "watercolors", "3D render", "origami",
                                   "plush toy", "crystal-glass art", "black and white photograph", "pixel art",
                                   "pop-art poster", "still life"])
def test_renditions_pass(style):
    from synthdiv.stages.prompts.styles import style_processor

    assert style_processor()(style) == (style, None, None)


@needs_wordnet
def test_every_builtin_style_is_a_clean_rendition():
    from synthdiv.stages.prompts.styles import BUILTIN_STYLES, style_processor

    process = style_processor()
    assert len(set(BUILTIN_STYLES)) == len(BUILTIN_STYLES) >= 32
    for style in BUILTIN_STYLES:
        text, _, reason = process(style)
        assert reason is None and text.casefold() == style.casefold(), (style, reason)


def test_builtin_styles_are_a_seeded_choice():
    from synthdiv.stages.prompts.styles import BUILTIN_STYLES, builtin_styles

    assert builtin_styles(5, 0) == builtin_styles(5, 0)
    assert builtin_styles(5, 0) != builtin_styles(5, 1)
    assert "origami" not in builtin_styles(len(BUILTIN_STYLES), 0, exclude=["Origami"])
    assert len(builtin_styles(1000, 0)) == len(BUILTIN_STYLES) and builtin_styles(0, 0) == []


@needs_wordnet
def test_context_processor_refuses_debris():
    from synthdiv.config.prompts import PromptsConfig
    from synthdiv.stages.prompts.contexts import context_processor

    process = context_processor("a crane, a tall wading bird", PromptsConfig(max_context_tokens=20))
    assert process("on a wooden table in morning light (pick one example)")[2] == \
        'repeats the instructions ("(pick one example)")'
    assert process('in a marsh", "on a lake')[2].startswith("is a JSON key/value fragment")
    assert process("a crane standing in a marsh at dawn") == ("a crane, a tall wading bird standing in a marsh at dawn",
                                                              "repaired", None)
    trimmed = process("a crane, a tall wading bird in a marsh with reeds and lilies and frogs of")[0]
    assert trimmed is None or trimmed.split()[-1] not in {"of", "and", "with"}


@needs_wordnet
@pytest.mark.parametrize(("item", "scene"), [
    ("true colors", False), ("chilly mum", False), ("t-shirt top", False), ("translation art", False),
    ("on a wooden kitchen table", True), ("under the sea", True), ("swimming among reeds", True),
    ("a goldfish in a pond at night", True), ("outdoors at dusk", True),
])
def test_a_context_must_be_a_scene(item, scene):
    from synthdiv.config.prompts import PromptsConfig
    from synthdiv.stages.prompts.contexts import context_processor

    reason = context_processor("a pullover", PromptsConfig())(item)[2]
    assert (reason is None) == scene, reason
    assert scene or reason.startswith("not a scene")


@needs_wordnet
def test_disambiguate_candidates_refuse_debris(make_config):
    from synthdiv.stages.disambiguate.propose import request

    cfg = make_config()
    call, _ = request({"name": "trouser", "index": 0}, [], cfg.disambiguate, 0)
    validate = call["validate"]
    for item in ('herode-1": "Trouser', 'name": "trouser legs', "a trouser, e.g. jeans"):
        assert validate(item) is not None, item
    assert validate('herode-1": "Trouser').startswith("is a JSON key/value fragment")
    assert validate("trouser (a garment extending from the waist to the knee)") is None


# -- the built-in styles in the stage's artifacts ---------------------------------------------------------------------


@needs_wordnet
def test_builtin_styles_fill_the_gap_and_are_marked(make_config, write_resolved, scripted_llm, tmp_path):
    from synthdiv.stages.prompts.stage import build_prompts
    from synthdiv.stages.prompts.styles import BUILTIN_STYLES, BUILTIN_STYLES_ID, builtin_styles

    cfg = make_config(prompts={"contexts_per_class": 0, "styles": 3, "batch_size": 3, "max_retries": 0,
                               "max_requests": 1, "clip_dedup": False, "proportions": {"style": 1}})
    run = write_resolved(cfg.run_dir, [("goldfish", "goldfish", 3)])
    scripted_llm.enqueue('["a hard candish of", "pencil sketch", "stintyshkovd\'s"]')
    summary = build_prompts(cfg, run)

    doc = json.loads(run.styles.read_text())
    fill = builtin_styles(2, cfg.seed, exclude=["pencil sketch"])
    assert doc["styles"] == ["pencil sketch", *fill] and doc["builtin"] == fill
    assert set(fill) <= set(BUILTIN_STYLES)
    assert summary["styles_builtin"] == 2 and summary["styles_short"] == 0
    rows = {r["style"]: r for r in pq.read_table(run.prompts).to_pylist() if r["kind"] == "style"}
    assert rows["pencil sketch"]["llm_id"] == "fake:scripted"
    assert rows["pencil sketch"]["template_id"].startswith("styles.v2+style:")
    for style in fill:
        assert rows[style]["llm_id"] is None and rows[style]["template_id"].startswith(f"{BUILTIN_STYLES_ID}+style:")

    # a reused styles file keeps the mark
    reuse = make_config(run_dir=str(tmp_path / "again"),
                        prompts={"contexts_per_class": 0, "styles": 3, "styles_file": str(run.styles),
                                 "proportions": {"style": 1}})
    again = write_resolved(reuse.run_dir, [("goldfish", "goldfish", 3)])
    build_prompts(reuse, again)
    assert json.loads(again.styles.read_text())["builtin"] == fill
