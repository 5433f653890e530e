"""The metadata of a published folder: one Parquet file per shard, one row per image
(:data:`~synthdiv.core.schemas.PUBLISHED_SCHEMA`, then the score columns and the filter flags).

Written shard by shard, so a 7.7M-image run is never held at once: the manifest part of the shard, its rows of
``scores.parquet`` (read in the manifest's order, batch by batch: :class:`ScoreCursor`), the prompts and classes
(looked up by id), the filter flags (a slice of :class:`~synthdiv.publish.views.Views`), and where each image lies in
the published tar (:class:`~synthdiv.publish.folder.Member`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthdiv.core.schemas import PROMPTS_SCHEMA, PUBLISHED_SCHEMA, SCORES_SCHEMA, with_format
from synthdiv.errors import InputError
from synthdiv.publish.folder import Member
from synthdiv.publish.privacy import Scrubber

__all__ = ["ScoreCursor", "MetadataBuilder", "metadata_schema", "SCORE_FIELDS"]

SCORE_FIELDS = [f for f in SCORES_SCHEMA if f.name != "image_id"]
_PROMPT_COLUMNS = ["prompt_id", "kind", "text", "negative", "context", "style"]


def metadata_schema(flags: list[str]) -> pa.Schema:
    """The published metadata's columns for a run with the filter flags ``flags`` (its format in the metadata)."""
    fields = [*PUBLISHED_SCHEMA, *SCORE_FIELDS, *(pa.field(f"keep_{n}", pa.bool_()) for n in flags)]
    return with_format(pa.schema(fields), "published")


class ScoreCursor:
    """The rows of ``scores.parquet`` for one shard after another, read in order (the score stage writes them in the
    manifest's order); one batch in memory at a time.

    Args:
        batches: The file's record batches in order (``synthdiv.stages.score.reader.iter_scores``); None: no scores.
        path: The file, for messages.
    """

    def __init__(self, batches: Iterator[pa.RecordBatch] | None, path: Path | str) -> None:
        self._batches = batches
        self._path = path
        self._buffer: pa.Table | None = None

    def _fill(self, n: int) -> pa.Table:
        buffer = self._buffer if self._buffer is not None else pa.table({})
        parts = [buffer] if buffer.num_columns else []
        rows = buffer.num_rows
        while rows < n and self._batches is not None:
            batch = next(self._batches, None)
            if batch is None:
                self._batches = None
                break
            parts.append(pa.Table.from_batches([batch]))
            rows += batch.num_rows
        return pa.concat_tables(parts, promote_options="default") if parts else pa.table({})

    def take(self, ids: pa.Array) -> pa.Table | None:
        """The score rows of the images ``ids`` (a shard's, in manifest order); None when the file has no more rows
        (the shard was generated after the run was scored).

        Raises:
            InputError: The next rows are of other images: the file is not in the manifest's order.
        """
        table = self._fill(len(ids))
        if table.num_rows == 0:
            self._buffer = table
            return None
        head = table.slice(0, len(ids))
        if head.num_rows != len(ids) or not head.column("image_id").combine_chunks().equals(ids):
            raise InputError(f"{self._path}: its rows are not in the manifest's order (at image {ids[0].as_py()}); "
                             "run `synthdiv score --redo`")
        self._buffer = table.slice(len(ids))
        return head


