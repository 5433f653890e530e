"""The quality half of the score stage, from the stored embeddings: the real sample's embeddings, near-duplicate
columns of ``scores.parquet`` and the per-class / per-kind metrics of ``quality.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from synthdiv.core.schemas import SCORES_SCHEMA
from synthdiv.data.real import real_dir_roots, real_samples
from synthdiv.metrics.diversity import group_metrics
from synthdiv.metrics.near_duplicates import nearest_in, nearest_within
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.disambiguate.reader import read_resolved
from synthdiv.stages.score.embeddings import EmbeddingSet, write_real
from synthdiv.utils.decode import SkipTally, UnreadableImage, decode_image, describe, max_pixels_of
from synthdiv.utils.hashing import canonical_hash
from synthdiv.utils.io import NPY_DAMAGE, atomic_write, atomic_write_json

if TYPE_CHECKING:
    from pathlib import Path

    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["embed_real", "duplicate_table", "quality_metrics", "DUPLICATE_SCHEMA"]

# the near-duplicate columns of scores.parquet (see synthdiv.core.schemas.SCORES_SCHEMA for their meaning)
DUPLICATE_SCHEMA = pa.schema([SCORES_SCHEMA.field("image_id"), *(f for f in SCORES_SCHEMA if f.name in (
    "nn_id", "nn_cosine", "dup_of", "real_nn", "real_nn_cosine", "memorized"))])


def embed_real(cfg: RunConfig, run: RunDir, cache: Path, embed: Callable[[list[Any]], np.ndarray]) -> SkipTally:
    """Embed up to ``score.real_per_class`` real images of each class (a seeded sample) into ``embeddings/real.*``;
    the embeddings are cached under ``cache`` by the sample's paths and byte ranges and the pixel bound.

    Images are decoded under the decoder policy (:mod:`synthdiv.utils.decode`): an empty, truncated, damaged or
    oversized image is skipped, never fatal. Returns the skipped images (counted per class; the same from the cache).
    """
    per_class = cfg.score.real_per_class
    samples = None
    if per_class != 0:
        classes = read_resolved(run.resolved) if run.resolved.exists() else read_classes(run.classes)
        samples = real_samples(classes, cfg.train.real_root, run.cache / "tar-index",
                               real_dir_roots(cfg))
    if samples is None or len(samples) == 0:
        write_real(run, [], np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
        return SkipTally()
    rng = np.random.default_rng(cfg.seed)
    picked = []
    for cls in np.unique(samples.labels):
        rows = np.flatnonzero(samples.labels == cls)
        picked.append(rows if per_class is None or len(rows) <= per_class else np.sort(rng.choice(rows, per_class,
                                                                                                   replace=False)))
    sample = samples.take(np.concatenate(picked))
    keys = [str(k) for k in sample.keys]
    bound = max_pixels_of(cfg)
    ident = canonical_hash([keys, sample.offsets.tolist(), sample.sizes.tolist(), bound])[:16]
    part = cache / f"real-{ident}.npz"
    got = _load_real_cache(part, ident)
    if got is None:
        got = _embed_sample(sample, keys, embed, max(1, cfg.score.batch_size), bound)
        _save_real_cache(part, ident, *got)
    used, emb, skipped = got
    if skipped.total:
        logger.warning("score: %s", skipped.line("real image(s)"))
    pos = {k: i for i, k in enumerate(keys)}
    write_real(run, used, sample.labels[[pos[k] for k in used]].astype(np.int64), emb)
    return skipped


def _embed_sample(sample: Any, keys: list[str], embed: Callable[[list[Any]], np.ndarray], batch: int, bound: int
                  ) -> tuple[list[str], np.ndarray, SkipTally]:
    """``(keys embedded, their embeddings, the images skipped)``, decoding ``batch`` images at a time."""
    used: list[str] = []
    parts: list[np.ndarray] = []
    skipped = SkipTally()
    for start in range(0, len(sample), batch):
        images = []
        for i in range(start, min(start + batch, len(sample))):
            try:
                images.append(decode_image(sample.read(i), bound, keys[i]))
            except (UnreadableImage, OSError) as exc:  # OSError: the file went away or cannot be opened
                skipped.add(int(sample.labels[i]), keys[i], describe(exc))
                continue
            used.append(keys[i])
        if images:
            parts.append(np.asarray(embed(images), dtype=np.float32))
    return used, np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32), skipped


def _load_real_cache(path: Path, ident: str) -> tuple[list[str], np.ndarray, SkipTally] | None:
    """The cached ``(keys embedded, embeddings, skipped)`` of the real sample ``ident``, or None (a miss)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != ident:
                return None
            skipped = json.loads(str(z["skipped"]))
            tally = SkipTally()
            for label, count in skipped["per_class"]:
                tally.per_class[int(label)] += int(count)
            tally.examples = [str(e) for e in skipped["examples"]]
            used, emb = [str(k) for k in z["ids"].tolist()], np.asarray(z["emb"])
    except (*NPY_DAMAGE, AttributeError):  # absent, damaged or of an older synthdiv: embed again
        return None
    if emb.ndim != 2 or len(emb) != len(used):
        return None
    return used, emb, tally


