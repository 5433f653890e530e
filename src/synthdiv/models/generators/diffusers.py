"""The ``diffusers`` generator backend: any text-to-image pipeline ``AutoPipelineForText2Image`` can load.

Stable Diffusion 1.5 / 2.1 / XL / Turbo, SD3, PixArt, FLUX: a hub id or a local folder; ``model: embedded`` is the
tiny random pipeline of :mod:`synthdiv.models.embedded` (its images carry no class signal). Steps and guidance default
per model family (:data:`MODEL_DEFAULTS`), the size defaults to the pipeline's native one. Every image gets its own
seeded ``torch.Generator`` (on the CPU, so a seed means the same starting noise on any device), which makes an image
independent of the rest of its batch up to floating-point batching effects.

On CUDA the fast path is on by default (each switch in ``models.generator.options``, ``null`` meaning "on for CUDA,
off on the CPU"): SDPA attention (diffusers' default on torch 2), channels_last denoiser and VAE, fused attention QKV
projections, ``torch.compile`` of the denoiser and the VAE decoder with a persistent compile cache, fixed batch
shapes (a short batch is padded to the largest batch seen so far and the padding's images are dropped, so the last
batch of a shard and a retry batch do not recompile), and uint8 pixels copied to pinned host memory without a
strided copy. A tiny autoencoder (``tiny_vae``) is off by default because it changes the images.

Image-to-image rows (``plan.img2img``) go through ``AutoPipelineForImage2Image.from_pipe`` of the loaded pipeline:
the same weights (and compiled modules), no second load; the init image is centre-cropped and resized to the output
size, and a row of strength ``s`` runs ``int(steps * s)`` denoising steps (the schedule is lengthened so that this is
at least one).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from synthdiv.config.models import generator_id
from synthdiv.errors import ConfigError, InputError, MissingDependencyError
from synthdiv.models.embedded import tiny_diffusion_dir
from synthdiv.models.generators.guidance import CALL_SCALE, guided, guides
from synthdiv.models.generators.image_fit import fit_image, img2img_steps
from synthdiv.registry import GENERATORS
from synthdiv.utils.devices import resolve_device, resolve_dtype

if TYPE_CHECKING:
    from PIL import Image

    from synthdiv.config.models import GeneratorSpec

logger = logging.getLogger(__name__)

__all__ = [
    "DIVERSE_SAMPLING", "DiffusersGenerator", "DiffusersOptions", "FastPath", "MODEL_DEFAULTS", "SCHEDULERS",
    "diverse_sampling", "fast_path", "model_defaults", "pad_batch",
]

# (substring of the lower-cased model id, steps, guidance): first match wins.
MODEL_DEFAULTS: tuple[tuple[str, int, float], ...] = (
    ("turbo", 1, 0.0),  # SD-Turbo, SDXL-Turbo and their fine-tunes
    ("lightning", 4, 0.0),
    ("lcm", 4, 1.0),
    ("flux.1-schnell", 4, 0.0),
    ("flux", 28, 3.5),
    ("stable-diffusion-3", 28, 7.0),
    ("pixart", 20, 4.5),
    ("xl", 30, 5.0),
    ("embedded", 4, 7.5),
    ("", 25, 7.5),  # Stable Diffusion 1.x / 2.x and anything else
)

# (substring of the lower-cased model id, guidance range, guidance interval) of ``generate.sampling.diverse``: first
# match wins; None where the family is distilled and does not guide. Starting points taken from the papers that
# motivate them (docs/models.md), not tuned here: low scales (Fan et al. find 2 best for SD 1.5 classifiers), and
# guidance skipped at the noisiest and the last steps (Kynkaenniemi et al.).
DIVERSE_SAMPLING: tuple[tuple[str, tuple[float, float] | None, tuple[float, float] | None], ...] = (
    ("turbo", None, None),
    ("lightning", None, None),
    ("lcm", None, None),
    ("flux", None, None),
    ("stable-diffusion-3", (2.0, 7.0), (0.1, 0.9)),
    ("pixart", (1.5, 4.5), (0.1, 0.9)),
    ("xl", (2.0, 6.0), (0.15, 0.85)),
    ("embedded", (1.5, 7.5), (0.25, 1.0)),
    ("", (1.5, 4.0), (0.1, 0.9)),  # Stable Diffusion 1.x / 2.x and anything else
)

# Short names of schedulers; any diffusers scheduler class name works as well.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpm++_karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}),
    "dpm++_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}


class DiffusersOptions(BaseModel):
    """``models.generator.options`` of the diffusers backend; ``None`` means the model's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheduler: str | None = Field(None, description="a short name (dpm++, euler_a, ...) or a diffusers class name")
    steps: int | None = Field(None, ge=1)
    guidance: float | None = Field(None, ge=0)
    width: int | None = Field(None, ge=8, multiple_of=8)
    height: int | None = Field(None, ge=8, multiple_of=8)
    channels_last: bool | None = Field(None, description="denoiser and VAE in channels_last (null: on for CUDA)")
    fuse_qkv: bool | None = Field(
        None, description="fuse attention QKV projections where the pipeline supports it (null: on for CUDA)"
    )
    compile: bool | None = Field(None, description="torch.compile the denoiser and VAE decoder (null: on for CUDA)")
    compile_mode: str = Field("max-autotune-no-cudagraphs", description="torch.compile mode")
    compile_backend: str = Field("inductor", description="torch.compile backend ('eager' checks the wiring only)")
    compile_cache_dir: str | None = Field(
        None, description="persistent inductor cache (default: $TORCHINDUCTOR_CACHE_DIR or ~/.cache/synthdiv/inductor)"
    )
    static_batch: bool | None = Field(
        None, description="pad short batches to the largest batch size seen, so shapes stay fixed (null: when compiled)"
    )
    tiny_vae: str | None = Field(
        None, description="an AutoencoderTiny model id or path (e.g. madebyollin/taesd) to decode with: faster, "
        "changes the images; off by default"
    )
    safety_checker: bool = Field(False, description="keep the pipeline's safety checker (black images are retried)")


