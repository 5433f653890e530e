"""The diffusers backend with the tiny random pipeline: options, defaults, schedulers, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from synthdiv.config.models import GeneratorSpec
from synthdiv.errors import ConfigError, InputError, UnknownBackendError
from synthdiv.models.generators import GENERATORS, create_generator
from synthdiv.models.generators.diffusers import model_defaults


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    return create_generator(GeneratorSpec(model=str(tiny_model_dir), device="cpu", options={"steps": 2}))


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", (25, 7.5)),
        ("stabilityai/stable-diffusion-xl-base-1.0", (30, 5.0)),
        ("stabilityai/sdxl-turbo", (1, 0.0)),
        ("Lykon/dreamshaper-xl-turbo", (1, 0.0)),
        ("black-forest-labs/FLUX.1-schnell", (4, 0.0)),
        ("embedded", (4, 7.5)),
    ],
)
def test_model_defaults(model, expected):
    assert model_defaults(model) == expected


def test_registry_lists_diffusers_and_rejects_unknown():
    assert "diffusers" in GENERATORS.names()
    with pytest.raises(UnknownBackendError, match="diffusers"):
        create_generator(GeneratorSpec(backend="nope"))


def test_bad_options_name_the_field(tiny_model_dir):
    with pytest.raises(ConfigError, match=r"models\.generator\.options\.stepz"):
        create_generator(GeneratorSpec(model=str(tiny_model_dir), device="cpu", options={"stepz": 3}))
    with pytest.raises(ConfigError, match="unknown scheduler 'warp'"):
        create_generator(GeneratorSpec(model=str(tiny_model_dir), device="cpu", options={"scheduler": "warp"}))


def test_missing_model_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"models\.generator\.model"):
        create_generator(GeneratorSpec(model=str(tmp_path / "nothing-here"), device="cpu"))


def test_settings_and_native_size(generator):
    s = generator.settings()
    assert s["steps"] == 2 and s["guidance"] == 7.5 and s["scheduler"] == "DPMSolverMultistepScheduler"
    assert s["generator_id"].startswith("diffusers:") and s["revision"] == "main"
    assert (s["width"], s["height"]) == (generator.width, generator.height) and generator.width >= 8


def test_an_image_depends_on_its_seed_not_its_batch(generator):
    a = generator.generate(["a cat", "a dog"], [11, 12])
    b = generator.generate(["a cat", "a bird"], [11, 99])
    c = generator.generate(["a cat", "a dog"], [13, 12])
    assert np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    assert not np.array_equal(np.asarray(a[0]), np.asarray(c[0]))
    assert a[0].size == (generator.width, generator.height) and a[0].mode == "RGB"


def test_scheduler_by_short_name_and_size_option(tiny_model_dir):
    options = {"scheduler": "euler_a", "steps": 1, "width": 48, "height": 40}
    gen = create_generator(GeneratorSpec(model=str(tiny_model_dir), device="cpu", options=options))
    assert gen.settings()["scheduler"] == "EulerAncestralDiscreteScheduler"
    (img,) = gen.generate(["x"], [1], ["blurry"])
    assert img.size == (48, 40)


def test_nan_output_becomes_black_and_is_flagged(generator):
    from synthdiv.stages.generate.degenerate import degenerate_reason, generate_with_retries

    def nan_hook(module, args, output):  # what fp16 overflow does to a real model
        (output[0] if isinstance(output, tuple) else output.sample).fill_(float("nan"))
        return output

    handle = generator.pipe.unet.register_forward_hook(nan_hook)
    try:
        (made,) = generate_with_retries(generator, ["a cat"], [3], None, max_retries=1)
    finally:
        handle.remove()
    assert degenerate_reason(made.image) == "black" and made.degenerate == "black" and made.retries == 1


def test_out_of_memory_names_the_batch_size(generator, monkeypatch):
    import torch

    def oom(**kwargs):  # what a too-large batch does on a GPU
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(generator, "pipe", _PipeProxy(generator.pipe, oom))
    with pytest.raises(ConfigError, match=r"generate\.batch_size: 2 images of .* lower generate\.batch_size"):
        generator.generate(["a", "b"], [1, 2])


class _PipeProxy:
    def __init__(self, pipe, call):
        self._pipe, self._call = pipe, call

    def __call__(self, **kwargs):
        return self._call(**kwargs)

    def __getattr__(self, name):
        return getattr(self._pipe, name)


# ---------------------------------------------------------------------------------------------- the fast path


def test_fast_path_is_on_for_cuda_off_on_the_cpu_and_every_switch_can_be_set():
    from synthdiv.models.generators.diffusers import DiffusersOptions, fast_path

    assert vars(fast_path(DiffusersOptions(), "cpu")) == dict.fromkeys(
        ("channels_last", "fuse_qkv", "compile", "static_batch"), False)
    assert all(vars(fast_path(DiffusersOptions(), "cuda:0")).values())
    off = fast_path(DiffusersOptions(compile=False, fuse_qkv=False), "cuda")
    assert (off.compile, off.static_batch, off.fuse_qkv, off.channels_last) == (False, False, False, True)
    assert fast_path(DiffusersOptions(compile=False, static_batch=True), "cpu").static_batch


def test_static_batches_pad_short_batches_without_a_recompile(tiny_model_dir, generator):
    """A compiled denoiser (the eager backend: the same dynamo graphs, no kernels to build on a CPU) sees one batch
    shape: the short batch is padded and its padding dropped, and its images equal the unpadded ones."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    spec = GeneratorSpec(model=str(tiny_model_dir), device="cpu",
                         options={"steps": 2, "compile": True, "compile_backend": "eager", "channels_last": True})
    fast = create_generator(spec)
    assert fast.fast.static_batch and type(fast.pipe.unet).__name__ == "OptimizedModule"
    torch._dynamo.reset()
    counters.clear()
    full = fast.generate(["a red ball", "a blue cube", "a tree"], [1, 2, 3])
    graphs = counters["stats"]["unique_graphs"]
    short = fast.generate(["a red ball", "a blue cube"], [1, 2])
    assert len(full) == 3 and len(short) == 2
    assert counters["stats"]["unique_graphs"] == graphs  # the padded batch reused the compiled graphs
    plain = generator.generate(["a red ball", "a blue cube"], [1, 2])
    for a, b in zip(short, plain, strict=True):
        assert np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max() <= 2
