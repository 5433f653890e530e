"""Template filling, class mentions, repair, and the CLIP token limit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdiv.stages.prompts.text import (
    MAX_PROMPT_TOKENS,
    count_tokens,
    fill,
    mentions,
    repair_mention,
    text_key,
    trim_to_tokens,
    with_article,
)


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("a photo of a {description}", {"description": "goldfish"}, "a photo of a goldfish"),
        ("a photo of a {description}", {"description": "owl"}, "a photo of an owl"),
        ("a photo of a {description}", {"description": "a crane, a tall wading bird"},
         "a photo of a crane, a tall wading bird"),
        ("a photo of a {description}", {"description": "the Eiffel tower"}, "a photo of the Eiffel tower"),
        ("a {style} of a {description}", {"style": "oil painting", "description": "goldfish"},
         "an oil painting of a goldfish"),
        ("A {style} of {context}", {"style": "origami", "context": "a goldfish  on a table"},
         "An origami of a goldfish on a table"),
        ("{description}, {style}", {"description": "goldfish", "style": "sketch"}, "goldfish, sketch"),
    ],
)
def test_fill_agrees_articles(template, values, expected):
    assert fill(template, values) == expected


def test_with_article_exceptions():
    assert with_article("unicorn") == "a unicorn"
    assert with_article("hourglass") == "an hourglass"
    assert with_article("An apple") == "An apple"


def test_text_key_ignores_case_punctuation_and_articles():
    assert text_key("A Goldfish, on THE table!") == text_key("goldfish on table") == "goldfish on table"


def test_mentions_whole_description_with_plural():
    assert mentions("two goldfishes in a bowl", "a goldfish")
    assert mentions("Tiger-Cat sleeping", "tiger cat")
    assert not mentions("a cat sleeping", "tiger cat")
    assert not mentions("a crane in a marsh", "a crane, a tall wading bird")


def test_repair_prefixes_scene_without_class():
    assert repair_mention("on a wooden table in morning light", "goldfish") == (
        "a goldfish on a wooden table in morning light"
    )
    assert repair_mention("Sunset over a lake", "owl") == "an owl, sunset over a lake"


def test_repair_replaces_bare_head_with_full_description():
    desc = "a crane, a tall wading bird"
    fixed = repair_mention("a crane standing in a marsh at dawn", desc)
    assert fixed == "a crane, a tall wading bird standing in a marsh at dawn"
    assert mentions(fixed, desc)


def test_token_count_and_trim():
    assert count_tokens("a photo of a goldfish") == 5
    long = " ".join(["a goldfish in a bowl"] * 30)
    assert count_tokens(long) > MAX_PROMPT_TOKENS
    cut = trim_to_tokens(long, 12)
    assert count_tokens(cut) <= 12 and long.startswith(cut) and cut.endswith(("bowl", "goldfish", "in", "a"))
    assert trim_to_tokens("short", 12) == "short"
    assert trim_to_tokens("supercalifragilisticexpialidocious", 1) == ""


@pytest.mark.parametrize(
    ("text", "ok"),
    [("# 6", False), ("1", False), ("2023-06-29 22:07:12.1292.148,49211", False), ("cartoon", True),
     ("on a wooden table in 1990", True), ("3D render", True)],
)
def test_looks_like_text(text, ok):
    from synthdiv.stages.prompts.text import looks_like_text

    assert looks_like_text(text) is ok


@pytest.mark.parametrize("text", ["Sorry, I cannot do that", "Here are 5 scenes:", "a JSON list of strings"])
def test_chatter(text):
    from synthdiv.stages.prompts.text import is_chatter

    assert is_chatter(text)
    assert not is_chatter("a goldfish in a pond")


@pytest.mark.parametrize(
    ("item", "style"),
    [('"crystal-glass art" - Persian glass art (finely polished)', "crystal-glass art"),
     ("An Oil Painting.", "oil painting"), ("watercolor: soft washes of colour", "watercolor"),
     ("mosaic (small tiles)", "mosaic"), ("https://www.example.com/pencil-sketch", None), ("# 6", None),
     ("a very long style name that goes on and on", None)],
)
def test_style_items_are_cleaned(item, style):
    from synthdiv.stages.prompts.styles import style_processor

    assert style_processor()(item)[0] == style


@pytest.mark.parametrize("text", ["petworksImporter(", "x = [1]", "luxBritishAnim", "2 JSONs. Say it again"])
def test_code_and_chatter_are_not_items(text):
    from synthdiv.stages.prompts.text import is_chatter, looks_like_text

    assert is_chatter(text) or not looks_like_text(text)


def test_rambling_context_is_rejected():
    from synthdiv.config.prompts import PromptsConfig
    from synthdiv.stages.prompts.contexts import context_processor

    process = context_processor("goldfish", PromptsConfig(max_context_words=8))
    assert process("in a pond at dusk")[0] == "a goldfish in a pond at dusk"
    assert process("the day begins with the soft glow of a sunny morning around a table")[2] == "over 8 words"


_WORDS = ["crane", "tall", "wading", "bird", "tiger", "cat", "(bird)", "a", "the", "sea-lion", "owl's", "O'Neil"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_WORDS), min_size=1, max_size=5).map(" ".join).filter(lambda d: text_key(d)),
    st.lists(st.sampled_from([*_WORDS, "in", "on", "marsh", "standing", ",", "at", "dawn"]), max_size=8).map(" ".join),
)
def test_repair_always_names_the_description(description, item):
    fixed = repair_mention(item or "somewhere", description)
    assert mentions(fixed, description), (description, item, fixed)
    assert mentions(fill("a photo of a {description}", {"description": description}), description)
