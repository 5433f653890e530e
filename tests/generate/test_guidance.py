"""Per-image guidance and the guidance interval on the real (tiny, random) Stable Diffusion pipeline: each image of a
mixed batch is the image the pipeline makes at that image's scale, steps outside the interval run the denoiser on
half the rows, and an interval that guides no step is the unguided image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthdiv.config.models import GeneratorSpec
from synthdiv.errors import ConfigError
from synthdiv.models.generators import create_generator
from synthdiv.models.generators.guidance import guided, guided_steps, schedule_fraction

PROMPTS = ["a photo of a goldfish", "a sketch of a crane", "a painting of a tabby cat"]
SEEDS = [11, 22, 33]


@pytest.fixture(scope="module")
def generator():
    torch.set_num_threads(1)
    return create_generator(GeneratorSpec(model="embedded", options={"steps": 4}), device="cpu")


@pytest.fixture
def rows(generator):
    """Rows entering the UNet's first layer, counted by a hook on the network itself."""
    count = {"rows": 0}
    handle = generator.pipe.unet.conv_in.register_forward_pre_hook(
        lambda module, args: count.__setitem__("rows", count["rows"] + args[0].shape[0]))
    yield count
    handle.remove()


def _pixels(images) -> list[np.ndarray]:
    return [np.asarray(im).astype(np.int16) for im in images]


def test_each_image_of_a_mixed_batch_is_made_at_its_own_scale(generator, rows):
    mixed = _pixels(generator.generate(PROMPTS, SEEDS, None, guidances=[1.5, 4.0, 9.0]))
    assert rows["rows"] == 4 * 2 * 3  # every step guided: both halves of the batch
    for i, scale in enumerate((1.5, 4.0, 9.0)):
        alone = _pixels(generator.generate(PROMPTS, SEEDS, None, guidances=[scale] * 3))  # the pipeline's own CFG
        assert np.array_equal(mixed[i], alone[i]), scale
    other = _pixels(generator.generate(PROMPTS, SEEDS, None, guidances=[9.0] * 3))
    assert np.abs(mixed[0] - other[0]).max() > 0  # the scale matters to these images


def test_outside_the_interval_only_the_conditional_half_runs(generator, rows):
    # 4 steps at fractions 0, .25, .5, .75 of the schedule: [0.25, 1) guides the last three
    guided_images = _pixels(generator.generate(PROMPTS, SEEDS, None, guidances=[2.0, 5.0, 8.0], interval=(0.25, 1.0)))
    assert rows["rows"] == (1 + 3 * 2) * 3
    assert guided_steps(4, (0.25, 1.0)) == 3 and guided_steps(4, (0.9, 1.0)) == 0  # what estimate counts
    rows["rows"] = 0
    whole = _pixels(generator.generate(PROMPTS, SEEDS, None, guidances=[2.0, 5.0, 8.0], interval=(0.0, 1.0)))
    assert rows["rows"] == 4 * 2 * 3
    assert np.array_equal(whole, _pixels(generator.generate(PROMPTS, SEEDS, None, guidances=[2.0, 5.0, 8.0])))
    assert any(np.abs(a - b).max() > 0 for a, b in zip(guided_images, whole, strict=True))


def test_an_interval_that_guides_no_step_is_the_unguided_image(generator, rows):
    none = _pixels(generator.generate(PROMPTS, SEEDS, None, guidances=[3.0, 6.0, 9.0], interval=(0.9, 1.0)))
    assert rows["rows"] == 4 * 3  # half the rows of a guided run: the time the interval saves
    plain = _pixels(generator.generate(PROMPTS, SEEDS, None, guidances=[1.0] * 3))  # scale 1: no CFG at all
    assert np.array_equal(none, plain)


def test_interval_alone_keeps_the_models_scale(generator):
    # no per-image scales: every image takes the model's guidance (7.5) inside the interval
    a = _pixels(generator.generate(PROMPTS, SEEDS, None, interval=(0.0, 1.0)))
    b = _pixels(generator.generate(PROMPTS, SEEDS, None, guidances=[generator.guidance] * 3))
    assert np.array_equal(a, b)


def test_a_denoiser_call_without_a_doubled_batch_is_refused():
    net = torch.nn.Identity()
    scheduler = type("S", (), {"timesteps": torch.tensor([999, 500, 1])})()
    with guided(net, scheduler, [2.0, 3.0], None), pytest.raises(ConfigError, match="classifier-free guidance"):
        net(torch.zeros(2, 4), torch.tensor(999))  # 2 rows for a batch of 2: the pipeline did not double it
    assert "forward" not in vars(net)  # the wrapper is gone after the block


def test_schedule_fraction_reads_the_position_of_a_timestep():
    steps = torch.tensor([999.0, 749.0, 499.0, 249.0])
    assert [schedule_fraction(torch.tensor(t), steps) for t in (999.0, 749.0, 499.0, 249.0)] == [0, .25, .5, .75]
    assert schedule_fraction(torch.tensor([500.0, 500.0]), steps) == 0.5  # a per-row timestep; the nearest step
