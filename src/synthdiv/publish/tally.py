"""What the dataset card says about the images, counted while the metadata streams past: images per class and
prompt kind, score distributions (fixed-bin histograms, so the memory does not grow with the run), filter flags."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Tally", "SCORE_BINS"]

# score column -> histogram bin edges (the card's distributions)
SCORE_BINS: dict[str, np.ndarray] = {
    "similarity": np.linspace(-1.0, 1.0, 41),
    "prob": np.linspace(0.0, 1.0, 21),
    "margin": np.linspace(-1.0, 1.0, 41),
}


@dataclass
class Tally:
    """Counts over the published metadata, fed one shard table at a time."""

    images: int = 0
    marked: int = 0
    bytes: int = 0
    shards: int = 0
    per_class_kind: Counter[tuple[int, str]] = field(default_factory=Counter)
    flags: Counter[str] = field(default_factory=Counter)
    histograms: dict[str, np.ndarray] = field(default_factory=lambda: {k: np.zeros(len(v) - 1, np.int64)
                                                                       for k, v in SCORE_BINS.items()})
    sums: dict[str, list[float]] = field(default_factory=dict)  # column -> [count, sum, min, max]
    generators: Counter[str] = field(default_factory=Counter)

    def add(self, table: pa.Table) -> None:
        self.images += table.num_rows
        self.shards += 1
        self.marked += int(pc.sum(table.column("marked")).as_py() or 0)
        self.bytes += int(pc.sum(table.column("size")).as_py() or 0)
        kinds = pc.fill_null(table.column("prompt_kind"), "unknown").to_pylist()
        self.per_class_kind.update(zip(table.column("label").to_pylist(), kinds, strict=True))
        self.generators.update(table.column("generator_id").to_pylist())
        for name in table.column_names:
            if name.startswith("keep_") or name == "in_train_view":
                self.flags[name] += int(pc.sum(pc.fill_null(table.column(name), False)).as_py() or 0)
        for name, edges in SCORE_BINS.items():
            values = pc.drop_null(table.column(name)).to_numpy(zero_copy_only=False).astype(np.float64)
            values = values[np.isfinite(values)]
            if not len(values):
                continue
            self.histograms[name] += np.histogram(np.clip(values, edges[0], edges[-1]), edges)[0]
            count, total, low, high = self.sums.get(name, [0, 0.0, np.inf, -np.inf])
            self.sums[name] = [count + len(values), total + float(values.sum()), min(low, float(values.min())),
                               max(high, float(values.max()))]

    def score_rows(self) -> list[dict[str, Any]]:
        """One row per score column: count, mean, min, max and the histogram (bin edges, counts)."""
        rows = []
        for name, (count, total, low, high) in self.sums.items():
            rows.append({"name": name, "count": count, "mean": total / count, "min": low, "max": high,
                         "edges": SCORE_BINS[name].tolist(), "counts": self.histograms[name].tolist()})
        return rows
