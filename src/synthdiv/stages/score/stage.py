"""The score stage: CLIP similarity of every generated image to its class description, its class's rank among all
classes, the margin to the best other class and its class's softmax probability over all classes, then the
near-duplicate columns and the quality metrics from the stored embeddings (``scores.parquet``, ``embeddings/``,
``quality.json``). Images are never deleted; a filter is a view
(:func:`synthdiv.stages.score.reader.filtered_manifest`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthdiv.core.rundir import shard_name
from synthdiv.core.schemas import SCORES_SCHEMA, with_format
from synthdiv.errors import InputError
from synthdiv.models.clip import create_scorer
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.disambiguate.reader import read_resolved
from synthdiv.stages.generate.reader import iter_shard_images, read_manifest, require_complete
from synthdiv.stages.prompts.reader import prompt_kinds
from synthdiv.stages.score.assess import DUPLICATE_SCHEMA, duplicate_table, embed_real, quality_metrics
from synthdiv.stages.score.classifier import classify_images
from synthdiv.stages.score.embeddings import (
    load_real,
    load_shard_cache,
    load_synthetic,
    save_shard_cache,
    tar_key,
    write_synthetic,
)
from synthdiv.stages.score.learner import select_pools
from synthdiv.utils.hashing import canonical_hash
from synthdiv.utils.io import write_parquet_atomic
from synthdiv.utils.progress import Progress

if TYPE_CHECKING:
    from PIL import Image

    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir
    from synthdiv.utils.decode import SkipTally

logger = logging.getLogger(__name__)

__all__ = ["build", "score_images", "class_texts", "score_matrix",
           "real_images_summary"]


def class_texts(cfg: RunConfig, run: RunDir) -> list[str]:
    """One text per class index: ``score.template`` filled with the resolved description (else the class name)."""
    rows = read_resolved(run.resolved) if run.resolved.exists() else read_classes(run.classes)
    return [cfg.score.template.format(description=r.get("description") or r["name"]) for r in rows]


def score_matrix(
    image_emb: np.ndarray, text_emb: np.ndarray, labels: np.ndarray, logit_scale: float | None = None
) -> dict[str, np.ndarray]:
    """Similarity to the own class, rank of the own class (0 = best) and margin to the best other class; with
    ``logit_scale``, also the own class's softmax probability over all classes of ``logit_scale * cosine`` and the
    best other class (-1 when there is none)."""
    sims = image_emb @ text_emb.T
    rows = np.arange(len(labels))
    own = sims[rows, labels]
    rank = (sims > own[:, None]).sum(axis=1)
    others = sims.copy()
    others[rows, labels] = -np.inf
    best_other = others.max(axis=1) if sims.shape[1] > 1 else np.full(len(labels), np.nan, dtype=sims.dtype)
    out = {"similarity": own.astype(np.float32), "class_rank": rank.astype(np.int32),
           "margin": (own - best_other).astype(np.float32)}
    if logit_scale is not None:
        logits = logit_scale * sims.astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits[rows, labels]) / np.exp(logits).sum(axis=1)
        out["prob"] = prob.astype(np.float32)
        out["best_other"] = (others.argmax(axis=1) if sims.shape[1] > 1 else np.full(len(labels), -1)).astype(np.int32)
    return out


def _shard_key(run: RunDir, shard: int) -> str:
    return tar_key(run.shard_tar(shard))


class _LazyScorer:
    """Creates the CLIP scorer only when an image or text must be embedded (a fully cached run never loads it)."""

    def __init__(self, cfg: RunConfig, texts: list[str], cache: Path) -> None:
        self.cfg, self.texts, self.cache = cfg, texts, cache
        self.scorer: Any = None
        self._text_emb: np.ndarray | None = None
        self._scale: float | None = None

    def _model(self) -> Any:
        if self.scorer is None:
            self.scorer = create_scorer(self.cfg.models.clip)
        return self.scorer

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return self._model().embed_images(images)

    @property
    def text_emb(self) -> np.ndarray:
        if self._text_emb is None:
            part, key = self.cache / "texts.npz", canonical_hash(self.texts)
            self._text_emb = load_shard_cache(part, key, [key])
            if self._text_emb is None:
                self._text_emb = self._model().embed_texts(self.texts)
                save_shard_cache(part, key, [key], self._text_emb)
        return self._text_emb

    def logit_scale(self) -> float:
        """``score.logit_scale / score.temperature``; the model's own learned scale when none is set (100, CLIP's,
        for a backend that has none), kept in the cache beside the text embeddings like them."""
        scale = self.cfg.score.logit_scale
        if scale is None:
            if self._scale is None:
                part, key = self.cache / "logit_scale.npz", "logit_scale"
                cached = load_shard_cache(part, key, [key])
                if cached is None:
                    param = getattr(getattr(self._model(), "model", None), "logit_scale", None)
                    cached = np.array([[float(param.detach().float().exp().item()) if param is not None else 100.0]])
                    save_shard_cache(part, key, [key], cached)
                self._scale = float(cached[0, 0])
            scale = self._scale
        return scale / self.cfg.score.temperature


def _shard_embeddings(run: RunDir, shard: int, rows: pa.Table, score: _LazyScorer, bs: int, advance: Any
                      ) -> tuple[np.ndarray, bool]:
    """A shard's image embeddings in manifest order, from the cache when the tar is unchanged; and whether cached."""
    ids = rows.column("image_id").to_pylist()
    part, key = score.cache / f"{shard_name(shard)}.npz", _shard_key(run, shard)
    emb = load_shard_cache(part, key, ids)
    if emb is not None:
        advance(len(ids))
        return emb, True
    images = iter_shard_images(run, rows)
    parts = []
    for b in range(0, len(ids), bs):
        parts.append(score.embed_images([next(images) for _ in range(min(bs, len(ids) - b))]))
        advance(len(parts[-1]))
    emb = np.concatenate(parts)
    save_shard_cache(part, key, ids, emb)
    return emb, False


