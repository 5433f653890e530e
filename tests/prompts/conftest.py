"""Fixtures of the prompts and plan tests: a run directory with resolved classes, and a scripted LLM behind the
real response cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synthdiv.core.rundir import RunDir
from synthdiv.utils.io import atomic_write_jsonl
from tests.llm.fakes import FakeLLM


def resolved_rows(classes: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """``classes.resolved.jsonl`` rows from (name, description, real_images)."""
    return [
        {"index": i, "name": name, "wnid": None, "definition": None, "real_images": real, "real_dir": None,
         "description": desc, "candidates": [], "status": "ok", "llm_id": None, "template_id": None}
        for i, (name, desc, real) in enumerate(classes)
    ]


@pytest.fixture
def write_resolved():
    def write(run_dir: Path | str, classes: list[tuple[str, str, int]]) -> RunDir:
        run = RunDir(run_dir)
        atomic_write_jsonl(run.resolved, resolved_rows(classes))
        return run

    return write


@pytest.fixture
def scripted_llm(monkeypatch: pytest.MonkeyPatch) -> FakeLLM:
    """A FakeLLM that the prompts stage gets from ``create_llm``, wrapped in the real on-disk response cache."""
    from synthdiv.models.llm.cache import CachedLLM

    fake = FakeLLM(model_id="fake:scripted")

    def create(spec: Any, cache_dir: Path | None = None) -> Any:
        return CachedLLM(fake, cache_dir, backend="fake", model="scripted") if cache_dir else fake

    monkeypatch.setattr("synthdiv.stages.prompts.stage.create_llm", create)
    return fake
