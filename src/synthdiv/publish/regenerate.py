"""A sample of a published folder's images made again from its recipe on the local generator, and compared.

An image depends on its prompt, its seed, the generator and its settings, and (up to floating-point batching
effects) on the batch it was made in. So each sampled image is made again in its own batch: the recipe's plan gives
the rows of its shard in order, and the batch is the ``generate.batch_size`` rows around it, as the generate stage
formed it. Those rows go into a scratch run (the recipe's prompts, a plan of just those batches, one batch per shard)
that the generate stage's own :class:`~synthdiv.stages.generate.producer.ShardProducer` makes, with the recipe's
retries, sampling settings and encoding. The images are compared by decoded pixels (the published JPEG may carry an
XMP marking; its pixels are the generated ones): *exact*, *close* (mean absolute difference at most ``tolerance`` of
255 levels: another GPU or library version), or *different*.

Image-to-image rows need the real images they started from, which a folder holds only with ``--include-real``; they
are left out of the sample, as are images of another generator than the recipe's ``models.generator``.
"""

from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from synthdiv.config.loader import config_from_dict
from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import PLAN_SCHEMA
from synthdiv.errors import ConfigError, InputError
from synthdiv.models.generators import create_generator
from synthdiv.publish.layout import PublishedDir
from synthdiv.stages.generate.producer import PlannedWork, ShardProducer
from synthdiv.stages.generate.reader import image_bytes, read_manifest
from synthdiv.utils.io import write_parquet_atomic

logger = logging.getLogger(__name__)

__all__ = ["Regenerated", "regenerate_sample"]


@dataclass
class Regenerated:
    """What :func:`regenerate_sample` found."""

    checked: int = 0
    exact: int = 0
    close: int = 0
    different: list[str] = field(default_factory=list)  # one line per image that did not match
    left_out: int = 0  # images the sample could not take (image-to-image, another generator)

    @property
    def ok(self) -> bool:
        return not self.different


