"""Degenerate-image detection and the retry path (a scripted generator: this tests the retry logic itself)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from synthdiv.stages.generate.degenerate import degenerate_reason, derive_seed, generate_with_retries


def _img(value: int | None = None, seed: int = 0) -> Image.Image:
    if value is None:
        arr = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    else:
        arr = np.full((8, 8, 3), value, dtype=np.uint8)
    return Image.fromarray(arr)


def test_degenerate_reasons():
    assert degenerate_reason(_img(0)) == "black"
    assert degenerate_reason(_img(128)) == "constant"
    assert degenerate_reason(_img(None)) is None


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(7, 0) == 7
    seeds = {derive_seed(7, a) for a in range(1, 6)}
    assert len(seeds) == 5 and 7 not in seeds
    assert derive_seed(7, 1) == derive_seed(7, 1) != derive_seed(8, 1)
    assert all(0 <= s < 2**63 for s in seeds)


class ScriptedGenerator:
    """Black images for the seeds in ``bad``; records each call's seeds."""

    generator_id = "scripted"

    def __init__(self, bad: set[int]) -> None:
        self.bad, self.calls = bad, []

    def generate(self, prompts, seeds, negative_prompts=None):
        self.calls.append(list(seeds))
        return [_img(0) if s in self.bad else _img(None, s) for s in seeds]

    def settings(self):
        return {"generator_id": self.generator_id}


def test_only_degenerate_images_are_regenerated_with_derived_seeds():
    gen = ScriptedGenerator(bad={2, derive_seed(3, 1)})
    out = generate_with_retries(gen, ["a", "b", "c"], [1, 2, 3], ["", "", ""], max_retries=2)
    assert gen.calls[0] == [1, 2, 3]
    assert gen.calls[1] == [derive_seed(2, 1)]  # only seed 2 was black
    assert [g.retries for g in out] == [0, 1, 0]
    assert out[1].used_seed == derive_seed(2, 1) and out[1].degenerate is None


def test_retries_are_bounded_and_the_last_image_is_kept_marked():
    gen = ScriptedGenerator(bad={5, derive_seed(5, 1), derive_seed(5, 2)})
    out = generate_with_retries(gen, ["a"], [5], None, max_retries=2)
    assert len(gen.calls) == 3
    assert out[0].retries == 2 and out[0].degenerate == "black"


def test_no_retries_when_switched_off():
    gen = ScriptedGenerator(bad={5})
    out = generate_with_retries(gen, ["a"], [5], None, max_retries=0)
    assert len(gen.calls) == 1 and out[0].degenerate == "black" and out[0].retries == 0
