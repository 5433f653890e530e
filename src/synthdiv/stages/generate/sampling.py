"""Per-image sampling settings drawn from :class:`~synthdiv.config.sampling.SamplingConfig` and each image's seed,
and the config resolved for one generator (``diverse: true`` takes its model family's range and interval).

The draws are column-wise over the plan's seeds and use :func:`synthdiv.core.ids.seeded_uniform`, so an image gets the
same guidance scale whichever rank makes it and however often it is resumed.
"""

from __future__ import annotations

import numpy as np

from synthdiv.config.sampling import SamplingConfig
from synthdiv.core.ids import seeded_uniform
from synthdiv.models.generators.diffusers import diverse_sampling

__all__ = ["draw_guidance", "resolve_sampling"]


def draw_guidance(cfg: SamplingConfig, seeds: np.ndarray) -> np.ndarray | None:
    """One guidance scale per seed, or None when the config leaves guidance to the model (today's behaviour)."""
    seeds = np.asarray(seeds, dtype=np.int64)
    if cfg.guidance is not None:
        return np.full(len(seeds), float(cfg.guidance))
    u = seeded_uniform(seeds, "guidance")
    if cfg.guidance_choices is not None:
        choices = np.asarray(cfg.guidance_choices, dtype=np.float64)
        return choices[np.minimum((u * len(choices)).astype(np.int64), len(choices) - 1)]
    if cfg.guidance_range is not None:
        low, high = cfg.guidance_range
        return low + u * (high - low)
    return None


def resolve_sampling(cfg: SamplingConfig, model: str) -> SamplingConfig | None:
    """``cfg`` with ``diverse`` filled in from the model family's range and interval (where not set), or None when
    it leaves sampling to the model (then nothing is drawn or recorded)."""
    if not cfg.is_set:
        return None
    if not cfg.diverse:
        return cfg
    family_range, family_interval = diverse_sampling(model)
    update: dict = {"diverse": False}
    if not cfg.draws_guidance:
        update["guidance_range"] = family_range
    if cfg.interval is None:
        update["interval"] = family_interval
    resolved = cfg.model_copy(update=update)
    return resolved if resolved.is_set else None
