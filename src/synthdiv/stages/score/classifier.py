"""A classifier trained on real data only scores every synthetic image (ALIA's filter): an image whose class another
class confidently outranks is "likely mislabeled"; one whose class is near-certain is "too easy" (it teaches the
model little). Written to ``classifier_scores.parquet`` (joined on ``image_id``); the ``classifier`` filter is a view.

The model is the run's ``real`` variant export (``score.classifier.model: real``), an export folder, or any timm
name (``local-dir:``, ``hf-hub:``). Images are read by their byte ranges in the shards (the manifest's offsets), and
the results are cached per shard by the model's digest and the tar's size and mtime, so a rerun is resumable.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthdiv.core.schemas import CLASSIFIER_SCORES_SCHEMA, with_format
from synthdiv.data.images import ImageDataset, collate_blocks
from synthdiv.data.predict import eval_transform
from synthdiv.data.synthetic import manifest_samples
from synthdiv.errors import ConfigError, InputError
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.score.embeddings import tar_key
from synthdiv.utils.decode import max_pixels_of
from synthdiv.utils.devices import resolve_device
from synthdiv.utils.hashing import canonical_hash, file_digest
from synthdiv.utils.io import write_parquet_atomic

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["mark", "classify_images", "model_name", "load_model", "predict_probs"]

_KEY = b"synthdiv.classifier_key"


def mark(probs: np.ndarray, labels: np.ndarray, mislabeled_p_other: float, mislabeled_p_own: float,
         easy_p_own: float) -> dict[str, np.ndarray]:
    """``p_own``, the best other class and its probability, and the two flags, from class probabilities (N, C)."""
    rows = np.arange(len(labels))
    p_own = probs[rows, labels]
    others = probs.copy()
    others[rows, labels] = -1.0
    top = others.argmax(axis=1) if probs.shape[1] > 1 else np.full(len(labels), -1)
    p_other = others[rows, top] if probs.shape[1] > 1 else np.zeros(len(labels))
    return {"p_own": p_own.astype(np.float32), "top_class": top.astype(np.int32), "p_other": p_other.astype(np.float32),
            "mislabeled": (p_other >= mislabeled_p_other) & (p_own <= mislabeled_p_own), "easy": p_own >= easy_p_own}


def model_name(spec: str, run: RunDir) -> tuple[str, str]:
    """The timm name to load and a digest of the model it names (its files when local)."""
    folder = run.export / "real" if spec == "real" else Path(spec.removeprefix("local-dir:"))
    if spec == "real" or spec.startswith("local-dir:") or folder.is_dir():
        if not (folder / "config.json").exists():
            hint = "train the 'real' variant first (train.variants)" if spec == "real" else "expected a timm export"
            raise InputError(f"score.classifier.model: {folder}: no config.json; {hint}")
        return f"local-dir:{folder}", file_digest(folder / "model.safetensors") if (
            folder / "model.safetensors").exists() else file_digest(folder)
    return spec, canonical_hash(spec)


def load_model(name: str, field: str = "score.classifier.model") -> Any:
    """The timm model ``name`` with its weights (a ``local-dir:`` export, a timm name), for ``field``'s error."""
    import timm

    try:
        return timm.create_model(name, pretrained=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ConfigError(f"{field}: cannot load {name!r} ({str(exc).splitlines()[0]})") from None


def predict_probs(model: Any, samples: Any, transform: Any, cfg: RunConfig, device: str, bs: int) -> np.ndarray:
    """Class probabilities (N, C) of the ``samples`` (byte ranges in one shard), in batches of ``bs``.

    Raises:
        InputError: An image cannot be decoded (a damaged shard, for ``synthdiv verify --repair``).
    """
    import torch
    import torch.utils.data

    keys = [(0, i, -1) for i in range(len(samples))]
    loader = torch.utils.data.DataLoader(ImageDataset([samples], transform, max_pixels_of(cfg)),
                                         collate_fn=collate_blocks,
                                         batch_sampler=[keys[i : i + bs] for i in range(0, len(keys), bs)])
    probs = []
    with torch.inference_mode():
        for batch in loader:
            if batch["corrupt"]:  # generated images: a damaged one is a damaged shard, for verify to repair
                raise InputError(f"{samples.paths[0]}: {batch['corrupt']} image(s) cannot be decoded (e.g. "
                                 f"{batch['unreadable'].examples[0]}); run `synthdiv verify --repair`")
            probs.append(model(batch["images"].to(device)).float().softmax(dim=1).cpu().numpy())
    return np.concatenate(probs) if probs else np.zeros((0, int(model.num_classes)), np.float32)


def _score_shard(model: Any, samples: Any, transform: Any, cfg: RunConfig, device: str) -> dict[str, np.ndarray]:
    c = cfg.score.classifier
    probs = predict_probs(model, samples, transform, cfg, device, c.batch_size)
    return mark(probs, samples.labels, c.mislabeled_p_other, c.mislabeled_p_own, c.easy_p_own)


def _cached_scores(path: Path, key: bytes, ids: list[str]) -> pa.Table | None:
    """A shard's cached classifier scores, if made from this very tar by this model (None: a miss, also for a damaged
    cache file, which is then computed again)."""
    try:
        table = pq.read_table(path)
        if (table.schema.metadata or {}).get(_KEY) != key or table.column("image_id").to_pylist() != ids:
            return None
        return table.cast(CLASSIFIER_SCORES_SCHEMA.with_metadata(table.schema.metadata))
    except (pa.ArrowException, OSError, KeyError, ValueError, TypeError):
        return None


def classify_images(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """Score every manifest image with ``score.classifier.model``; write ``classifier_scores.parquet``."""
    c = cfg.score.classifier
    name, digest = model_name(str(c.model), run)
    manifest = read_manifest(run)
    model = load_model(name)
    device = resolve_device(c.device, "score.classifier.device")
    model.eval().to(device)
    samples = manifest_samples(manifest, run, int(model.num_classes))
    transform = eval_transform(model)
    cache = run.cache / "classifier" / canonical_hash({"model": digest, "config": c.model_dump(mode="json")})[:16]
    tables = []
    for path in dict.fromkeys(samples.paths.tolist()):
        part = samples.take(np.flatnonzero(samples.paths == path))
        key, ids = tar_key(path).encode(), [str(k) for k in part.keys]
        cached = cache / f"{Path(path).stem}.parquet"
        table = None
        if cached.exists():
            table = _cached_scores(cached, key, ids)
        if table is None:
            cols = _score_shard(model, part, transform, cfg, device)
            table = pa.table({"image_id": ids, **cols}, schema=CLASSIFIER_SCORES_SCHEMA)
            write_parquet_atomic(table.replace_schema_metadata({_KEY: key}), cached)
        tables.append(table.replace_schema_metadata(None))
    table = pa.concat_tables(tables) if tables else CLASSIFIER_SCORES_SCHEMA.empty_table()
    table = table.replace_schema_metadata(with_format(table.schema, "classifier_scores").metadata)
    write_parquet_atomic(table, run.classifier_scores)
    mislabeled = int(np.asarray(table.column("mislabeled")).sum())
    easy = int(np.asarray(table.column("easy")).sum())
    logger.info("classifier %s: %d of %d images likely mislabeled, %d too easy", name, mislabeled, table.num_rows, easy)
    return {"model": name, "images": table.num_rows, "mislabeled": mislabeled, "easy": easy}
