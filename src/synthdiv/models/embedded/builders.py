"""The tiny embedded models with RANDOM weights: their configs and the functions that build each into a folder.

Each ``_build_*`` function writes one model into the folder it is given, with torch seeded by
:data:`~synthdiv.models.embedded.cache.EMBEDDED_SEED` so two builds give identical weights;
:mod:`synthdiv.models.embedded` runs them through the build cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthdiv.models.embedded.bpe import CLIP_CONTEXT, CLIP_VOCAB_SIZE, _clip_tokenizer, _write_bpe_files
from synthdiv.models.embedded.cache import EMBEDDED_SEED, _seeded
from synthdiv.utils.io import atomic_write_json

__all__ = ["TINY_CAPTIONER_CONFIG", "TINY_DIFFUSION_CONFIG", "TINY_HF_CLIP_CONFIG", "TINY_OPEN_CLIP_CONFIG"]

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