def build(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """The score stage: embed every image of the manifest and its class texts; write ``scores.parquet``, the stored
    embeddings (``embeddings/``), near-duplicate columns, ``quality.json`` and, when ``score.classifier.model`` is
    set, ``classifier_scores.parquet``; when adaptive rounds over-generated a pool, ``learner_scores.parquet``
    (:mod:`synthdiv.stages.score.learner`).

    Image embeddings are kept per shard under ``cache/embeddings/<model hash>/``, so an interrupted or re-run scoring
    (after more shards were generated, or with other texts or thresholds) only embeds the shards it has not seen.
    """
    require_complete(run, "score")  # never score part of the images without a word
    manifest = read_manifest(run)
    learner = select_pools(cfg, run, manifest)
    pooled = {"learner": learner} if learner else {}
    if not cfg.score.enabled or manifest.num_rows == 0:
        write_parquet_atomic(with_format(SCORES_SCHEMA, "scores").empty_table(), run.scores)
        return {"scored": 0, "enabled": cfg.score.enabled, **pooled}
    texts = class_texts(cfg, run)
    labels_all = manifest.column("class").to_numpy()
    if labels_all.max() >= len(texts):
        raise InputError(f"{run.manifest}: class {int(labels_all.max())} has no description in {run.resolved.name}")
    clip = cfg.models.clip.model_dump(mode="json")
    cache = run.cache / "embeddings" / canonical_hash({"clip": clip})[:16]
    score, cached, shard_col = _LazyScorer(cfg, texts, cache), 0, manifest.column("shard").to_numpy()
    positions: dict[int, np.ndarray] = {}
    tables = []
    with Progress() as bar:
        task = bar.add_task("score", total=manifest.num_rows)
        for shard in dict.fromkeys(shard_col.tolist()):
            positions[shard] = np.flatnonzero(shard_col == shard)
            rows = manifest.take(positions[shard])
            emb, hit = _shard_embeddings(run, shard, rows, score, cfg.score.batch_size, lambda n: bar.advance(task, n))
            cached += hit
            cols = score_matrix(emb, score.text_emb, rows.column("class").to_numpy(), score.logit_scale())
            tables.append(pa.table({"image_id": rows.column("image_id"), **cols}))
    ids = manifest.column("image_id").to_pylist()
    dim = score.text_emb.shape[1]
    write_synthetic(run, ids, labels_all, prompt_kinds(run, manifest.column("prompt_id")), dim,
                    ((positions[s], load_shard_cache(cache / f"{shard_name(s)}.npz", _shard_key(run, s),
                                                     [ids[i] for i in positions[s]])) for s in positions))
    table = pa.concat_tables(tables)
    table, skipped = _with_quality(cfg, run, table, score, cache)
    write_parquet_atomic(table.replace_schema_metadata(with_format(table.schema, "scores").metadata), run.scores)
    sim = table.column("similarity").to_numpy()
    top1 = float((table.column("class_rank").to_numpy() == 0).mean())
    dups = int(pc.sum(pc.not_equal(table.column("dup_of"), table.column("image_id"))).as_py() or 0)
    logger.info("scored %d images with %s (%d shard(s) from the cache): mean similarity %.4f, own class first for "
                "%.1f%%, %d near-duplicate(s)", table.num_rows, cfg.models.clip.model, cached, float(sim.mean()),
                100 * top1, dups)
    summary = {"scored": table.num_rows, "cached_shards": cached, "mean_similarity": round(float(sim.mean()), 6),
               "top1": round(top1, 6), "logit_scale": round(score.logit_scale(), 4), "duplicates": dups,
               **real_images_summary(skipped, run), **pooled}
    if cfg.score.classifier.model is not None:
        summary["classifier"] = classify_images(cfg, run)
    return summary


def real_images_summary(skipped: SkipTally, run: RunDir) -> dict[str, Any]:
    """The score summary's account of the user's real images it skipped (empty when none): their count, the count
    per class name, the first few named, and a one-line note for the log and ``status``."""
    if not skipped.total:
        return {}

    names = {int(r["index"]): str(r["name"]) for r in read_classes(run.classes)}
    out = skipped.summary("real_unreadable", names)
    out["real_unreadable_note"] = skipped.line("real image(s)", names)
    return out


def _with_quality(cfg: RunConfig, run: RunDir, table: pa.Table, score: _LazyScorer, cache: Path
                  ) -> tuple[pa.Table, SkipTally]:
    """``table`` (manifest order) with the near-duplicate columns, and the real images skipped as unreadable; writes
    the real embeddings and ``quality.json``."""
    skipped = embed_real(cfg, run, cache, score.embed_images)
    syn, real = load_synthetic(run), load_real(run)
    dups = duplicate_table(cfg, syn, real)
    quality_metrics(cfg, run, syn, real, dups, skipped)
    idx = pc.index_in(table.column("image_id"), value_set=dups.column("image_id"))
    for field in DUPLICATE_SCHEMA:
        if field.name != "image_id":
            table = table.append_column(field, pc.take(dups.column(field.name), idx))
    return table.cast(SCORES_SCHEMA), skipped


score_images = build  # the name callers used in synthdiv 0.1
