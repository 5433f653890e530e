"""What later stages read of the score stage: the synthetic images a variant trains on (the filter view of the
manifest, minus degenerate images) as a pyarrow Table or as byte ranges in the shards."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from synthdiv.data.sources import SampleSet
from synthdiv.data.synthetic import manifest_samples
from synthdiv.stages.score.filters import filtered_manifest

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

__all__ = ["selected_manifest", "synthetic_samples"]


def selected_manifest(cfg: RunConfig, run: RunDir, filters: Sequence[str] | None = None) -> Any:
    """The manifest rows training may use, as a pyarrow Table (``image_id``, ``class``, ``shard``, ...).

    The filter view (``synthdiv.stages.score.filters.filtered_manifest``: rows of complete shards that pass
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
