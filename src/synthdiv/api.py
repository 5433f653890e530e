"""The Python API: open a run, read its artifacts as Arrow tables, and train on its images in your own loop.

Most people who want synthetic data already have a training script (timm's ``train.py``, DeiT, their own). This
module gives such a script what the ``train`` stage uses, without the stage: the run's manifest and scores as
pyarrow Tables, a map-style dataset of its synthetic images (through the score filter's view), the mixed loader that
puts a real block then a synthetic block in every batch, and the auxiliary norm functions. See ``docs/api.md``.

Importing this module does not import torch; the datasets and loaders import it when built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from synthdiv.config.loader import load_config
from synthdiv.config.root import RunConfig
from synthdiv.core.artifacts import read_table
from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import CLASS_FIELDS
from synthdiv.data.images import decode_rgb
from synthdiv.data.mixed import BatchPlan, block_sizes, make_loader
from synthdiv.data.real import real_dir_roots, real_samples
from synthdiv.data.sources import SampleSet
from synthdiv.data.synthetic import manifest_samples
from synthdiv.engine.runner import run_all
from synthdiv.errors import InputError, StageOrderError
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.score.reader import filtered_manifest, selected_manifest
from synthdiv.utils.io import read_jsonl

if TYPE_CHECKING:
    import numpy as np
    import torch.utils.data

    from synthdiv.config.root import RunConfig
    from synthdiv.data.sources import SampleSet

logger = logging.getLogger(__name__)

__all__ = ["ManifestView", "Run", "SyntheticImages", "open_run", "run"]

ManifestView = Literal["all", "filtered", "train"]


def open_run(source: str | os.PathLike[str] | RunConfig, overrides: Sequence[str] = ()) -> Run:
    """Open a run from its directory, its YAML config or a :class:`~synthdiv.config.RunConfig`.

    Args:
        source: A run directory (its ``config.yaml``, written by every stage, is read and the run is taken where it
            lies now), a config file, or a config object.
        overrides: ``"section.key=value"`` strings, as ``--set`` on the command line.

    Raises:
        InputError: ``source`` is neither a run directory nor a config file.
        ConfigError: The config is not valid.
    """
    if isinstance(source, RunConfig):
        if overrides:
            raise InputError("open_run: overrides apply to a config file or a run directory, not a RunConfig")
        return Run(source)
    path = Path(source)
    if path.is_dir():
        if not RunDir(path).config.is_file():
            raise InputError(f"{path}: no config.yaml; expected a run directory (one a stage has run in) or a config")
        return Run(load_config(RunDir(path).config, overrides, run_dir=path))
    if path.is_file():
        return Run(load_config(path, overrides))
    raise InputError(f"{path}: not found; expected a run directory or a config file")


def run(
    config: str | os.PathLike[str] | RunConfig, until: str | None = None, redo: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Run the pipeline's stages in order, as ``synthdiv run`` does; returns each stage's summary by name.

    Args:
        config: What :func:`open_run` takes.
        until: Stop after this stage (``"generate"``, say), or run every stage.
        redo: Stages to redo even if done.
    """
    return run_all(open_run(config).config, redo=tuple(redo), stop_after=until)


