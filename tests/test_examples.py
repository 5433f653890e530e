"""Every example config validates, names registered backends, and gives them options they accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthdiv.config.loader import load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


def _registries():
    from synthdiv.models.clip import SCORERS
    from synthdiv.models.generators import GENERATORS
    from synthdiv.models.llm import LLM_BACKENDS

    return {"llm": LLM_BACKENDS, "clip": SCORERS, "generator": GENERATORS}


def test_there_are_examples():
    names = {p.stem for p in EXAMPLES}
    assert {"quickstart", "imagenet1k-sd15", "imagenet100-sdxl-turbo", "imagenet-lt", "custom-imagefolder"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_config_validates(path: Path):
    cfg = load_config(path)
    for role, registry in _registries().items():
        spec = getattr(cfg.models, role)
        backend = registry.get(spec.backend)
        backend.Options.model_validate(spec.options)


def test_examples_open_with_a_comment_saying_what_they_are():
    for path in EXAMPLES:
        text = path.read_text()
        assert text.lstrip().startswith("#"), f"{path.name} should open with a comment saying what it is"
