"""Filters as views: which manifest rows training uses. Nothing is ever deleted from the shards.

``score.min_similarity`` keeps images at least that similar to their class text; ``score.keep_quantile`` keeps the
top fraction of each class. ``train.filters`` names more filters, built in (``clip-top1``, ``clip-prob``, ``dedup``,
``memorized``, ``classifier``) or defined under ``filters:`` (see :mod:`synthdiv.config.quality`); an image is kept
when it passes every one. Each selection is recorded with its parameters and per-class counts in
``filters/<names>.json``. With no scores or no filter, every manifest row is kept.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthdiv.config.quality import BUILTIN_FILTERS
from synthdiv.errors import ConfigError, InputError
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.generate.shards import read_manifest
from synthdiv.stages.score.stage import read_scores
from synthdiv.utils.hashing import canonical_hash
from synthdiv.utils.io import atomic_write_json, read_parquet_artifact

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["filtered_manifest", "keep_mask", "cross_class_mask", "duplicate_mask", "classifier_mask", "filter_masks",
           "keep_rates", "resolve_filters"]


def keep_mask(
    similarity: np.ndarray, labels: np.ndarray, min_similarity: float | None, keep_quantile: float | None
) -> np.ndarray:
    """Boolean mask of kept images; NaN similarity (an image not scored) is never kept by a filter.

    ``keep_quantile`` keeps the ``ceil(q * n)`` most similar of the ``n`` scored images of each class (ties at the
    cut are all kept).
    """
    keep = ~np.isnan(similarity)
    if min_similarity is not None:
        keep &= similarity >= min_similarity
    if keep_quantile is not None:
        for cls in np.unique(labels):
            scored = np.sort(similarity[(labels == cls) & ~np.isnan(similarity)])[::-1]
            if len(scored):
                cut = scored[max(1, math.ceil(keep_quantile * len(scored) - 1e-9)) - 1]
                keep[labels == cls] &= similarity[labels == cls] >= cut
    return keep


def cross_class_mask(prob: np.ndarray, rank: np.ndarray, num_classes: int, top_k: int | None,
                     min_prob: float | str | None, combine: str = "and") -> np.ndarray:
    """Keep an image when its class is among CLIP's ``top_k`` of all classes (``rank < top_k``) and/or its softmax
    probability is at least ``min_prob`` (``"auto"``: ``1 / num_classes``). Unscored images (NaN) are dropped."""
    tests = []
    if top_k is not None:
        tests.append(rank < top_k)
    if min_prob is not None:
        tests.append(prob >= (1.0 / num_classes if min_prob == "auto" else float(min_prob)))
    keep = np.logical_and.reduce(tests) if combine == "and" else np.logical_or.reduce(tests)
    return keep & ~np.isnan(prob)


def duplicate_mask(image_ids: np.ndarray, dup_of: np.ndarray, memorized: np.ndarray, within: bool,
                   real: bool) -> np.ndarray:
    """Keep the representative of each near-duplicate group (``within``) and/or drop memorized images (``real``);
    an image without duplicate columns (not scored) is dropped."""
    keep = np.array([d is not None for d in dup_of], dtype=bool)
    if within:
        keep &= dup_of == image_ids
    if real:
        keep &= ~memorized
    return keep


def classifier_mask(mislabeled: np.ndarray, easy: np.ndarray, drop: Sequence[str]) -> np.ndarray:
    """Drop the images the real-data classifier marks; ``mislabeled`` / ``easy`` are null (None) when not scored."""
    keep = np.array([m is not None for m in mislabeled], dtype=bool)
    if "mislabeled" in drop:
        keep &= np.array([not m for m in mislabeled], dtype=bool)
    if "easy" in drop:
        keep &= np.array([not e for e in easy], dtype=bool)
    return keep


def resolve_filters(cfg: RunConfig, names: Sequence[str]) -> dict[str, Any]:
    """The spec of each filter name: a definition under ``filters:``, else a built-in one."""
    specs = {}
    for name in names:
        spec = cfg.filters.get(name, BUILTIN_FILTERS.get(name))
        if spec is None:
            known = sorted({*BUILTIN_FILTERS, *cfg.filters})
            raise ConfigError(f"train.filters: unknown filter {name!r}; expected one of: {', '.join(known)}")
        specs[name] = spec
    return specs


def _joined(table: pa.Table, ids: pa.ChunkedArray, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """``columns`` of ``table`` for each id in ``ids`` (null / NaN where ``table`` lacks the id)."""
    idx = pc.index_in(ids, value_set=table.column("image_id"))
    out = {}
    for name in columns:
        col = pc.take(table.column(name), idx)
        if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
            out[name] = pc.fill_null(pc.cast(col, pa.float64()), float("nan")).to_numpy(zero_copy_only=False)
        else:
            out[name] = np.asarray(col.to_pylist(), dtype=object)
    return out


def _num_classes(run: RunDir, labels: np.ndarray) -> int:
    return len(read_classes(run.classes)) if run.classes.exists() else int(labels.max()) + 1


def filter_masks(cfg: RunConfig, run: RunDir, manifest: pa.Table, names: Sequence[str]) -> dict[str, np.ndarray]:
    """One boolean mask over ``manifest`` per active filter: ``similarity`` (the score section's) and each name."""
    s, masks = cfg.score, {}
    specs = resolve_filters(cfg, names)
    need_scores = s.min_similarity is not None or s.keep_quantile is not None or any(
        sp.kind != "classifier" for sp in specs.values())
    if not need_scores and not specs:
        return masks
    ids, labels = manifest.column("image_id"), manifest.column("class").to_numpy()
    cols: dict[str, np.ndarray] = {}
    if need_scores:
        if not run.scores.exists():
            raise InputError(f"{run.scores}: not found; the filters {', '.join(names) or 'of score'} need `synthdiv "
                             "score`")

        scores = read_scores(run)
        if not {"image_id", "similarity"} <= set(scores.column_names):
            raise InputError(f"{run.scores}: no 'image_id' and 'similarity' columns; run `synthdiv score --redo`")
        cols = _joined(scores, ids, [c for c in scores.column_names if c != "image_id"])
        missing = int(np.isnan(cols["similarity"]).sum())
        if missing:
            logger.warning("%d manifest images have no score (run `synthdiv score --redo`); the filters drop them",
                           missing)
    if s.min_similarity is not None or s.keep_quantile is not None:
        masks["similarity"] = keep_mask(cols["similarity"], labels, s.min_similarity, s.keep_quantile)
    for name, spec in specs.items():
        masks[name] = _mask(spec, cfg, run, manifest, cols, labels)
    return masks


def _mask(spec: Any, cfg: RunConfig, run: RunDir, manifest: pa.Table, cols: dict[str, np.ndarray],
          labels: np.ndarray) -> np.ndarray:
    if spec.kind == "similarity":
        return keep_mask(cols["similarity"], labels, spec.min_similarity, spec.keep_quantile)
    if spec.kind == "cross_class":
        if "prob" not in cols:
            raise InputError(f"{run.scores}: no 'prob' column (scored by an older synthdiv); run `synthdiv score "
                             "--redo`")
        return cross_class_mask(cols["prob"], cols["class_rank"], _num_classes(run, labels), spec.top_k,
                                spec.min_prob, spec.combine)
    if spec.kind == "duplicates":
        if "dup_of" not in cols:
            raise InputError(f"{run.scores}: no near-duplicate columns; run `synthdiv score --redo`")
        ids = np.asarray(manifest.column("image_id").to_pylist(), dtype=object)
        memorized = np.array([m is True for m in cols["memorized"]], dtype=bool)
        return duplicate_mask(ids, cols["dup_of"], memorized, spec.within, spec.real)
    path = run.classifier_scores
    if not path.exists():
        raise InputError(f"{path}: not found; set score.classifier.model and run `synthdiv score --redo`")
    clf = _joined(read_parquet_artifact(path, "score", ["image_id", "mislabeled", "easy"]), manifest.column("image_id"),
                  ["mislabeled", "easy"])
    return classifier_mask(clf["mislabeled"], clf["easy"], spec.drop)


def keep_rates(labels: np.ndarray, masks: dict[str, np.ndarray], num_classes: int | None = None) -> pa.Table:
    """Per class: images, images kept by each filter (``kept_<name>``), kept by all, and the keep rate."""
    n = int(num_classes if num_classes is not None else (labels.max() + 1 if len(labels) else 0))
    total = np.bincount(labels, minlength=n)
    cols: dict[str, Any] = {"class": np.arange(n, dtype=np.int32), "images": total}
    keep = np.ones(len(labels), dtype=bool)
    for name, mask in masks.items():
        cols[f"kept_{name}"] = np.bincount(labels[mask], minlength=n)
        keep &= mask
    cols["kept"] = np.bincount(labels[keep], minlength=n)
    cols["keep_rate"] = pa.array(cols["kept"] / np.maximum(total, 1), mask=total == 0)
    return pa.table(cols)


def filtered_manifest(cfg: RunConfig, run: RunDir, names: Sequence[str] | None = None) -> pa.Table:
    """The manifest rows kept by the score filter and the filters ``names`` (default ``train.filters``); all rows
    when there is no filter. The selection's parameters and per-class counts go to ``filters/<names>.json``."""
    manifest = read_manifest(run)
    names = list(cfg.train.filters if names is None else names)
    s = cfg.score
    if not names and ((s.min_similarity is None and s.keep_quantile is None) or not run.scores.exists()):
        return manifest
    masks = filter_masks(cfg, run, manifest, names)
    labels = manifest.column("class").to_numpy()
    keep = np.logical_and.reduce([*masks.values(), np.ones(len(labels), dtype=bool)])
    rates = keep_rates(labels, masks, _num_classes(run, labels) if len(labels) else 0)
    specs = resolve_filters(cfg, names)
    record = {"filters": {n: specs[n].model_dump(mode="json") for n in names},
              "score": {"min_similarity": s.min_similarity, "keep_quantile": s.keep_quantile},
              "images": len(labels), "kept": int(keep.sum()),
              "kept_by": {n: int(m.sum()) for n, m in masks.items()}, "per_class": rates.to_pylist()}
    stem = "+".join(names) or "score"
    if not re.fullmatch(r"[A-Za-z0-9_.+-]{1,120}", stem) or stem.startswith("."):
        stem = canonical_hash(names)[:16]
    atomic_write_json(run.root / "filters" / f"{stem}.json", record)
    logger.info("filters %s keep %d of %d images", ", ".join(masks) or "none", int(keep.sum()), len(keep))
    return manifest.filter(pa.array(keep))
