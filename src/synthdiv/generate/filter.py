"""The score filter as a view: which manifest rows training uses. Nothing is ever deleted from the shards.

``score.min_similarity`` keeps images at least that similar to their class text; ``score.keep_quantile`` keeps the
top fraction of each class. With no scores or no filter, every manifest row is kept.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthdiv.generate.shards import read_manifest

if TYPE_CHECKING:
    from synthdiv.config import RunConfig
    from synthdiv.run import RunDir

logger = logging.getLogger(__name__)

__all__ = ["filtered_manifest", "keep_mask"]


def keep_mask(
    similarity: np.ndarray, labels: np.ndarray, min_similarity: float | None, keep_quantile: float | None
) -> np.ndarray:
    """Boolean mask of kept images; NaN similarity (an image not scored) is never kept by a filter.

    ``keep_quantile`` keeps the ``ceil(q * n)`` most similar of the ``n`` scored images of each class (ties at the
    cut are all kept).
    """
    keep = ~np.isnan(similarity)
    if min_similarity is not None:
        keep &= similarity >= min_similarity
    if keep_quantile is not None:
        for cls in np.unique(labels):
            scored = np.sort(similarity[(labels == cls) & ~np.isnan(similarity)])[::-1]
            if len(scored):
                cut = scored[max(1, math.ceil(keep_quantile * len(scored) - 1e-9)) - 1]
                keep[labels == cls] &= similarity[labels == cls] >= cut
    return keep


def filtered_manifest(cfg: RunConfig, run: RunDir) -> pa.Table:
    """The manifest rows kept by the score filter (all rows when there are no scores or no filter)."""
    manifest = read_manifest(run)
    s = cfg.score
    if (s.min_similarity is None and s.keep_quantile is None) or not run.scores.exists():
        return manifest
    scores = pq.read_table(run.scores, columns=["image_id", "similarity"])
    idx = pc.index_in(manifest.column("image_id"), value_set=scores.column("image_id"))
    sim = pc.take(scores.column("similarity"), idx).to_numpy(zero_copy_only=False).astype(np.float64)
    missing = int(np.isnan(sim).sum())
    if missing:
        logger.warning("%d manifest images have no score (run `synthdiv score --redo`); the filter drops them", missing)
    keep = keep_mask(sim, manifest.column("class").to_numpy(), s.min_similarity, s.keep_quantile)
    logger.info("score filter keeps %d of %d images", int(keep.sum()), len(keep))
    return manifest.filter(pa.array(keep))