def _recipe_config(folder: PublishedDir, scratch: Path, model: str | None, device: str) -> tuple[Any, str]:
    """The recipe's run config, on ``scratch`` and ``device`` (``model`` for its generator's model), and the
    generator id the metadata names the recipe's generator by."""
    path = folder.recipe_file("config.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: unreadable recipe config ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("models", {}).get("generator"), dict):
        raise InputError(f"{path}: expected a run config with models.generator")
    generator = data["models"]["generator"]
    backend, revision = generator.get("backend", "diffusers"), generator.get("revision") or "main"
    recipe_gid = f"{backend}:{generator.get('model')}@{revision}"
    if model is not None:
        generator["model"] = model
    elif str(generator.get("model", "")).startswith("<local>"):
        raise ConfigError(f"{path}: models.generator.model is {generator['model']!r}, a folder of the machine that "
                          "made the dataset; pass --model with where that model is here")
    generator["device"] = device
    data["run_dir"] = str(scratch)
    return config_from_dict(data, base_dir=scratch, source=str(path)), recipe_gid


def _metadata(folder: PublishedDir) -> pa.Table:
    parts = sorted(folder.metadata.glob("shard-*.parquet"))
    cols = ["key", "shard", "file", "offset", "size", "source", "generator_id"]
    try:
        return pa.concat_tables([pq.read_table(p, columns=cols) for p in parts]) if parts else pa.table(
            {c: [] for c in cols})
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise InputError(f"{folder.metadata}: unreadable metadata ({str(exc).splitlines()[0][:120]}); run "
                         "`synthdiv verify --dataset` without --regenerate first") from None


def _pixels(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def regenerate_sample(root: Path | str, n: int = 10, model: str | None = None, device: str = "cpu",
                      tolerance: float = 1.0, seed: int = 0) -> Regenerated:
    """Make ``n`` images of the folder at ``root`` again (a seeded sample) and compare them with the published ones.

    Args:
        model: Where the recipe's generator is on this machine (needed when the recipe names a local folder).
        tolerance: Mean absolute pixel difference (0-255) still counted as a match (*close*).
    """
    folder = PublishedDir(root)
    result = Regenerated()
    with tempfile.TemporaryDirectory(prefix="synthdiv-regenerate-") as tmp:
        scratch = Path(tmp) / "run"
        cfg, recipe_gid = _recipe_config(folder, scratch, model, device)
        meta = _metadata(folder)
        text_to_image = pc.invert(pc.fill_null(pc.not_equal(meta.column("source"), ""), False))
        ours = pc.fill_null(pc.equal(meta.column("generator_id"), recipe_gid), False)
        candidates = meta.filter(pc.and_(text_to_image, ours))
        result.left_out = meta.num_rows - candidates.num_rows
        if not candidates.num_rows:
            return result
        pick = np.sort(np.random.default_rng(seed).choice(candidates.num_rows, min(n, candidates.num_rows),
                                                          replace=False))
        sample = candidates.take(pa.array(pick))
        made = _make_again(cfg, folder, RunDir(scratch), sample.column("key").to_pylist())
        for row in sample.to_pylist():
            result.checked += 1
            with open(folder.shard_tar(row["shard"]), "rb") as fh:
                fh.seek(row["offset"])
                published = _pixels(fh.read(row["size"]))
            again = _pixels(made[row["key"]])
            if published.shape == again.shape and np.array_equal(published, again):
                result.exact += 1
                continue
            diff = float(np.abs(published - again).mean()) if published.shape == again.shape else float("inf")
            if diff <= tolerance:
                result.close += 1
            else:
                result.different.append(f"data/{folder.shard_tar(row['shard']).name}: {row['file']}: mean pixel "
                                        f"difference {diff:.2f} (tolerance {tolerance:g})")
    return result


def _make_again(cfg: Any, folder: PublishedDir, scratch: RunDir, keys: list[str]) -> dict[str, bytes]:
    """The encoded images of ``keys``, made again in their own batches in a scratch run."""
    plan_path = folder.recipe_file("plan.parquet")
    if not plan_path.is_file() or not folder.recipe_file("prompts.parquet").is_file():
        raise InputError(f"{folder.recipe}: no plan.parquet or prompts.parquet; the folder cannot be re-created")
    plan = pq.read_table(plan_path)
    order = np.argsort(plan.column("shard").to_numpy(), kind="stable")  # plan order within each shard
    plan = plan.take(pa.array(order))
    shards = plan.column("shard").to_numpy()
    position = {k: i for i, k in enumerate(plan.column("image_id").to_pylist())}
    bs = cfg.generate.batch_size
    batches: dict[tuple[int, int], int] = {}
    for key in keys:
        if key not in position:
            raise InputError(f"{plan_path}: image {key} of the metadata is not in the recipe's plan")
        row = position[key]
        first = int(np.searchsorted(shards, shards[row]))
        batches.setdefault((first, first + (row - first) // bs * bs), len(batches))
    rows = []
    for (first, start), number in sorted(batches.items(), key=lambda kv: kv[1]):
        end = min(start + bs, int(np.searchsorted(shards, shards[first], side="right")))
        part = plan.slice(start, end - start).select(PLAN_SCHEMA.names + [
            c for c in ("source", "strength") if c in plan.column_names])
        rows.append(part.set_column(part.schema.get_field_index("shard"), PLAN_SCHEMA.field("shard"),
                                    pa.array([number] * part.num_rows, PLAN_SCHEMA.field("shard").type)))
    scratch.root.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(pa.concat_tables(rows), scratch.plan)
    scratch.prompts.write_bytes(folder.recipe_file("prompts.parquet").read_bytes())
    if cfg.generate.torch_threads:
        import torch

        torch.set_num_threads(cfg.generate.torch_threads)
    generator = create_generator(cfg.models.generator)
    work = PlannedWork(scratch)
    with ShardProducer(work, generator, cfg.generate,
                       record_negative=cfg.prompts.negative_confusable > 0) as producer:
        for shard in work.shards.tolist():
            producer.produce(shard)
        producer.drain()
    manifest = read_manifest(scratch)
    wanted = manifest.filter(pc.is_in(manifest.column("image_id"), pa.array(keys)))
    return dict(zip(wanted.column("image_id").to_pylist(), image_bytes(scratch, wanted), strict=True))