@dataclass(frozen=True)
class FastPath:
    """The speed switches in force, after ``null`` ("auto") was resolved for the device."""

    channels_last: bool
    fuse_qkv: bool
    compile: bool
    static_batch: bool


def fast_path(options: DiffusersOptions, device: str) -> FastPath:
    """Resolve the ``null`` switches of ``options``: on for CUDA, off elsewhere; ``static_batch`` follows compile."""
    cuda = device.startswith("cuda")

    def pick(value: bool | None, default: bool) -> bool:
        return default if value is None else value

    compiled = pick(options.compile, cuda)
    return FastPath(pick(options.channels_last, cuda), pick(options.fuse_qkv, cuda), compiled,
                    pick(options.static_batch, compiled))


def pad_batch(items: Sequence[Any], size: int) -> list[Any]:
    """``items`` padded to ``size`` by repeating its last item (whose outputs are dropped afterwards)."""
    return list(items) + [items[-1]] * max(0, size - len(items))


def _model_path(spec: GeneratorSpec) -> str:
    if spec.model == "embedded":
        return str(tiny_diffusion_dir())
    return spec.model


def _dtype_kwarg() -> str:
    """``dtype`` on diffusers versions that deprecated ``torch_dtype``, else ``torch_dtype``."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE") else "torch_dtype"


def model_defaults(model: str) -> tuple[int, float]:
    """(steps, guidance) for a model id or path, from :data:`MODEL_DEFAULTS`."""
    low = model.lower()
    return next((steps, guidance) for key, steps, guidance in MODEL_DEFAULTS if key in low)


def diverse_sampling(model: str) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """(guidance range, guidance interval) of ``generate.sampling.diverse`` for a model id or path."""
    low = model.lower()
    return next((rng, interval) for key, rng, interval in DIVERSE_SAMPLING if key in low)


def _build_scheduler(name: str, config: Any) -> Any:
    import diffusers

    cls_name, extra = SCHEDULERS.get(name.lower(), (name, {}))
    cls = getattr(diffusers, cls_name, None)
    if cls is None or not cls_name.endswith("Scheduler"):
        raise ConfigError(
            f"models.generator.options.scheduler: unknown scheduler {name!r}; expected one of "
            f"{', '.join(SCHEDULERS)} or a diffusers scheduler class name"
        )
    return cls.from_config(config, **extra)


@GENERATORS.register("diffusers")
class DiffusersGenerator:
    """A diffusers text-to-image pipeline as a :class:`~synthdiv.models.generators.base.Generator`.

    Args:
        spec: ``models.generator`` (model id or path, revision, device, dtype, options).
        options: ``spec.options``, validated (the registry builds it: ``create_generator``).
        device: Overrides ``spec.device``.
    """

    Options = DiffusersOptions
    supports_img2img = True  # through AutoPipelineForImage2Image.from_pipe, where the model family has one
    supports_sampling = True  # per-image guidance and the guidance interval (generate.sampling)

    def __init__(self, spec: GeneratorSpec, options: DiffusersOptions, device: str | None = None) -> None:
        self.spec = spec
        self.options = options
        self.generator_id = generator_id(spec)
        self.device = resolve_device(device or spec.device, "models.generator.device")
        self.dtype = resolve_dtype(spec.dtype, self.device, "models.generator.dtype")
        self._batch = 0  # the largest batch seen: short batches are padded to it under static_batch
        self._pinned: dict[tuple[int, ...], Any] = {}  # reused pinned host buffers, by shape
        self._img2img: Any = None  # the image-to-image pipeline over the same weights, made on first use
        self.pipe = self._load()
        steps, guidance = model_defaults(spec.model)
        self.steps = self.options.steps or steps
        self.guidance = self.options.guidance if self.options.guidance is not None else guidance
        native = self._native_size()
        self.width = self.options.width or native
        self.height = self.options.height or native
        params = inspect.signature(self.pipe.__call__).parameters
        self._takes_negative = "negative_prompt" in params
        logger.info(
            "generator %s on %s (%s): %s, %d steps, guidance %g, %dx%d", self.generator_id, self.device,
            str(self.dtype).removeprefix("torch."), type(self.pipe.scheduler).__name__, self.steps, self.guidance,
            self.width, self.height,
        )

    def _load(self) -> Any:
        try:
            import torch
            from diffusers import AutoPipelineForText2Image
        except ImportError as exc:  # pragma: no cover - both are dependencies
            raise MissingDependencyError(f"the diffusers backend needs {exc.name}: pip install diffusers torch") \
                from None
        path = _model_path(self.spec)
        kwargs: dict[str, Any] = {_dtype_kwarg(): self.dtype}
        if self.spec.revision:
            kwargs["revision"] = self.spec.revision
        try:
            pipe = AutoPipelineForText2Image.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"models.generator.model: cannot load {path!r} as a text-to-image pipeline: {first}"
            ) from None
        if not self.options.safety_checker and getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None
        if self.options.scheduler:
            pipe.scheduler = _build_scheduler(self.options.scheduler, pipe.scheduler.config)
        pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self.fast = fast_path(self.options, self.device)
        self._apply_fast_path(pipe, torch)
        return pipe

    def _apply_fast_path(self, pipe: Any, torch: Any) -> None:
        fast, options = self.fast, self.options
        if options.tiny_vae:
            from diffusers import AutoencoderTiny

            pipe.vae = AutoencoderTiny.from_pretrained(options.tiny_vae, **{_dtype_kwarg(): self.dtype}).to(self.device)
        denoiser_name = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
        denoiser = getattr(pipe, denoiser_name)
        if fast.fuse_qkv and hasattr(pipe, "fuse_qkv_projections"):
            pipe.fuse_qkv_projections()
        if fast.channels_last:
            denoiser.to(memory_format=torch.channels_last)
            if getattr(pipe, "vae", None) is not None:
                pipe.vae.to(memory_format=torch.channels_last)
        if fast.compile:
            cache = options.compile_cache_dir or os.environ.get("TORCHINDUCTOR_CACHE_DIR") or str(
                Path.home() / ".cache" / "synthdiv" / "inductor")
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # a rerun, and every rank of a node, reuses the kernels
            mode = None if options.compile_backend != "inductor" else options.compile_mode
            setattr(pipe, denoiser_name, torch.compile(denoiser, mode=mode, backend=options.compile_backend))
            vae = getattr(pipe, "vae", None)
            if vae is not None and hasattr(vae, "decoder"):
                vae.decoder = torch.compile(vae.decoder, mode=mode, backend=options.compile_backend)
        logger.info("generator fast path on %s: %s", self.device, ", ".join(
            f"{k}={'on' if v else 'off'}" for k, v in vars(fast).items()))

    def _native_size(self) -> int:
        size = getattr(self.pipe, "default_sample_size", None)
        unet = getattr(self.pipe, "unet", None)
        if size is None and unet is not None:
            size = unet.config.sample_size
        scale = getattr(self.pipe, "vae_scale_factor", 8)
        if isinstance(size, int | float):
            return int(size * scale)
        return 512

    def settings(self) -> dict[str, Any]:
        """What every image's metadata records about how it was made."""
        return {
            "generator_id": self.generator_id,
            "model": self.spec.model,
            "revision": self.spec.revision or "main",
            "pipeline": type(self.pipe).__name__,
            "scheduler": type(self.pipe.scheduler).__name__,
            "steps": self.steps,
            "guidance": self.guidance,
            "width": self.width,
            "height": self.height,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        negative_prompts: Sequence[str] | None = None,
        init_images: Sequence[Image.Image | None] | None = None,
        strengths: Sequence[float | None] | None = None,
        guidances: Sequence[float] | None = None,
        interval: tuple[float, float] | None = None,
    ) -> list[Image.Image]:
        """One image per (prompt, seed); NaN pixels become black (and are then retried by the caller).

        Rows with an ``init_images`` entry are made image-to-image from it (fitted to the output size) at their
        ``strengths`` entry, through the model's image-to-image pipeline (it shares the weights); one model call per
        distinct strength. ``guidances`` gives each row its own guidance scale and ``interval`` the part of the
        schedule that is guided (:mod:`~synthdiv.models.generators.guidance`). The conversion to 8-bit happens on the
        device, so only uint8 pixels cross to the host.
        """
        if init_images is None or all(im is None for im in init_images):
            return self._generate(prompts, seeds, negative_prompts, guidances=guidances, interval=interval)
        if strengths is None or len(strengths) != len(prompts) or len(init_images) != len(prompts):
            raise ValueError("generate: init_images and strengths must have one entry per prompt")
        out: list[Image.Image | None] = [None] * len(prompts)
        groups: dict[float | None, list[int]] = {}
        for i, im in enumerate(init_images):
            groups.setdefault(None if im is None else float(strengths[i]), []).append(i)
        for strength, rows in groups.items():
            negs = [negative_prompts[i] for i in rows] if negative_prompts is not None else None
            images = None if strength is None else [fit_image(init_images[i], self.width, self.height) for i in rows]
            gs = [guidances[i] for i in rows] if guidances is not None else None
            made = self._generate([prompts[i] for i in rows], [seeds[i] for i in rows], negs, images, strength, gs,
                                  interval)
            for i, image in zip(rows, made, strict=True):
                out[i] = image
        return out  # type: ignore[return-value]

    def _image_pipe(self) -> Any:
        if self._img2img is None:
            from diffusers import AutoPipelineForImage2Image

            try:
                self._img2img = AutoPipelineForImage2Image.from_pipe(self.pipe)
            except ValueError as exc:
                raise ConfigError(
                    f"models.generator.model: {type(self.pipe).__name__} has no image-to-image pipeline in diffusers "
                    f"({exc}); set plan.img2img.share: 0"
                ) from None
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img

    def _generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        negative_prompts: Sequence[str] | None,
        images: list[Image.Image] | None = None,
        strength: float | None = None,
        guidances: Sequence[float] | None = None,
        interval: tuple[float, float] | None = None,
    ) -> list[Image.Image]:
        import torch
        from PIL import Image

        n = len(prompts)
        if self.fast.static_batch:
            self._batch = max(self._batch, n)
            prompts, seeds = pad_batch(prompts, self._batch), pad_batch(seeds, self._batch)
            negative_prompts = pad_batch(negative_prompts, self._batch) if negative_prompts is not None else None
            images = pad_batch(images, self._batch) if images is not None else None
            guidances = pad_batch(guidances, self._batch) if guidances is not None else None
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        kwargs: dict[str, Any] = {
            "prompt": list(prompts),
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
            "width": self.width,
            "height": self.height,
            "generator": gens,
            "output_type": "pt",
        }
        pipe = self.pipe
        if images is not None and strength is not None:
            pipe = self._image_pipe()
            del kwargs["width"], kwargs["height"]  # the init images set the size
            kwargs.update(image=images, strength=strength, num_inference_steps=img2img_steps(self.steps, strength))
        if self._takes_negative and negative_prompts is not None and any(negative_prompts):
            kwargs["negative_prompt"] = [x or "" for x in negative_prompts]
        steer = contextlib.nullcontext()
        if guidances is not None or interval is not None:
            scales = [float(g) for g in guidances] if guidances is not None else [self.guidance] * len(prompts)
            if interval is None and len(set(scales)) == 1:
                kwargs["guidance_scale"] = scales[0]  # one scale for the batch: the pipeline's own guidance
            else:
                if not guides(pipe):
                    raise ConfigError(f"generate.sampling: {type(pipe).__name__} does not apply classifier-free "
                                      "guidance; per-image guidance and the interval need a model that does")
                kwargs["guidance_scale"] = CALL_SCALE
                denoiser = pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer
                steer = guided(denoiser, pipe.scheduler, scales, interval)
        try:
            with torch.inference_mode(), steer:
                out = pipe(**kwargs).images  # (B, 3, H, W) in [0, 1], still on the device
        except torch.cuda.OutOfMemoryError:
            raise ConfigError(
                f"generate.batch_size: {len(prompts)} images of {self.width}x{self.height} do not fit on {self.device} "
                "(out of memory); lower generate.batch_size"
            ) from None
        with torch.inference_mode():
            out = torch.nan_to_num(out[:n].float(), nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0)
            pixels = out.mul_(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # HWC on the device
            arr = self._to_host(pixels, torch)
        return [Image.fromarray(a) for a in arr]

    def _to_host(self, pixels: Any, torch: Any) -> np.ndarray:
        """Device uint8 pixels to a host array: through a reused pinned buffer on CUDA (one DMA, no strided copy)."""
        if not pixels.is_cuda:
            return pixels.numpy()
        host = self._pinned.get(tuple(pixels.shape))
        if host is None:
            host = self._pinned[tuple(pixels.shape)] = torch.empty(pixels.shape, dtype=torch.uint8, pin_memory=True)
        host.copy_(pixels, non_blocking=True)
        torch.cuda.current_stream(pixels.device).synchronize()
        return host.numpy().copy()  # the buffer is reused by the next batch
