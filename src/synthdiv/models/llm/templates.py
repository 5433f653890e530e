"""Named, versioned prompt templates: every LLM prompt of the pipeline lives here.

A template id is ``<name>.v<version>`` ("disambiguate.v1"); it is recorded with every output made from it, so a
changed wording gets a new version instead of silently changing old runs. :func:`render` fills a template and
returns chat messages plus the id. The paper's own prompts are not public; these ask for what the method needs
(unambiguous descriptions, diverse scenes, visual styles) in the plain, example-led form small models follow best.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from synthdiv.errors import UnknownBackendError
from synthdiv.models.llm.base import Message

logger = logging.getLogger(__name__)

__all__ = ["Template", "TEMPLATES", "render", "get_template", "list_templates"]

_SYSTEM = (
    "You are a precise assistant that writes short texts for an image generator. "
    "You answer with a JSON list of strings and nothing else."
)


@dataclass(frozen=True)
class Template:
    """One prompt template.

    Attributes:
        name: Family name ("disambiguate").
        version: Bumped whenever the wording changes.
        variables: Names :func:`render` requires.
        build: ``build(**vars) -> user message``.
        system: The system message.
    """

    name: str
    version: int
    variables: tuple[str, ...]
    build: Callable[..., str]
    system: str = _SYSTEM

    @property
    def id(self) -> str:
        return f"{self.name}.v{self.version}"


def _quote_list(names: Any) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _class_header(name: str, definition: str | None, others: list[str]) -> list[str]:
    lines = [f'Class name: "{name}"']
    if definition:
        lines.append(f"Meaning: {definition}")
    if others:
        lines.append(f"Do not confuse it with: {_quote_list(others)}")
    return lines


def _disambiguate_v1(name: str, definition: str | None, others: list[str], k: int) -> str:
    lines = _class_header(name, definition, others)
    lines.append(
        f"Write {k} different short descriptions (4 to 12 words each) of this class that name it without ambiguity "
        "and say what it looks like, so that a picture made from the description shows this class and nothing "
        "else. Each description must be a noun phrase, for example \"a crane, a tall grey wading bird\"."
    )
    lines.append(f"Answer with only a JSON list of {k} strings.")
    return "\n".join(lines)


def _form_line(name: str, definition: str | None, what: str) -> list[str]:
    """The example line of v2 and v3, made from the class's own definition (none without one)."""
    if not definition:
        return []
    gist = " ".join(re.split(r"[;:(]", definition)[0].split()[:8])
    return [f'The form of one {what}: "{name}, {gist}"']


def _disambiguate_v2(name: str, definition: str | None, others: list[str], k: int) -> str:
    # v1's fixed example ("a crane, a tall grey wading bird") was copied by small models into every class; v2's
    # example is made from the class's own definition, so a copy is still a correct description.
    lines = _class_header(name, definition, others)
    lines.append(
        f"Write {k} different short descriptions (4 to 12 words each) of this class. Each one names the class and "
        "says what it looks like, so that a picture made from it shows this class and nothing else."
    )
    lines += _form_line(name, definition, "description")
    lines.append(f"Answer with only a JSON list of {k} strings.")
    return "\n".join(lines)


def _disambiguate_v3(name: str, definition: str | None, others: list[str], senses: list[str], k: int) -> str:
    # v3 names the word's other meanings (WordNet senses) as well as the confusable classes, and asks for noun
    # phrases: v2 answers included sentences ("The class is ...") that ended up inside prompts.
    lines = _class_header(name, definition, others)
    if senses:
        lines.append(f'Other meanings of "{name}" that are NOT this class: ' + "; ".join(senses))
    lines.append(
        f"Write {k} different short noun phrases (3 to 10 words each) that name exactly this class and say what it "
        "looks like, so that a picture made from one shows this class and nothing else. No sentences."
    )
    lines += _form_line(name, definition, "noun phrase")
    lines.append(f"Answer with only a JSON list of {k} strings.")
    return "\n".join(lines)


def _contexts_v1(description: str, k: int) -> str:
    return (
        f"Object: {description}\n"
        f"Write {k} short, very different scenes (5 to 15 words each) in which a photo of this object could be "
        "taken: vary the place, the background, the lighting, the time of day and what else is around it. "
        'For example: "on a wooden kitchen table in morning light".\n'
        f"Answer with only a JSON list of {k} strings."
    )


