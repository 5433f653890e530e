"""``synthdiv publish``: a finished run as a self-contained dataset folder (layout: :mod:`synthdiv.publish.layout`).

The folder is written as ``DIR.partial`` and renamed to ``DIR`` only when every file is in place, so ``DIR`` either
does not exist or is complete. A publish that fails removes its partial folder; one that was killed leaves it, and
the next publish of the same ``DIR`` removes it and starts over (a partial folder is never read). An existing ``DIR``
is refused. Shards stream one at a time (:mod:`synthdiv.publish.folder`, :mod:`synthdiv.publish.metadata`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.core.rundir import RunDir
from synthdiv.errors import InputError
from synthdiv.publish.card import render_card
from synthdiv.publish.croissant import write_croissant
from synthdiv.publish.folder import publish_shard
from synthdiv.publish.layout import PublishedDir
from synthdiv.publish.metadata import MetadataBuilder, ScoreCursor, write_metadata
from synthdiv.publish.privacy import Scrubber, absolute_paths
from synthdiv.publish.real import write_real
from synthdiv.publish.recipe import write_recipe
from synthdiv.publish.tally import Tally
from synthdiv.publish.views import ALL, Views, compute_views
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.disambiguate.reader import read_resolved
from synthdiv.stages.generate.reader import iter_manifest_parts, require_complete
from synthdiv.stages.prompts.reader import read_prompts
from synthdiv.stages.score.reader import iter_scores

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig

logger = logging.getLogger(__name__)

__all__ = ["publish", "Published"]


@dataclass
class Published:
    """What ``publish`` wrote."""

    path: Path
    images: int
    shards: int
    linked: int  # shards published as hard links (or copies) of the run's
    marked: int
    real: int


def _classes(run: RunDir) -> list[dict[str, Any]]:
    if run.resolved.exists():
        return read_resolved(run.resolved)
    return read_classes(run.classes) if run.classes.exists() else []


def _limits(cfg: RunConfig, tally: Tally, views: Views) -> list[str]:
    lines = []
    models = cfg.models
    if "embedded" in (models.generator.model, models.clip.model):
        lines.append("Made with synthdiv's embedded tiny models with RANDOM weights (a smoke run): the images carry "
                     "no class signal and the scores mean nothing.")
    if not tally.sums:
        lines.append("The images were not scored (no CLIP scores, no score-based filter flags).")
    if views.view != ALL:
        lines.append(f"Only the images of the view {views.view!r} are published; the run made more.")
    return lines


def _refuse(out: PublishedDir) -> None:
    if out.root.exists() or out.root.is_symlink():
        raise InputError(f"{out.root}: already exists; publish writes a new folder (remove it or choose another --out)")
    parent = out.root.parent
    if not parent.is_dir():
        raise InputError(f"{out.root}: its folder {parent} does not exist; create it first")


def publish(cfg: RunConfig, out: Path | str, view: str = ALL, include_real: bool = False, mark: bool = True
            ) -> Published:
    """Publish the run of ``cfg`` as the dataset folder ``out`` (see the module docstring).

    Args:
        view: ``all`` (every image, filters as columns), ``train``, a variant's name or a filter's name.
        include_real: Also publish the run's real images (``real/``).
        mark: Write the synthetic-media XMP marking into each JPEG (else the bytes stay as generated).

    Raises:
        InputError: ``out`` exists; the run's shards are incomplete; an artifact is damaged; the view is empty.
        ConfigError: ``view`` names no view.
    """
    run = RunDir(cfg.run_dir)
    target = PublishedDir(out)
    _refuse(target)
    if not run.manifest.is_dir():
        raise InputError(f"{run.manifest}: not found; run `synthdiv generate` before `synthdiv publish`")
    require_complete(run, "publish")
    views = compute_views(cfg, run, view)
    if views.selected is not None and not views.selected.any():
        raise InputError(f"--view {view}: the view holds no image of {run.root}; choose another view or --all")
    work = PublishedDir(target.partial)
    if work.root.exists():
        logger.warning("removing %s, left by an interrupted publish", work.root)
        shutil.rmtree(work.root)
    try:
        result = _write(cfg, run, work, views, include_real, mark, target.root.name)
        os.rename(work.root, target.root)
    except BaseException:
        shutil.rmtree(work.root, ignore_errors=True)
        raise
    result.path = target.root
    logger.info("published %d images in %d shards to %s (%d linked, %d marked)", result.images, result.shards,
                target.root, result.linked, result.marked)
    return result


def _write(cfg: RunConfig, run: RunDir, work: PublishedDir, views: Views, include_real: bool, mark: bool,
           name: str) -> Published:
    for folder in (work.data, work.metadata, work.recipe):
        folder.mkdir(parents=True, exist_ok=True)
    classes = _classes(run)
    scrubber = Scrubber(run.root, [*absolute_paths(cfg.model_dump(mode="json")),
                                   *(c["real_dir"] for c in classes if c.get("real_dir"))])
    scores = ScoreCursor(iter_scores(run) if run.scores.exists() else None, run.scores)
    builder = MetadataBuilder(classes, read_prompts(run) if run.prompts.exists() else None, scores, views.flags,
                              views.train, scrubber)
    tally, position, linked, info, digests = Tally(), 0, 0, [], {}
    for shard, part in iter_manifest_parts(run):
        n = part.num_rows
        keep = views.selected[position : position + n] if views.selected is not None else None
        position += n
        ids = part.column("image_id").to_pylist()
        kept = set(np.asarray(ids, dtype=object)[keep].tolist()) if keep is not None else None
        gens = dict(zip(ids, part.column("generator_id").to_pylist(), strict=True))
        if kept is not None and not kept:
            builder.shard(shard, part, {}, keep)  # advances the scores and flags past the shard
            continue
        members, as_is, digest = publish_shard(
            run.shard_tar(shard), work.shard_tar(shard), None if kept is None else kept.__contains__,
            (lambda key, gens=gens: scrubber.text(gens[key] or "unknown")) if mark else None, scrubber)
        table = builder.shard(shard, part, members, keep)
        write_metadata(table, work.metadata_part(shard))
        tally.add(table)
        linked += as_is
        info.append((work.shard_tar(shard).name, table.num_rows))
        digests[work.shard_tar(shard).name] = digest
    (work.data / "_info.json").write_text(json.dumps({
        "name": name, "num_classes": len(classes),
        "splits": {"train": {"name": "train", "num_samples": tally.images, "filenames": [f for f, _ in info],
                             "shard_lengths": [k for _, k in info]}}}, indent=1))
    write_recipe(cfg, run, work, classes, scrubber)
    real = write_real(work, classes, list(cfg.classes.image_extensions)) if include_real else 0
    view_text = ("every image of the run, filters as columns" if views.view == ALL
                 else f"only the images of the view {views.view!r}")
    card = render_card(cfg, run, cfg.publish.name or name, classes, tally, views.filters, view_text,
                       _limits(cfg, tally, views))
    work.card.write_text(scrubber.text(card), encoding="utf-8")
    made = run.read_state("generate")
    write_croissant(cfg, work, cfg.publish.name or name, digests, builder.schema, made and made.finished_at)
    return Published(work.root, tally.images, tally.shards, linked, tally.marked, real)
