"""Prompt templates: ids, required variables, and that each prompt carries what its stage needs."""

from __future__ import annotations

import pytest

from synthdiv.errors import SynthdivError, UnknownBackendError
from synthdiv.models.llm import templates

VARS = {
    "disambiguate.v1": {"name": "crane", "definition": "large long-necked wading bird", "others": ["crane", "heron"],
                        "k": 4},
    "disambiguate.v2": {"name": "crane", "definition": "large long-necked wading bird; of marshes", "others": ["heron"],
                        "k": 3},
    "disambiguate.v3": {"name": "crane", "definition": "lifts and moves heavy objects", "others": ["crane"],
                        "senses": ["wading bird: large long-necked wading bird"], "k": 3},
    "contexts.v1": {"description": "a goldfish", "k": 7},
    "styles.v1": {"k": 9},
    "styles.class.v1": {"description": "a goldfish", "k": 3},
}


def test_required_templates_exist() -> None:
    assert set(VARS) <= set(templates.list_templates())


@pytest.mark.parametrize("template_id", sorted(VARS))
def test_render_gives_chat_messages_and_id(template_id: str) -> None:
    messages, tid = templates.render(template_id, **VARS[template_id])
    assert tid == template_id
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert f"JSON list of {VARS[template_id]['k']} strings" in user
    for key in ("name", "definition", "description"):
        if key in VARS[template_id]:
            assert VARS[template_id][key] in user


def test_disambiguate_names_confusable_classes_and_omits_empty_parts() -> None:
    messages, _ = templates.render("disambiguate.v1", **VARS["disambiguate.v1"])
    assert '"heron"' in messages[1]["content"]
    bare, _ = templates.render("disambiguate.v1", name="drake", definition=None, others=[], k=2)
    assert "Meaning" not in bare[1]["content"] and "confuse" not in bare[1]["content"]


def test_disambiguate_v3_names_the_other_senses_and_asks_for_noun_phrases() -> None:
    messages, _ = templates.render("disambiguate.v3", **VARS["disambiguate.v3"])
    user = messages[-1]["content"]
    assert 'Other meanings of "crane" that are NOT this class: wading bird: large long-necked' in user
    assert "noun phrases" in user and '"crane, lifts and moves heavy objects"' in user
    bare, _ = templates.render("disambiguate.v3", name="drake", definition=None, others=[], senses=[], k=2)
    assert "Other meanings" not in bare[-1]["content"] and "form of one" not in bare[-1]["content"]


def test_disambiguate_v2_example_comes_from_the_class_itself() -> None:
    messages, _ = templates.render("disambiguate.v2", **VARS["disambiguate.v2"])
    user = messages[1]["content"]
    assert '"crane, large long-necked wading bird"' in user and "grey" not in user
    bare, _ = templates.render("disambiguate.v2", name="drake", definition=None, others=[], k=2)
    assert "form of one description" not in bare[1]["content"]


def test_family_name_resolves_to_latest_version() -> None:
    _, tid = templates.render("contexts", description="a dog", k=2)
    assert tid == "contexts.v1"


def test_unknown_template_lists_valid_ids() -> None:
    with pytest.raises(UnknownBackendError, match="disambiguate.v1") as err:
        templates.render("nope.v3", k=1)
    assert isinstance(err.value, SynthdivError)


def test_missing_or_unknown_variables_are_refused() -> None:
    with pytest.raises(TypeError, match="missing"):
        templates.render("contexts.v1", k=2)
    with pytest.raises(TypeError, match="unknown"):
        templates.render("styles.v1", k=2, colour="red")