def _styles_v1(k: int) -> str:
    return (
        f"Write {k} different visual styles or renditions that an image of any object could be made in, "
        "each 1 to 5 words, for example: \"pencil sketch\", \"oil painting\", \"origami\", \"video game render\", "
        '"embroidery", "cartoon".\n'
        f"Answer with only a JSON list of {k} strings."
    )


def _styles_v2(k: int) -> str:
    # Example-led: SmolLM2-135M answers v1 with chatter or numbers, v2 with a list it can parse.
    return (
        f"List {k} art styles or materials a picture can be made in.\n"
        'Example answer: ["pencil sketch", "oil painting", "origami", "stained glass"]\n'
        f"Now give {k} other ones, as a JSON list of {k} strings."
    )


def _styles_class_v1(description: str, k: int) -> str:
    return (
        f"Object: {description}\n"
        f"Write {k} different visual styles or renditions (1 to 5 words each) in which this object could be "
        'depicted, for example: "pencil sketch", "stained glass", "plush toy", "graffiti", "3D render".\n'
        f"Answer with only a JSON list of {k} strings."
    )


def _captions_block(captions: list[str]) -> str:
    return "\n".join(f"- {c}" for c in captions)


def _caption_contexts_v1(description: str, captions: list[str], k: int) -> str:
    return (
        f"Object: {description}\n"
        f"Captions of real photos of this object:\n{_captions_block(captions)}\n"
        f"Write {k} short, different scenes (5 to 15 words each) like the ones in these photos, each naming the "
        "object: keep their kinds of places, backgrounds and lighting, and vary them. "
        'For example: "on a wooden kitchen table in morning light".\n'
        f"Answer with only a JSON list of {k} strings."
    )


def _target_styles_v1(captions: list[str], k: int) -> str:
    return (
        f"Captions of images from one visual domain:\n{_captions_block(captions)}\n"
        f"Write {k} different visual styles or renditions (1 to 5 words each) that describe how these images look "
        '(the medium, the technique, the rendering), for example: "pencil sketch", "toy figurine", "cartoon".\n'
        f"Answer with only a JSON list of {k} strings."
    )


TEMPLATES: dict[str, Template] = {
    t.id: t
    for t in (
        Template("disambiguate", 1, ("name", "definition", "others", "k"), _disambiguate_v1),
        Template("disambiguate", 2, ("name", "definition", "others", "k"), _disambiguate_v2),
        Template("disambiguate", 3, ("name", "definition", "others", "senses", "k"), _disambiguate_v3),
        Template("contexts", 1, ("description", "k"), _contexts_v1),
        Template("styles", 1, ("k",), _styles_v1),
        Template("styles", 2, ("k",), _styles_v2),
        Template("styles.class", 1, ("description", "k"), _styles_class_v1),
        Template("caption_contexts", 1, ("description", "captions", "k"), _caption_contexts_v1),
        Template("target_styles", 1, ("captions", "k"), _target_styles_v1),
    )
}

_VERSIONED = re.compile(r"^(?P<name>.+)\.v(?P<version>\d+)$")


def list_templates() -> list[str]:
    """Every template id, sorted."""
    return sorted(TEMPLATES)


def get_template(name: str) -> Template:
    """The template ``name``: a full id ("contexts.v1") or a family name for its latest version ("contexts")."""
    if name in TEMPLATES:
        return TEMPLATES[name]
    if not _VERSIONED.match(name):
        family = [t for t in TEMPLATES.values() if t.name == name]
        if family:
            return max(family, key=lambda t: t.version)
    raise UnknownBackendError(f"unknown prompt template {name!r}; expected one of: {', '.join(list_templates())}")


def render(name: str, /, **variables: Any) -> tuple[list[Message], str]:
    """Fill the template ``name`` with ``variables``.

    Args:
        name: A template id or family name (see :func:`get_template`).
        **variables: Exactly the template's variables.

    Returns:
        ``(messages, template_id)``: a system and a user message, and the id to record with the output.

    Raises:
        UnknownBackendError: ``name`` is not a template.
        TypeError: A variable is missing or unknown.
    """
    template = get_template(name)
    missing = [v for v in template.variables if v not in variables]
    extra = [v for v in variables if v not in template.variables]
    if missing or extra:
        raise TypeError(
            f"template {template.id} takes {', '.join(template.variables)}; missing {missing or 'none'}, "
            f"unknown {extra or 'none'}"
        )
    messages: list[Message] = [
        {"role": "system", "content": template.system},
        {"role": "user", "content": template.build(**variables)},
    ]
    return messages, template.id
