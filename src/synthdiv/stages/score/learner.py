"""Learner selection: an adaptive round with ``adapt.pool_factor > 1`` generated a pool of about ``factor`` times the
images it gave each class, and the train view keeps, per class, the ones the model the round was planned from finds
most informative (ActGen, Feedback-guided Data Synthesis, Deliberate Practice: images the learner already gets right
teach it little).

The model is the copy of the variant's export taken when the round was planned (``RunDir.round_model``), so the kept
set is the same whenever the score stage runs again. Nothing is deleted: ``learner_scores.parquet`` lists every pooled
image with its informativeness and whether it is kept, and :func:`synthdiv.stages.score.reader.filtered_manifest`
leaves out the others.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthdiv.core.schemas import LEARNER_SCORES_SCHEMA, with_format
from synthdiv.data.predict import eval_transform
from synthdiv.data.synthetic import manifest_samples
from synthdiv.errors import InputError
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.plan.reader import plan_rounds
from synthdiv.stages.score.classifier import load_model, predict_probs
from synthdiv.utils.devices import resolve_device
from synthdiv.utils.io import write_parquet_atomic

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["MEASURES", "informativeness", "most_informative", "pooled_rounds", "select_pools"]

MEASURES = ("entropy", "margin", "loss")


def informativeness(probs: np.ndarray, labels: np.ndarray, measure: str) -> np.ndarray:
    """How much an image can still teach the model, higher is more, from its class probabilities (N, C):
    ``entropy`` of the prediction, ``margin`` (minus the gap between the two most probable classes), or ``loss``
    (minus the log-probability of the image's own class)."""
    probs = np.asarray(probs, dtype=np.float64)
    if measure == "entropy":
        return -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1)
    if measure == "margin":
        if probs.shape[1] < 2:
            return np.zeros(len(probs))
        top2 = np.sort(probs, axis=1)[:, -2:]
        return -(top2[:, 1] - top2[:, 0])
    if measure == "loss":
        return -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))
    raise ValueError(f"informativeness: unknown measure {measure!r}; expected one of: {', '.join(MEASURES)}")


def most_informative(scores: np.ndarray, labels: np.ndarray, keep: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
    """Boolean mask keeping, per class ``c``, the ``keep[c]`` images of highest ``scores`` (ties: the smaller image
    id first, so the set does not depend on row order)."""
    labels = np.asarray(labels, dtype=np.int64)
    order = np.lexsort((np.asarray(image_ids, dtype=str), -np.asarray(scores, dtype=np.float64), labels))
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.arange(len(order)) - starts  # position within its class, most informative first
    out = np.zeros(len(labels), dtype=bool)
    out[order] = rank < np.asarray(keep, dtype=np.int64)[sorted_labels]
    return out


def pooled_rounds(run: RunDir) -> list[dict[str, Any]]:
    """The plan's adaptive rounds that generated a pool to select from."""
    return [r for r in plan_rounds(run.plan) if r.get("pool_factor", 1) > 1] if run.plan.exists() else []


def _round_rows(manifest: pa.Table, record: dict[str, Any]) -> pa.Table:
    first = int(record["first_shard"])
    shard = manifest.column("shard")
    rows = manifest.filter(pc.and_(pc.greater_equal(shard, first), pc.less(shard, first + int(record["shards"]))))
    if "degenerate" in rows.column_names:  # never trained on, so never counted among the kept
        rows = rows.filter(pc.invert(pc.fill_null(rows.column("degenerate"), False)))
    return rows


def select_pools(cfg: RunConfig, run: RunDir, manifest: pa.Table) -> dict[str, Any]:
    """Score each pooled round's images with the round's model; write ``learner_scores.parquet`` (removed when the
    plan has no pooled round). Returns a summary for the stage's record.

    Raises:
        InputError: A pooled round's model copy is missing (the round was planned by another synthdiv, or the copy
            was removed).
    """
    rounds = pooled_rounds(run)
    if not rounds:
        run.learner_scores.unlink(missing_ok=True)  # left by a plan redone without its rounds
        return {}
    device = resolve_device(cfg.score.classifier.device, "score.classifier.device")
    num_classes = len(read_classes(run.classes))
    tables, kept = [], 0
    for record in rounds:
        rows = _round_rows(manifest, record)
        folder = run.round_model(int(record["round"]))
        if not (folder / "config.json").is_file():
            raise InputError(f"{folder}: no config.json; adaptive round {record['round']} selects its pool with the "
                             "model it was planned from (`synthdiv adapt` copies it there)")
        model = load_model(f"local-dir:{folder}", "adapt.pool_factor").eval().to(device)
        samples = manifest_samples(rows, run, num_classes)
        probs = predict_probs(model, samples, eval_transform(model), cfg, device, cfg.score.classifier.batch_size)
        ids = np.asarray([str(k) for k in samples.keys], dtype=object)
        score = informativeness(probs, samples.labels, record["select"])
        keep = most_informative(score, samples.labels, np.asarray(record["keep"]), ids)
        kept += int(keep.sum())
        tables.append(pa.table({"image_id": pa.array(ids.tolist(), pa.string()),
                                "round": pa.array(np.full(len(ids), int(record["round"])), pa.int32()),
                                "class": pa.array(samples.labels, pa.int32()),
                                "informativeness": pa.array(score, pa.float32()), "kept": pa.array(keep)},
                               schema=LEARNER_SCORES_SCHEMA))
        logger.info("adapt round %d: kept the %d of %d pooled images %s finds most informative (%s)", record["round"],
                    int(keep.sum()), len(keep), folder.parent.name, record["select"])
    table = pa.concat_tables(tables)
    write_parquet_atomic(table.replace_schema_metadata(with_format(table.schema, "learner_scores").metadata),
                         run.learner_scores)
    return {"pooled_rounds": len(rounds), "pooled_images": table.num_rows, "kept": kept}
