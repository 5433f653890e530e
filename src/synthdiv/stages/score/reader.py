"""What later stages read of the score stage: the synthetic images a variant trains on (the filter view of the
manifest, minus degenerate images) as a pyarrow Table or as byte ranges in the shards."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthdiv.core.artifacts import check_format, read_table
from synthdiv.core.schemas import written_format
from synthdiv.data.sources import SampleSet
from synthdiv.data.synthetic import manifest_samples
from synthdiv.errors import InputError
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.score.filters import (
    classifier_mask,
    cross_class_mask,
    duplicate_mask,
    keep_mask,
    keep_rates,
    resolve_filters,
)
from synthdiv.utils.hashing import canonical_hash
from synthdiv.utils.io import atomic_write_json

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

__all__ = ["selected_manifest", "synthetic_samples", "synthetic_weights", "learner_mask", "pool_discards",
           "iter_scores"]


def selected_manifest(cfg: RunConfig, run: RunDir, filters: Sequence[str] | None = None) -> Any:
    """The manifest rows training may use, as a pyarrow Table (``image_id``, ``class``, ``shard``, ...).

    The filter view (``synthdiv.stages.score.reader.filtered_manifest``: rows of complete shards that pass
    ``score.min_similarity`` / ``score.keep_quantile`` and the named ``filters``, default ``train.filters``), minus
    images the generator flagged degenerate.
    """
    table = filtered_manifest(cfg, run, filters)
    if "degenerate" in table.column_names:  # kept in the manifest for the report; never trained on
        table = table.filter(pc.invert(pc.fill_null(table.column("degenerate"), False)))
    return table


def synthetic_samples(
    cfg: RunConfig, run: RunDir, num_classes: int, shards_dir: Path | None = None, filters: Sequence[str] | None = None
) -> SampleSet:
    """The synthetic training images of the run, as byte ranges in its shards, in ``image_id`` order.

    The byte ranges come from the manifest's ``offset`` / ``size`` columns (columnar: no tar is opened); rows of
    manifests written before those columns existed are found by indexing their shards.

    Args:
        cfg: The run config (passed to the filter view).
        run: The run directory.
        num_classes: Number of classes (a label outside 0..N-1 is an error in the manifest).
        shards_dir: Read shards from here instead of the run's ``shards/``.
        filters: The named filters the images pass (a variant's ``train.filters``; default the root's).
    """
    return manifest_samples(selected_manifest(cfg, run, filters), run, num_classes, shards_dir)


def synthetic_weights(run: RunDir, column: str, image_ids: np.ndarray) -> np.ndarray:
    """A loss weight per synthetic image, in the order of ``image_ids``: its ``column`` of ``scores.parquet``, clipped
    at 0 (a negative margin or similarity counts for nothing, never against its label).

    Raises:
        InputError: An image has no score in ``column`` (the score stage has not scored it).
    """
    table = read_scores(run, ["image_id", column])
    values = _joined(table, pa.chunked_array([pa.array(list(image_ids), pa.string())]), [column])[column]
    missing = np.flatnonzero(np.isnan(values))
    if len(missing):
        raise InputError(f"{run.scores}: image {image_ids[missing[0]]} has no {column} ({len(missing)} images lack "
                         f"one), expected a score for every synthetic image that train.synthetic_weight weighs; "
                         f"run the score stage")
    return np.clip(values, 0.0, None).astype(np.float32)


def read_scores(run: RunDir, columns: list[str] | None = None) -> pa.Table:
    """``scores.parquet`` (:data:`~synthdiv.core.schemas.SCORES_SCHEMA`), only ``columns`` when given: the one reader of
    the score stage's artifact (see :func:`synthdiv.core.artifacts.read_table` for what it raises)."""
    return read_table(run.scores, "score", "scores", columns)


def iter_scores(run: RunDir, batch_rows: int = 65536) -> Iterator[pa.RecordBatch]:
    """``scores.parquet`` in batches of at most ``batch_rows`` rows, in the order the score stage wrote them (the
    manifest's: shard by shard), one batch in memory at a time.

    Raises:
        InputError: The file is not Parquet, or of a newer format than this synthdiv reads.
    """
    try:
        pf = pq.ParquetFile(run.scores)
        check_format(run.scores, pf.schema_arrow.metadata, "scores", "score")
        yield from pf.iter_batches(batch_size=batch_rows)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{run.scores}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None


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


def learner_mask(run: RunDir, manifest: pa.Table) -> np.ndarray | None:
    """Over ``manifest``: False for the pooled images of adaptive rounds that the learner selection left out, True
    for every other row; None when no round pooled (no ``learner_scores.parquet``)."""
    if not run.learner_scores.exists():
        return None
    table = read_table(run.learner_scores, "score", "learner_scores", ["image_id", "kept"])
    left_out = table.filter(pc.invert(table.column("kept"))).column("image_id")
    return pc.invert(pc.is_in(manifest.column("image_id"), value_set=left_out)).to_numpy(zero_copy_only=False)


def pool_discards(run: RunDir) -> int:
    """Pooled images of adaptive rounds that the learner selection left out: made, never trained on."""
    if not run.learner_scores.exists():
        return 0
    kept = read_table(run.learner_scores, "score", "learner_scores", ["kept"]).column("kept")
    return int(len(kept) - pc.sum(kept).as_py()) if len(kept) else 0


def _mask(spec: Any, cfg: RunConfig, run: RunDir, manifest: pa.Table, cols: dict[str, np.ndarray],
          labels: np.ndarray) -> np.ndarray:
    if spec.kind == "similarity":
        return keep_mask(cols["similarity"], labels, spec.min_similarity, spec.keep_quantile)
    if spec.kind == "cross_class":
        if "prob" not in cols:
            version = written_format(pq.read_schema(run.scores).metadata, "scores")
            why = (f"damaged: scores format {version} has it" if version is not None
                   else "written before synthdiv recorded artifact formats")
            raise InputError(f"{run.scores}: no 'prob' column ({why}); run `synthdiv score --redo`")
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
    table = read_table(path, "score", "classifier_scores", ["image_id", "mislabeled", "easy"])
    clf = _joined(table, manifest.column("image_id"), ["mislabeled", "easy"])
    return classifier_mask(clf["mislabeled"], clf["easy"], spec.drop)


def filtered_manifest(cfg: RunConfig, run: RunDir, names: Sequence[str] | None = None) -> pa.Table:
    """The manifest rows kept by the score filter, the filters ``names`` (default ``train.filters``) and the learner
    selection of pooled adaptive rounds (:func:`learner_mask`); all rows when there is none. The selection's
    parameters and per-class counts go to ``filters/<names>.json``."""
    manifest = read_manifest(run)
    names = list(cfg.train.filters if names is None else names)
    s = cfg.score
    learner = learner_mask(run, manifest)
    plain = not names and ((s.min_similarity is None and s.keep_quantile is None) or not run.scores.exists())
    if plain and learner is None:
        return manifest
    masks = {} if plain else filter_masks(cfg, run, manifest, names)
    if learner is not None:
        masks["learner"] = learner
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
