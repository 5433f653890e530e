"""The score stage: CLIP similarity of every generated image to its class description, its class's rank among all
classes, and the margin to the best other class (``scores.parquet``). Images are never deleted; a filter is a view
(:func:`synthdiv.generate.filter.filtered_manifest`).
"""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthdiv.errors import InputError
from synthdiv.generate.shards import read_manifest, shard_name, tar_path
from synthdiv.run import canonical_hash, read_jsonl, write_parquet_atomic
from synthdiv.schemas import SCORES_SCHEMA

if TYPE_CHECKING:
    from PIL import Image

    from synthdiv.config import RunConfig
    from synthdiv.run import RunDir

logger = logging.getLogger(__name__)

__all__ = ["score_images", "class_texts", "score_matrix", "iter_shard_images"]

_KEY = b"synthdiv.tar_key"


def class_texts(cfg: RunConfig, run: RunDir) -> list[str]:
    """One text per class index: ``score.template`` filled with the resolved description (else the class name)."""
    path = run.resolved if run.resolved.exists() else run.classes
    if not path.exists():
        raise InputError(f"{run.resolved}: not found; scoring needs the class descriptions (run `synthdiv classes`)")
    rows = sorted(read_jsonl(path), key=lambda r: r["index"])
    if [r["index"] for r in rows] != list(range(len(rows))):
        raise InputError(f"{path}: class indices are not 0..{len(rows) - 1}")
    return [cfg.score.template.format(description=r.get("description") or r["name"]) for r in rows]


def score_matrix(image_emb: np.ndarray, text_emb: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Similarity to the own class, rank of the own class (0 = best) and margin to the best other class."""
    sims = image_emb @ text_emb.T
    rows = np.arange(len(labels))
    own = sims[rows, labels]
    rank = (sims > own[:, None]).sum(axis=1)
    others = sims.copy()
    others[rows, labels] = -np.inf
    best_other = others.max(axis=1) if sims.shape[1] > 1 else np.full(len(labels), np.nan, dtype=sims.dtype)
    return {"similarity": own.astype(np.float32), "class_rank": rank.astype(np.int32),
            "margin": (own - best_other).astype(np.float32)}


def iter_shard_images(run: RunDir, shard: int, keys: list[str], ext: str) -> Iterator[Image.Image]:
    """The images ``keys`` of one shard, in that order."""
    from PIL import Image

    wanted = {f"{k}.{ext}" for k in keys}
    blobs: dict[str, bytes] = {}
    with tarfile.open(tar_path(run, shard)) as tf:
        for member in tf:
            if member.name in wanted:
                blobs[member.name] = tf.extractfile(member).read()
    for k in keys:
        img = Image.open(io.BytesIO(blobs[f"{k}.{ext}"]))
        yield img.convert("RGB")


def _shard_key(run: RunDir, shard: int) -> bytes:
    st = tar_path(run, shard).stat()
    return f"{st.st_size}:{st.st_mtime_ns}".encode()


def _cached(part: Path, key: bytes, ids: list[str]) -> pa.Table | None:
    """A shard's cached scores, if they were computed from this very tar for these images."""
    try:
        table = pq.read_table(part)
    except (OSError, pa.ArrowException):
        return None
    if (table.schema.metadata or {}).get(_KEY) != key or table.column("image_id").to_pylist() != ids:
        return None
    return table.replace_schema_metadata(None)


class _LazyScorer:
    """Creates the CLIP scorer and embeds the class texts only when a shard is not cached."""

    def __init__(self, cfg: RunConfig, texts: list[str]) -> None:
        self.cfg, self.texts = cfg, texts
        self.scorer: Any = None
        self.text_emb: np.ndarray | None = None

    def __call__(self, images: list[Image.Image], labels: np.ndarray) -> dict[str, np.ndarray]:
        if self.scorer is None:
            from synthdiv.clip import create_scorer

            self.scorer = create_scorer(self.cfg.models.clip)
            self.text_emb = self.scorer.embed_texts(self.texts)
        return score_matrix(self.scorer.embed_images(images), self.text_emb, labels)


def _score_shard(run: RunDir, shard: int, rows: pa.Table, score: _LazyScorer, bs: int, advance: Any) -> pa.Table:
    ids, labels = rows.column("image_id").to_pylist(), rows.column("class").to_numpy()
    images = iter_shard_images(run, shard, ids, rows.column("ext")[0].as_py())
    parts: dict[str, list[np.ndarray]] = {"similarity": [], "class_rank": [], "margin": []}
    for b in range(0, len(ids), bs):
        batch = [next(images) for _ in range(min(bs, len(ids) - b))]
        for key, value in score(batch, labels[b : b + len(batch)]).items():
            parts[key].append(value)
        advance(len(batch))
    return pa.table({"image_id": ids, **{k: np.concatenate(v) for k, v in parts.items()}}, schema=SCORES_SCHEMA)


def score_images(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """The score stage: embed every image of the manifest and its class texts; write ``scores.parquet``.

    Scores are kept per shard under ``cache/scores/<model and texts hash>/``, so an interrupted or re-run scoring
    (after more shards were generated) only embeds the shards it has not seen.
    """
    from rich.progress import Progress

    from synthdiv.generate.engine import require_complete

    require_complete(run, "score")  # never score part of the images without a word
    manifest = read_manifest(run)
    if not cfg.score.enabled or manifest.num_rows == 0:
        write_parquet_atomic(SCORES_SCHEMA.empty_table(), run.scores)
        return {"scored": 0, "enabled": cfg.score.enabled}
    texts = class_texts(cfg, run)
    labels_all = manifest.column("class").to_numpy()
    if labels_all.max() >= len(texts):
        raise InputError(f"{run.manifest}: class {int(labels_all.max())} has no description in {run.resolved.name}")
    clip = cfg.models.clip.model_dump(mode="json")
    cache = run.cache / "scores" / canonical_hash({"clip": clip, "texts": texts})[:16]
    score, tables, cached = _LazyScorer(cfg, texts), [], 0
    shard_col = manifest.column("shard").to_numpy()
    with Progress() as bar:
        task = bar.add_task("score", total=manifest.num_rows)
        for shard in dict.fromkeys(shard_col.tolist()):
            rows = manifest.filter(shard_col == shard)
            part, key = cache / f"{shard_name(shard)}.parquet", _shard_key(run, shard)
            table = _cached(part, key, rows.column("image_id").to_pylist())
            if table is None:
                table = _score_shard(run, shard, rows, score, cfg.score.batch_size, lambda n: bar.advance(task, n))
                write_parquet_atomic(table.replace_schema_metadata({_KEY: key}), part)
            else:
                cached += 1
                bar.advance(task, rows.num_rows)
            tables.append(table)
    table = pa.concat_tables(tables)
    write_parquet_atomic(table, run.scores)
    sim = table.column("similarity").to_numpy()
    top1 = float((table.column("class_rank").to_numpy() == 0).mean())
    logger.info("scored %d images with %s (%d shard(s) from the cache): mean similarity %.4f, own class first for "
                "%.1f%%", table.num_rows, cfg.models.clip.model, cached, float(sim.mean()), 100 * top1)
    return {"scored": table.num_rows, "cached_shards": cached, "mean_similarity": round(float(sim.mean()), 6),
            "top1": round(top1, 6)}
