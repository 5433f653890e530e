"""The score stage: CLIP similarity of every generated image to its class description, its class's rank among all
classes, and the margin to the best other class (``scores.parquet``). Images are never deleted; a filter is a view
(:func:`synthdiv.generate.filter.filtered_manifest`).
"""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from synthdiv.errors import InputError
from synthdiv.generate.shards import read_manifest, tar_path
from synthdiv.run import read_jsonl, write_parquet_atomic
from synthdiv.schemas import SCORES_SCHEMA

if TYPE_CHECKING:
    from PIL import Image

    from synthdiv.config import RunConfig
    from synthdiv.run import RunDir

logger = logging.getLogger(__name__)

__all__ = ["score_images", "class_texts", "score_matrix", "iter_shard_images"]


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


def score_images(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """The score stage: embed every image of the manifest and its class texts; write ``scores.parquet``."""
    from rich.progress import Progress

    manifest = read_manifest(run)
    if not cfg.score.enabled or manifest.num_rows == 0:
        write_parquet_atomic(SCORES_SCHEMA.empty_table(), run.scores)
        return {"scored": 0, "enabled": cfg.score.enabled}
    from synthdiv.clip import create_scorer

    texts = class_texts(cfg, run)
    labels_all = manifest.column("class").to_numpy()
    if labels_all.max() >= len(texts):
        raise InputError(f"{run.manifest}: class {int(labels_all.max())} has no description in {run.resolved.name}")
    scorer = create_scorer(cfg.models.clip)
    text_emb = scorer.embed_texts(texts)
    shards, ids, exts = (manifest.column(c).to_pylist() for c in ("shard", "image_id", "ext"))
    parts: dict[str, list[np.ndarray]] = {"similarity": [], "class_rank": [], "margin": []}
    bs = cfg.score.batch_size
    with Progress() as bar:
        task = bar.add_task("score", total=len(ids))
        lo = 0
        while lo < len(ids):
            hi = lo
            while hi < len(ids) and shards[hi] == shards[lo]:
                hi += 1
            images = iter_shard_images(run, shards[lo], ids[lo:hi], exts[lo])
            for b in range(lo, hi, bs):
                batch = [next(images) for _ in range(min(bs, hi - b))]
                out = score_matrix(scorer.embed_images(batch), text_emb, labels_all[b : b + len(batch)])
                for key, value in out.items():
                    parts[key].append(value)
                bar.advance(task, len(batch))
            lo = hi
    table = pa.table({"image_id": ids, **{k: np.concatenate(v) for k, v in parts.items()}}, schema=SCORES_SCHEMA)
    write_parquet_atomic(table, run.scores)
    sim = table.column("similarity").to_numpy()
    top1 = float((table.column("class_rank").to_numpy() == 0).mean())
    logger.info("scored %d images with %s: mean similarity %.4f, own class ranked first for %.1f%%",
                len(ids), getattr(scorer, "model_id", cfg.models.clip.model), float(sim.mean()), 100 * top1)
    return {"scored": len(ids), "mean_similarity": round(float(sim.mean()), 6), "top1": round(top1, 6)}