def _save_real_cache(path: Path, ident: str, used: list[str], emb: np.ndarray, skipped: SkipTally) -> None:
    record = {"per_class": sorted(skipped.per_class.items()), "examples": skipped.examples}
    with atomic_write(path) as fh:
        np.savez(fh, key=np.array(ident), ids=np.array(used, dtype=str), emb=emb.astype(np.float32),
                 skipped=np.array(json.dumps(record)))


def duplicate_table(cfg: RunConfig, syn: EmbeddingSet, real: EmbeddingSet | None) -> pa.Table:
    """Per synthetic image: its nearest synthetic neighbour in its class, its duplicate group's representative, and
    its nearest real image of the class (rows in ``syn`` order); with ``score.duplicates.enabled: false``, every
    image is its own representative and the neighbour columns are null."""
    d = cfg.score.duplicates
    n = len(syn.ids)
    search = d.enabled
    nn_id = np.full(n, None, dtype=object)
    dup_of = syn.ids.copy()
    nn_cos = np.full(n, np.nan, dtype=np.float32)
    real_nn = np.full(n, None, dtype=object)
    real_cos = np.full(n, np.nan, dtype=np.float32)
    for cls in np.unique(syn.labels) if search else ():
        rows = syn.rows(int(cls))
        emb, ids = np.asarray(syn.emb[rows]), syn.ids[rows]
        nn, groups = nearest_within(emb, d.threshold, d.block_size, d.device)
        nn_id[rows] = np.where(nn.index >= 0, ids[np.maximum(nn.index, 0)], None)
        nn_cos[rows] = nn.cosine
        dup_of[rows] = ids[groups]
        if real is not None:
            rrows = real.rows(int(cls))
            if rrows.stop > rrows.start:
                rn = nearest_in(emb, np.asarray(real.emb[rrows]), d.block_size, d.device)
                real_nn[rows] = real.ids[rrows][rn.index]
                real_cos[rows] = rn.cosine
    memorized = np.where(np.isnan(real_cos), False, real_cos >= d.real_threshold)
    return pa.table({"image_id": syn.ids.tolist(), "nn_id": nn_id.tolist(),
                     "nn_cosine": pa.array(nn_cos, mask=np.isnan(nn_cos)), "dup_of": dup_of.tolist(),
                     "real_nn": real_nn.tolist(), "real_nn_cosine": pa.array(real_cos, mask=np.isnan(real_cos)),
                     "memorized": memorized}, schema=DUPLICATE_SCHEMA)


def quality_metrics(cfg: RunConfig, run: RunDir, syn: EmbeddingSet, real: EmbeddingSet | None,
                    dups: pa.Table, skipped: SkipTally | None = None) -> dict[str, Any]:
    """Diversity and fidelity per class and per (class, prompt kind), duplicate counts per class, and the real images
    skipped as unreadable (``real_unreadable``: count, per class index, the first few named); written to
    ``quality.json`` and returned."""
    m = cfg.score.metrics
    rng = np.random.default_rng(cfg.seed)
    is_dup = np.asarray(dups.column("dup_of").to_pylist(), dtype=object) != syn.ids
    memorized = dups.column("memorized").to_numpy(zero_copy_only=False)

    def sample(emb: np.ndarray) -> np.ndarray:
        if m.max_images is not None and len(emb) > m.max_images:
            return emb[np.sort(rng.choice(len(emb), m.max_images, replace=False))]
        return emb

    classes: dict[str, Any] = {}
    for cls in np.unique(syn.labels):
        rows = syn.rows(int(cls))
        emb = np.asarray(syn.emb[rows], dtype=np.float32)
        ref = None
        if real is not None and (rr := real.rows(int(cls))).stop > rr.start:
            ref = sample(np.asarray(real.emb[rr], dtype=np.float32))
        entry: dict[str, Any] = {"duplicates": int(is_dup[rows].sum()), "memorized": int(memorized[rows].sum())}
        if m.enabled:
            args = (m.k, m.kid_subset, m.kid_subsets, cfg.seed)
            entry["all"] = group_metrics(sample(emb), ref, *args)
            kinds = syn.kinds[rows]
            for kind in sorted(set(kinds.tolist())):
                entry[str(kind)] = group_metrics(sample(emb[kinds == kind]), ref, *args)
        classes[str(int(cls))] = entry
    out = {"model": cfg.models.clip.model, "duplicates": cfg.score.duplicates.model_dump(mode="json"),
           "metrics": m.model_dump(mode="json"), "images": len(syn.ids),
           "real_images": 0 if real is None else len(real.ids), "classes": classes}
    if skipped is not None and skipped.total:
        out["real_unreadable"] = skipped.summary("images")
    atomic_write_json(run.quality, out)
    return out
