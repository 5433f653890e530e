"""Shared fixtures: an isolated model cache per test session and small run configs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SMOKE_DATA = REPO / "data" / "fashion-mnist-smoke"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.wordnet`` tests are skipped, with one reason, where WordNet is not installed."""
    if item.get_closest_marker("wordnet") is not None:
        from synthdiv.lexicon.wordnet import wordnet_dir

        if wordnet_dir() is None:
            pytest.skip("WordNet (Debian wordnet-base) is not installed")


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Embedded tiny models are built once per session into a private cache (unless SYNTHDIV_CACHE is set)."""
    if "SYNTHDIV_CACHE" not in os.environ:
        os.environ["SYNTHDIV_CACHE"] = str(tmp_path_factory.mktemp("synthdiv-cache"))
    return Path(os.environ["SYNTHDIV_CACHE"])


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One torch thread per test: tiny models run fastest so on a shared CPU (two spinning OpenMP threads on an
    oversubscribed machine are tens of times slower), and results do not depend on the thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy(tmp_path: Path) -> dict[str, Path]:
    """A toy run for the data / train / evaluate tests (see tests/data/toydata.py)."""
    from tests.data.toydata import make_toy_run

    return make_toy_run(tmp_path)


@pytest.fixture
def make_config(tmp_path: Path):
    """``make_config(**sections)`` -> a validated RunConfig whose run_dir is in tmp_path."""
    from synthdiv.config.loader import config_from_dict

    def make(**sections: Any):
        data: dict[str, Any] = {"run_dir": str(tmp_path / "run"), "seed": 0}
        data.update(sections)
        return config_from_dict(data, base_dir=tmp_path)

    return make
