"""Which images a published folder holds, and each image's filter flags.

Filters are views in synthdiv (:mod:`synthdiv.stages.score.filters`): nothing is deleted, and a published folder
keeps it so. ``publish --all`` (the default) holds every image of the run with one ``keep_<filter>`` column per filter
the run can compute (the built-in ones whose scores exist, and every filter the config defines or a variant names),
plus ``in_train_view``: the images the root training config trains on. ``publish --view NAME`` holds only the images
of one view: a variant's (its ``filters``), or one filter's; a view never holds a degenerate image.

Some filters are defined over the whole run (``score.keep_quantile`` keeps a top share of each class), so the flags
are computed once over the manifest's narrow columns (``image_id``, ``class``, ``degenerate``) and the scores, as
training's own filter view does, and kept as one boolean array per filter in manifest order: a byte per image and
filter. The wide per-image rows are then read one shard at a time (:mod:`synthdiv.publish.metadata`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.compute as pc

from synthdiv.config.score import BUILTIN_FILTERS
from synthdiv.errors import ConfigError, InputError
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.score.reader import filter_masks, learner_mask

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["Views", "compute_views", "TRAIN_VIEW", "ALL"]

TRAIN_VIEW = "train"
ALL = "all"


@dataclass
class Views:
    """The filter flags over the manifest (in :func:`~synthdiv.stages.generate.reader.read_manifest` order) and the
    published view."""

    view: str
    flags: dict[str, np.ndarray] = field(default_factory=dict)
    train: np.ndarray | None = None  # in the root training config's view
    selected: np.ndarray | None = None  # the published images (None: every one)
    filters: dict[str, str] = field(default_factory=dict)  # filter name -> what it is, for the card


def _names(cfg: RunConfig, run: RunDir) -> tuple[list[str], list[str]]:
    """(filters the config names, built-in filters whose inputs exist)."""
    named = [*cfg.train.filters]
    for variant in cfg.train.variant_names():
        named += cfg.train.variant(variant).filters
    named += list(cfg.filters)
    named = list(dict.fromkeys(named))
    optional = []
    for name, spec in BUILTIN_FILTERS.items():
        needs = run.classifier_scores if spec.kind == "classifier" else run.scores
        if name not in named and needs.exists():
            optional.append(name)
    return named, optional


def _view_filters(cfg: RunConfig, view: str, known: list[str]) -> list[str]:
    if view == TRAIN_VIEW:
        return list(cfg.train.filters)
    if cfg.train.variants and view in cfg.train.variants:
        return list(cfg.train.variant(view).filters)
    if view in known:
        return [view]
    choices = ", ".join([ALL, TRAIN_VIEW, *(cfg.train.variants or {}), *known])
    raise ConfigError(f"--view: unknown view {view!r}; expected one of: {choices}")


def compute_views(cfg: RunConfig, run: RunDir, view: str = ALL) -> Views:
    """The filter flags of every image of the run and which of them the view ``view`` publishes.

    Raises:
        ConfigError: ``view`` names no variant or filter.
        InputError: A filter's scores are missing or damaged (named by the score stage's reader).
    """
    named, optional = _names(cfg, run)
    if view != ALL:
        _view_filters(cfg, view, [*named, *optional, *BUILTIN_FILTERS])
    manifest = read_manifest(run, ["image_id", "class", "degenerate"])
    masks = filter_masks(cfg, run, manifest, named) if named or run.scores.exists() else {}
    for name in optional:
        try:
            masks.update(filter_masks(cfg, run, manifest, [name]))
        except InputError as exc:  # a built-in filter nobody asked for, whose columns this run lacks: no flag
            logger.info("no %s flag: %s", name, exc)
    learner = learner_mask(run, manifest)
    if learner is not None:
        masks["learner"] = learner
    degenerate = (pc.fill_null(manifest.column("degenerate"), False).to_numpy(zero_copy_only=False)
                  if "degenerate" in manifest.column_names else np.zeros(manifest.num_rows, dtype=bool))

    def view_mask(filters: list[str]) -> np.ndarray:
        parts = [masks[n] for n in ("similarity", *filters, "learner") if n in masks]
        if any(n not in masks for n in filters):
            parts += list(filter_masks(cfg, run, manifest, [n for n in filters if n not in masks]).values())
        return np.logical_and.reduce([*parts, ~degenerate])

    out = Views(view=view, flags=masks, train=view_mask(list(cfg.train.filters)))
    out.filters = {n: _describe(cfg, n) for n in masks}
    if view != ALL:
        out.selected = view_mask(_view_filters(cfg, view, [*named, *optional, *BUILTIN_FILTERS]))
    return out


def _describe(cfg: RunConfig, name: str) -> str:
    if name == "similarity":
        s = cfg.score
        return f"score.min_similarity={s.min_similarity}, score.keep_quantile={s.keep_quantile}"
    if name == "learner":
        return "kept by the learner selection of a pooled adaptive round"
    spec = cfg.filters.get(name, BUILTIN_FILTERS.get(name))
    return ", ".join(f"{k}={v}" for k, v in spec.model_dump(mode="json").items()) if spec is not None else name
