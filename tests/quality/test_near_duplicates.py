"""Near-duplicates on planted embeddings: exact and near copies are found, grouped, and nothing else is."""

from __future__ import annotations

import numpy as np
import pytest

from synthdiv.metrics.near_duplicates import duplicate_groups, nearest_in, nearest_within


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _planted(n: int = 300, d: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    emb = _unit(rng.standard_normal((n, d)))  # random directions in 64-d: pairwise cosine ~ N(0, 1/8)
    emb[10] = emb[3]  # exact copy
    emb[250] = _unit(emb[3:4] + 0.02 * rng.standard_normal((1, d)))[0]  # near copy of the same image
    emb[120] = _unit(emb[77:78] + 0.02 * rng.standard_normal((1, d)))[0]  # a second group
    return emb


@pytest.mark.parametrize("block", [7, 64, 4096])
def test_planted_groups_whatever_the_block(block):
    emb = _planted()
    nn, groups = nearest_within(emb, threshold=0.95, block_size=block)
    assert nn.index[10] == 3 and nn.index[3] in (10, 250) and nn.index[120] == 77
    assert nn.cosine[10] == pytest.approx(1.0, abs=1e-5)
    assert groups[3] == groups[10] == groups[250] == 3 and groups[77] == groups[120] == 77
    others = np.setdiff1d(np.arange(len(emb)), [3, 10, 250, 77, 120])
    assert np.array_equal(groups[others], others)  # everything else is its own representative
    full = emb @ emb.T  # the naive answer agrees
    np.fill_diagonal(full, -np.inf)
    assert np.array_equal(nn.index, full.argmax(axis=1))
    np.testing.assert_allclose(nn.cosine, full.max(axis=1), atol=1e-5)


def test_nearest_real_is_the_memorized_one():
    syn = _planted(300)[:50]
    real = _unit(np.random.default_rng(1).standard_normal((40, 64)))
    real[17] = syn[5]
    nn = nearest_in(syn, real, block_size=8)
    assert nn.index[5] == 17 and nn.cosine[5] == pytest.approx(1.0, abs=1e-5)
    assert (np.delete(nn.cosine, 5) < 0.9).all()


def test_degenerate_sizes():
    nn, groups = nearest_within(np.zeros((1, 4), np.float32) + 0.5, 0.9)
    assert nn.index.tolist() == [-1] and np.isnan(nn.cosine[0]) and groups.tolist() == [0]
    assert nearest_in(np.ones((2, 4), np.float32), np.zeros((0, 4), np.float32)).index.tolist() == [-1, -1]


def test_groups_join_chains():
    assert duplicate_groups(6, np.array([[4, 5], [1, 4], [2, 3]])).tolist() == [0, 1, 2, 2, 1, 1]
