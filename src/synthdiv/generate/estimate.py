"""``synthdiv estimate``: what a generation will cost before it runs: images, shards, disk and GPU-hours.

Images and shards come from the plan (or, before planning, from the plan budget and the class list). Disk size uses
the bytes per image of the shards already written, else a per-format guess. The rate is the one given, else the one
the generate stage measured in this run, else ``generate.images_per_second``.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.parquet as pq

from synthdiv.errors import InputError
from synthdiv.generate.shards import complete_shards, part_path, tar_path
from synthdiv.run import read_jsonl

if TYPE_CHECKING:
    from rich.table import Table

    from synthdiv.config import RunConfig
    from synthdiv.run import RunDir

logger = logging.getLogger(__name__)

__all__ = ["estimate", "planned_counts", "bytes_per_image", "guess_size"]

_BYTES_PER_PIXEL = {"jpg": 0.35, "webp": 0.25}  # of RGB pixels at quality ~90, photographic content
_OVERHEAD = 2048  # json metadata + two tar headers per image


def planned_counts(cfg: RunConfig, run: RunDir) -> tuple[int, int, str]:
    """(images, shards, source) from plan.parquet, else from the plan budget and classes.jsonl."""
    if run.plan.exists():
        shard = pq.read_table(run.plan, columns=["shard"]).column("shard").to_numpy()
        return len(shard), len(np.unique(shard)), "plan.parquet"
    p = cfg.plan
    if not run.classes.exists():
        raise InputError(f"{run.plan}: not found and no {run.classes.name} to budget from: run `synthdiv classes`")
    classes = read_jsonl(run.classes)
    if p.images_per_class is not None:
        images = p.images_per_class * len(classes)
    elif p.multiple_of_real is not None:
        images = sum(math.ceil(p.multiple_of_real * (c.get("real_images") or 0)) for c in classes)
    elif p.top_up_to is not None:
        images = sum(max(0, p.top_up_to - (c.get("real_images") or 0)) for c in classes)
    else:
        raise InputError("plan: no budget; set plan.images_per_class, plan.multiple_of_real or plan.top_up_to")
    if p.max_images is not None:
        images = min(images, p.max_images)
    return images, math.ceil(images / p.shard_size), "plan budget"


def guess_size(cfg: RunConfig) -> tuple[int, int]:
    """The stored image size: generator options, else the model family's native size; capped by max_side."""
    opts, model = cfg.models.generator.options, cfg.models.generator.model.lower()
    native = 32 if model == "embedded" else 1024 if any(k in model for k in ("xl", "flux", "stable-diffusion-3",
                                                                              "pixart")) else 512
    w, h = int(opts.get("width") or native), int(opts.get("height") or native)
    m = cfg.generate.max_side
    if m is not None and max(w, h) > m:
        w, h = round(w * m / max(w, h)), round(h * m / max(w, h))
    return w, h


def bytes_per_image(cfg: RunConfig, run: RunDir) -> tuple[float, str]:
    """Mean stored bytes per image of the shards written so far, else a per-format guess."""
    done = complete_shards(run)
    if done:
        size = sum(tar_path(run, s).stat().st_size for s in done)
        count = sum(pq.read_metadata(part_path(run, s)).num_rows for s in done)
        return size / max(count, 1), f"measured on {len(done)} shard(s)"
    w, h = guess_size(cfg)
    return w * h * 3 * _BYTES_PER_PIXEL[cfg.generate.image_format] + _OVERHEAD, f"guessed for {w}x{h}"


def _rate(cfg: RunConfig, run: RunDir, given: float | None) -> tuple[float | None, str]:
    if given is not None:
        return given, "given"
    state = run.read_state("generate")
    measured = (state.summary or {}).get("images_per_second") if state is not None else None
    if measured:
        return float(measured), f"measured in this run ({cfg.models.generator.device})"
    if cfg.generate.images_per_second is not None:
        return cfg.generate.images_per_second, "generate.images_per_second"
    return None, "unknown: pass --images-per-second or set generate.images_per_second"


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def estimate(cfg: RunConfig, images_per_second: float | None = None) -> Table:
    """A table of images, shards, disk size and GPU-hours of the run's generation."""
    from rich.table import Table

    from synthdiv.run import RunDir

    if images_per_second is not None and images_per_second <= 0:
        raise InputError(f"--images-per-second: expected a positive number, got {images_per_second}")
    run = RunDir(cfg.run_dir)
    images, shards, source = planned_counts(cfg, run)
    per_image, size_note = bytes_per_image(cfg, run)
    rate, rate_note = _rate(cfg, run, images_per_second)
    table = Table(title=f"generation estimate for {run.root}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("from")
    table.add_row("images", f"{images:,}", source)
    table.add_row("shards", f"{shards:,}", f"{cfg.plan.shard_size} images per shard")
    table.add_row("disk", _human_bytes(images * per_image), f"{_human_bytes(per_image)}/image, {size_note}")
    table.add_row("images/s per GPU", f"{rate:g}" if rate else "-", rate_note)
    hours = images / rate / 3600 if rate else None
    table.add_row("GPU-hours", f"{hours:,.2f}" if hours is not None else "-", "images / rate")
    return table
