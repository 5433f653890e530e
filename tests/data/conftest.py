"""Fixtures of the data tests: a toy run (see toydata.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from toydata import make_toy_run  # noqa: E402


@pytest.fixture
def toy(tmp_path: Path) -> dict[str, Path]:
    return make_toy_run(tmp_path)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread on a shared machine (and deterministically)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