class MetadataBuilder:
    """Builds each shard's metadata table from the run's artifacts (see the module docstring).

    Args:
        classes: The resolved (or plain) class rows, by index.
        prompts: ``prompts.parquet`` (None when the run has none).
        scores: The scores in manifest order.
        flags: Filter name -> mask over the manifest, in manifest order; ``train``: the train view's mask.
        scrubber: Takes machine paths out of generator ids and image-to-image sources.
    """

    def __init__(self, classes: list[dict[str, Any]], prompts: pa.Table | None, scores: ScoreCursor,
                 flags: Mapping[str, np.ndarray], train: np.ndarray | None, scrubber: Scrubber) -> None:
        self._names = np.array([c.get("name") for c in classes] + [None], dtype=object)
        self._wnids = np.array([c.get("wnid") for c in classes] + [None], dtype=object)
        self._descriptions = np.array([c.get("description", c.get("name")) for c in classes] + [None], dtype=object)
        prompts = prompts if prompts is not None else PROMPTS_SCHEMA.empty_table()
        self._prompts = prompts.select(_PROMPT_COLUMNS)
        self._prompt_row = {p: i for i, p in enumerate(self._prompts.column("prompt_id").to_pylist())}
        self._scores = scores
        self._flags = dict(flags)
        self._train = train
        self._scrubber = scrubber
        self.schema = metadata_schema(list(self._flags))
        self._position = 0

    def _scrub(self, column: pa.ChunkedArray | pa.Array) -> pa.Array:
        encoded = pc.dictionary_encode(column).combine_chunks() if isinstance(column, pa.ChunkedArray) else (
            pc.dictionary_encode(column))
        words = pa.array([None if v is None else self._scrubber.text(v) for v in encoded.dictionary.to_pylist()],
                         pa.string())
        return pc.take(words, encoded.indices)

    def shard(self, shard: int, part: pa.Table, members: Mapping[str, Member], keep: np.ndarray | None) -> pa.Table:
        """The metadata rows of ``shard``: its manifest ``part`` (every row, in order; the builder counts positions
        in the manifest by it), of which the rows ``keep`` are published, with their ``members`` in the tar."""
        n = part.num_rows
        window = slice(self._position, self._position + n)
        self._position += n
        scores = self._scores.take(part.column("image_id").combine_chunks())
        rows = np.flatnonzero(keep) if keep is not None else np.arange(n)
        part = part.take(pa.array(rows))
        ids = part.column("image_id").to_pylist()
        missing = [i for i in ids if i not in members]
        if missing:
            raise InputError(f"{part.column('tar')[0].as_py() if 'tar' in part.column_names else shard}: image "
                             f"{missing[0]} of the manifest is not in its shard; run `synthdiv verify`")
        labels = part.column("class").to_numpy().astype(np.int64)
        known = np.where((labels >= 0) & (labels < len(self._names) - 1), labels, len(self._names) - 1)
        prompt_idx = pa.array([self._prompt_row.get(p, -1) for p in part.column("prompt_id").to_pylist()], pa.int64())
        prompt_take = pc.if_else(pc.less(prompt_idx, 0), pa.scalar(None, pa.int64()), prompt_idx)
        prompt = {c: pc.take(self._prompts.column(c), prompt_take) for c in _PROMPT_COLUMNS[1:]}
        mem = [members[i] for i in ids]
        settings = [m.settings for m in mem]
        gen_ids = self._scrub(part.column("generator_id"))
        revisions = [s.get("revision") or (g.rpartition("@")[2] if g and "@" in g else None)
                     for s, g in zip(settings, gen_ids.to_pylist(), strict=True)]
        col = part.column
        cols: dict[str, Any] = {
            "key": col("image_id"), "shard": pa.array(np.full(len(ids), shard, np.int32)),
            "file": [m.name for m in mem], "label": col("class"),
            "class_name": self._names[known], "wnid": self._wnids[known], "description": self._descriptions[known],
            "prompt_id": col("prompt_id"), "prompt": prompt["text"], "negative_prompt": prompt["negative"],
            "prompt_kind": prompt["kind"], "context": prompt["context"], "style": prompt["style"],
            "seed": col("seed"), "generator_id": gen_ids, "generator_revision": revisions,
            "guidance": [_number(s.get("guidance")) for s in settings],
            "guidance_interval": [_interval(s.get("guidance_interval")) for s in settings],
            "steps": [s.get("steps") if isinstance(s.get("steps"), int) else None for s in settings],
            "scheduler": [s.get("scheduler") if isinstance(s.get("scheduler"), str) else None for s in settings],
            "source": self._scrub(col("source")) if "source" in part.column_names else None,
            "strength": col("strength") if "strength" in part.column_names else None,
            "width": col("width"), "height": col("height"), "retries": col("retries"),
            "degenerate": col("degenerate") if "degenerate" in part.column_names else None,
            "in_train_view": self._train[window][rows] if self._train is not None else None,
            "sha256": [m.sha256 for m in mem], "offset": [m.offset for m in mem], "size": [m.size for m in mem],
            "marked": [m.marked for m in mem],
        }
        for field in SCORE_FIELDS:
            cols[field.name] = scores.column(field.name).take(pa.array(rows)) if (
                scores is not None and field.name in scores.column_names) else None
        for name, mask in self._flags.items():
            cols[f"keep_{name}"] = mask[window][rows]
        arrays = [pa.nulls(len(ids), f.type) if cols[f.name] is None else _cast(cols[f.name], f.type)
                  for f in self.schema]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _interval(value: Any) -> list[float] | None:
    """A sidecar's ``guidance_interval`` ([start, end], generate.sampling), else None."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return [float(v) for v in value]
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _cast(values: Any, kind: pa.DataType) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(kind)
    if isinstance(values, np.ndarray) and values.dtype == object:
        values = values.tolist()
    return pa.array(values, kind)


def write_metadata(table: pa.Table, path: Path) -> None:
    """One shard's metadata file (written inside the partial folder, which is renamed only when complete)."""
    pq.write_table(table, path, compression="zstd")