class Run:
    """A run directory and its config: the artifacts as Arrow tables, the images as datasets and loaders.

    Attributes:
        config: The run config.
        dir: The run directory's layout (paths of every artifact).
    """

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.dir = RunDir(config.run_dir)

    def __repr__(self) -> str:
        return f"Run({str(self.dir.root)!r})"

    @property
    def root(self) -> Path:
        """The run directory."""
        return self.dir.root

    @property
    def num_classes(self) -> int:
        """Number of classes (the rows of ``classes.jsonl``)."""
        return len(self._class_rows())

    def classes(self) -> pa.Table:
        """``classes.jsonl`` (``index``, ``name``, ``wnid``, ...), with ``description`` once disambiguated."""
        rows = [{k: r.get(k) for k in CLASS_FIELDS} for r in self._class_rows()]
        table = pa.Table.from_pylist(rows)
        if self.dir.resolved.is_file():
            resolved = {r["index"]: r.get("description") for r in read_jsonl(self.dir.resolved)}
            table = table.append_column("description", pa.array([resolved.get(r["index"]) for r in rows], pa.string()))
        return table

    def prompts(self) -> pa.Table:
        """``prompts.parquet`` (:data:`~synthdiv.core.schemas.PROMPTS_SCHEMA`)."""
        return read_table(self.dir.prompts, "prompts", "prompts")

    def plan(self) -> pa.Table:
        """``plan.parquet`` (:data:`~synthdiv.core.schemas.PLAN_SCHEMA`): every image to generate."""
        return read_table(self.dir.plan, "plan", "plan")

    def scores(self) -> pa.Table:
        """``scores.parquet`` (:data:`~synthdiv.core.schemas.SCORES_SCHEMA`), joined to the manifest on ``image_id``."""
        return read_table(self.dir.scores, "score", "scores")

    def manifest(self, view: ManifestView = "all") -> pa.Table:
        """The generated images of the complete shards, one row each.

        Args:
            view: ``"all"``: every image; ``"filtered"``: those the score filter keeps (``score.min_similarity`` /
                ``score.keep_quantile``); ``"train"``: the filtered ones not flagged degenerate (what the
                ``train`` stage uses).
        """
        views = {"all": lambda: read_manifest(self.dir), "filtered": lambda: filtered_manifest(self.config, self.dir),
                 "train": lambda: selected_manifest(self.config, self.dir)}
        if view not in views:
            raise InputError(f"view {view!r}: expected one of {', '.join(views)}")
        if not self.dir.manifest.is_dir():
            raise StageOrderError(f"{self.dir.manifest} not found: run `synthdiv generate` first")
        return views[view]()

    def synthetic_dataset(
        self, transform: Callable[[Any], Any] | None = None, view: ManifestView = "train"
    ) -> SyntheticImages:
        """A map-style dataset of the run's synthetic images: ``ds[i] -> (transform(image), label)``.

        Args:
            transform: Applied to each RGB PIL image (e.g. timm's ``create_transform``); None keeps the image.
            view: Which images (see :meth:`manifest`).
        """
        return SyntheticImages(manifest_samples(self.manifest(view), self.dir, self.num_classes), transform)

    def mixed_loader(
        self,
        transform: Callable[[Any], Any],
        batch_size: int,
        steps: int,
        synthetic_fraction: float = 0.5,
        *,
        seed: int | None = None,
        start_step: int = 0,
        real_root: str | os.PathLike[str] | None = None,
        view: ManifestView = "train",
        num_workers: int = 2,
        world_size: int = 1,
        rank: int = 0,
    ) -> torch.utils.data.DataLoader:
        """The ``train`` stage's loader: each batch is a real block then a synthetic block, in a seeded order.

        A batch is ``{"images", "labels", "domain", "n_real", "corrupt"}``; ``n_real`` is the split point that
        :func:`synthdiv.route` gives the auxiliary norms. Step ``s`` always holds the same images (resume by
        passing ``start_step``); under DDP each rank gets its own slice of both blocks.

        Args:
            transform: Applied to each RGB PIL image (timm's training transform).
            batch_size: Images per step over all ranks.
            steps: Steps to yield, from ``start_step``.
            synthetic_fraction: Share of each batch that is synthetic.
            seed: Seed of the order and of each sample's augmentation (default: the run's ``seed``).
            start_step: The first step to yield.
            real_root: Real images (an ImageFolder or WebDataset shards) instead of the classes' ``real_dir``.
            view: Which synthetic images (see :meth:`manifest`).
            num_workers: DataLoader worker processes.
            world_size: DDP ranks.
            rank: This rank.
        """
        n_real, n_syn = block_sizes(batch_size, synthetic_fraction)
        classes = self._class_rows()
        real = SampleSet.empty()
        if n_real:
            root = Path(real_root) if real_root is not None else None
            real = real_samples(classes, root, self.dir.cache / "tar-index", real_dir_roots(self.config))
        synthetic = manifest_samples(self.manifest(view), self.dir, len(classes)) if n_syn else SampleSet.empty()
        plan = BatchPlan(len(real), len(synthetic), batch_size, synthetic_fraction,
                         self.config.seed if seed is None else seed, world_size, rank)
        return make_loader(real, synthetic, plan, transform, start_step, start_step + steps, num_workers=num_workers)

    def _class_rows(self) -> list[dict[str, Any]]:
        if not self.dir.classes.is_file():
            raise StageOrderError(f"{self.dir.classes} not found: run `synthdiv classes` first")
        return read_classes(self.dir.classes)


class SyntheticImages:
    """A map-style dataset of synthetic images (any ``torch.utils.data.DataLoader`` takes it).

    ``ds[i]`` is ``(transform(image), label)``; the images are read from their shards by byte range, so any index
    costs one read, and the dataset pickles cheaply into worker processes.

    Attributes:
        samples: Where each image lies (:class:`~synthdiv.data.sources.SampleSet`), in ``image_id`` order.
        transform: Applied to each RGB PIL image, or None.
    """

    def __init__(self, samples: SampleSet, transform: Callable[[Any], Any] | None = None) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        img = decode_rgb(self.samples.read(index))
        return (self.transform(img) if self.transform is not None else img), int(self.samples.labels[index])

    @property
    def labels(self) -> np.ndarray:
        """The class index of each image."""
        return self.samples.labels

    @property
    def image_ids(self) -> list[str]:
        """The manifest's ``image_id`` of each image."""
        return [str(k) for k in self.samples.keys]

