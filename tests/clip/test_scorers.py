"""The CLIP layer: both backends with the embedded tiny random models, the registry and its errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from synthdiv.config.models import CLIPSpec
from synthdiv.errors import ConfigError, UnknownBackendError
from synthdiv.models.clip import create_scorer, list_scorers

BACKENDS = list_scorers()


@pytest.fixture(scope="module", params=BACKENDS)
def scorer(request: pytest.FixtureRequest):
    return create_scorer(CLIPSpec(backend=request.param, model="embedded", device="cpu"))


def _images(n: int, seed: int = 0, mode: str = "RGB") -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    shape = (40, 48, 3) if mode == "RGB" else (28, 28)
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).convert(mode) for _ in range(n)]


def test_registry_lists_both_builtins() -> None:
    assert {"open_clip", "transformers"} <= set(BACKENDS)
    assert list_scorers("open*") == ["open_clip"]


def test_embeddings_are_unit_float32_rows(scorer) -> None:
    images = scorer.embed_images(_images(5))
    texts = scorer.embed_texts(["a crane (the bird)", "a crane (the machine)", "a sweater"])
    assert images.dtype == np.float32 and texts.dtype == np.float32
    assert images.shape == (5, scorer.dim) and texts.shape == (3, scorer.dim)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert scorer.model_id.startswith(("open_clip:embedded", "transformers:embedded"))


def test_texts_are_deterministic_and_distinct(scorer) -> None:
    a = scorer.embed_texts(["a crane (the bird)", "a crane (the machine)"])
    b = scorer.embed_texts(["a crane (the bird)", "a crane (the machine)"])
    np.testing.assert_array_equal(a, b)
    assert float(a[0] @ a[1]) < 0.9999


def test_batching_does_not_change_results(scorer) -> None:
    images = _images(7, seed=3)
    texts = [f"photo number {i}" for i in range(7)]
    whole_i, whole_t = scorer.embed_images(images), scorer.embed_texts(texts)
    size = scorer.options.batch_size
    object.__setattr__(scorer, "options", scorer.options.model_copy(update={"batch_size": 2}))
    try:
        np.testing.assert_allclose(scorer.embed_images(images), whole_i, atol=1e-5)
        np.testing.assert_allclose(scorer.embed_texts(texts), whole_t, atol=1e-5)
    finally:
        object.__setattr__(scorer, "options", scorer.options.model_copy(update={"batch_size": size}))


def test_grayscale_images_long_texts_and_empty_inputs(scorer) -> None:
    gray = scorer.embed_images(_images(2, mode="L"))
    assert gray.shape == (2, scorer.dim) and np.isfinite(gray).all()
    long = scorer.embed_texts(["a very long description " * 60])
    assert long.shape == (1, scorer.dim) and np.isfinite(long).all()
    assert scorer.embed_images([]).shape == (0, scorer.dim)
    assert scorer.embed_texts([]).shape == (0, scorer.dim)
    with pytest.raises(TypeError):
        scorer.embed_texts("one string")


@pytest.mark.parametrize("backend", BACKENDS)
def test_dtype_from_the_spec(backend: str) -> None:
    fp32 = create_scorer(CLIPSpec(backend=backend, model="embedded", device="cpu"))
    bf16 = create_scorer(CLIPSpec(backend=backend, model="embedded", device="cpu", dtype="bfloat16"))
    torch = pytest.importorskip("torch")
    assert bf16.dtype == torch.bfloat16 and fp32.dtype == torch.float32
    texts, images = ["a crane (the bird)", "a sweater"], _images(2)
    pairs = [(fp32.embed_texts(texts), bf16.embed_texts(texts)), (fp32.embed_images(images), bf16.embed_images(images))]
    for a, b in pairs:
        assert b.dtype == np.float32
        assert np.all(np.sum(a * b, axis=1) > 0.98)  # the same model, in lower precision


def test_identical_specs_share_one_scorer() -> None:
    spec = CLIPSpec(backend="open_clip", model="embedded", device="cpu")
    first = create_scorer(spec)
    assert create_scorer(CLIPSpec(backend="open_clip", model="embedded", device="cpu")) is first
    assert create_scorer(spec, shared=False) is not first


def test_unknown_backend_names_the_field_and_the_choices() -> None:
    with pytest.raises(UnknownBackendError, match=r"models\.clip\.backend: .*'nope'.*open_clip.*transformers"):
        create_scorer(CLIPSpec(backend="nope"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_option_is_a_config_error(backend: str) -> None:
    with pytest.raises(ConfigError, match=r"models\.clip\.options\.colour: unknown key; expected one of: "):
        create_scorer(CLIPSpec(backend=backend, options={"colour": "red"}))
    with pytest.raises(ConfigError, match=r"models\.clip\.options\.batch_size"):
        create_scorer(CLIPSpec(backend=backend, options={"batch_size": 0}))


def test_unknown_models_are_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"models\.clip\.model: unknown open_clip architecture 'ViT-Nope'"):
        create_scorer(CLIPSpec(backend="open_clip", model="ViT-Nope"))
    with pytest.raises(ConfigError, match=r"models\.clip\.model: cannot load"):
        create_scorer(CLIPSpec(backend="transformers", model=str(tmp_path / "missing")))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="tests the no-CUDA message")
def test_cuda_without_a_gpu_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"models\.clip\.device: 'cuda'"):
        create_scorer(CLIPSpec(backend="open_clip", model="embedded", device="cuda"))


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, synthdiv.models.clip; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_siglip_through_the_transformers_backend(tmp_path) -> None:
    """A tiny random SigLIP (the real architecture, from a config): loaded from a folder, texts padded to the full
    context as SigLIP was trained, so a text's embedding does not depend on what else is in its batch."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    from synthdiv.models.embedded.bpe import _clip_tokenizer

    tok = _clip_tokenizer()
    ids = {"vocab_size": tok.vocab_size, "pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id,
           "eos_token_id": tok.eos_token_id}
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = SiglipConfig(text_config={**ids, **layers, "max_position_embeddings": 16},
                          vision_config={**layers, "image_size": 32, "patch_size": 8})
    torch.manual_seed(0)
    SiglipModel(config).save_pretrained(tmp_path)
    SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}),
                    tokenizer=tok).save_pretrained(tmp_path)

    scorer = create_scorer(CLIPSpec(backend="transformers", model=str(tmp_path), device="cpu"))
    assert scorer.model_id == f"transformers:{tmp_path}"
    short, long = "a crane", "a photo of a large grey crane standing in shallow water at dawn"
    alone, batched = scorer.embed_texts([short]), scorer.embed_texts([short, long])
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)
    assert not np.allclose(batched[0], batched[1], atol=1e-3)
    images = scorer.embed_images(_images(2))
    assert images.shape == (2, 32) and images.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
