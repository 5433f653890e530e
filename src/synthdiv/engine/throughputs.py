"""Default throughputs that ``synthdiv estimate`` and ``synthdiv check`` assume when nothing better is known.

These are defaults, not measurements of your machine: rounded public numbers for one H100-class GPU (the issue
reports that set this project's goals, and the project's own ``benchmarks/RESULTS.md``). A rate measured by this
run's ``generate`` stage, ``generate.images_per_second`` or ``--images-per-second`` always wins, and the estimate
says which one it used. Generation rates scale with steps and pixels (the denoiser's cost is about linear in both);
training rates scale with pixels.

| generator (substring of the model id) | reference | img/s |
|---|---|---|
| ``turbo`` (SD-Turbo, SDXL-Turbo) | 512x512, 4 steps, batched | 20 |
| ``xl`` (SDXL and fine-tunes) | 1024x1024, 30 steps, batched | 1 |
| anything else (Stable Diffusion 1.x / 2.x) | 512x512, 25 steps, batched (H200 plain diffusers, batch 32: 6.3) | 6 |

| timm model (prefix) | 224x224, mixed precision, img/s |
|---|---|
| resnet18 / resnet34 / resnet50 / resnet101 | 5000 / 3000 / 2500 / 1500 |
| convnext_tiny / convnext_small / convnext_base | 1500 / 1000 / 600 |
| vit_small / vit_base / vit_large (patch16) | 2500 / 1000 / 300 |
| deit_small / deit_base | 2500 / 1000 |
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Rate", "DEFAULT_DEVICE", "UNKNOWN_DEVICE", "GENERATION_DEFAULTS", "TRAINING_DEFAULTS", "generation_rate",
    "training_rate",
]

DEFAULT_DEVICE = "H100 (default)"
UNKNOWN_DEVICE = "device not recorded"

# (substring of the lower-cased model id, width, height, steps, images/s on one H100): the first match wins.
GENERATION_DEFAULTS: tuple[tuple[str, int, int, int, float], ...] = (
    ("turbo", 512, 512, 4, 20.0),
    ("flux", 1024, 1024, 28, 0.3),
    ("stable-diffusion-3", 1024, 1024, 28, 0.8),
    ("xl", 1024, 1024, 30, 1.0),
    ("", 512, 512, 25, 6.0),
)

# (prefix of the timm model name, images/s at 224x224 on one H100 with mixed precision): the first match wins.
TRAINING_DEFAULTS: tuple[tuple[str, float], ...] = (
    ("resnet18", 5000.0), ("resnet34", 3000.0), ("resnet50", 2500.0), ("resnet101", 1500.0),
    ("convnext_tiny", 1500.0), ("convnext_small", 1000.0), ("convnext_base", 600.0),
    ("vit_small", 2500.0), ("vit_base", 1000.0), ("vit_large", 300.0),
    ("deit_small", 2500.0), ("deit_base", 1000.0),
)


@dataclass(frozen=True)
class Rate:
    """A throughput and where it came from.

    Attributes:
        per_second: Images per second on one device.
        device: The device it holds for: where it was measured (``"cpu"``, ``"cuda:0 (NVIDIA H200)"``, recorded by
            the stage that measured it), the one configured (``estimate.device``), ``"H100 (default)"``, or
            :data:`UNKNOWN_DEVICE`.
        source: Where the number came from ("given", "measured in this run", "default for ...").
    """

    per_second: float
    device: str
    source: str

    @property
    def on_cpu(self) -> bool:
        return self.device.lower().startswith("cpu")

    @property
    def known(self) -> bool:
        """Whether the device is known (a rate measured before runs recorded their device is not)."""
        return self.device.strip().lower() not in ("", "auto", UNKNOWN_DEVICE)

    @property
    def kind(self) -> str:
        """What one unit of the rate runs on, for "per ...": ``"CPU"``, ``"GPU"``, or ``"device"`` when unknown."""
        return "CPU" if self.on_cpu else "GPU" if self.known else "device"


def generation_rate(model: str, width: int, height: int, steps: int) -> Rate | None:
    """The default generation rate for a diffusers model id at this size and step count (None for the embedded
    tiny model, whose rate depends on the CPU it runs on)."""
    low = model.lower()
    if low == "embedded":
        return None
    for key, w, h, ref_steps, rate in GENERATION_DEFAULTS:
        if key in low:
            scaled = rate * (w * h) / (width * height) * ref_steps / max(steps, 1)
            return Rate(scaled, DEFAULT_DEVICE, f"default for {key or 'SD 1.x/2.x'} ({w}x{h}, {ref_steps} steps: "
                        f"{rate:g} img/s), scaled to {width}x{height}, {steps} steps")
    return None  # pragma: no cover - the last key matches everything


def training_rate(model: str, img_size: int) -> Rate | None:
    """The default training rate of a timm model at ``img_size`` (None for a model not in the table)."""
    for prefix, rate in TRAINING_DEFAULTS:
        if model.startswith(prefix):
            scaled = rate * (224 * 224) / (img_size * img_size)
            return Rate(scaled, DEFAULT_DEVICE, f"default for {prefix} (224 px: {rate:g} img/s), at {img_size} px")
    return None
