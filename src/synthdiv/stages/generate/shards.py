"""WebDataset shards and the per-shard manifest: the exactly-once contract of the generate stage.

A shard ``shards/shard-NNNNNN.tar`` is a standard classification WebDataset: per image ``<image_id>.jpg`` (or
``.webp``), ``<image_id>.cls`` (the class index as text) and ``<image_id>.json`` (its metadata, each field always of
one type: see :data:`SIDECAR_TYPES`). It is written under a temporary name and renamed when complete; only then is
its manifest part ``manifest.parquet/shard-NNNNNN.parquet`` written (atomically, with the tar's byte size in its
metadata and the byte range of every image in the tar). A shard is complete iff both exist and the tar matches the
part; anything else (a tar without a part, a part without a tar, a truncated or garbage tar, ``*.tmp-*`` leftovers
of a killed process) is reported and redone. When every planned shard is complete, ``shards/_info.json`` lists them
with their sample counts in the layout timm's ``wds/`` reader reads (:func:`write_wds_info`).
Tar headers are normalised (mtime 0, uid 0, mode 0644), so the same images give byte-identical shards.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tarfile
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthdiv.core.rundir import RunDir, shard_name
from synthdiv.core.schemas import (
    MANIFEST_SAMPLING_SCHEMA,
    MANIFEST_SCHEMA,
    PLAN_SOURCE_SCHEMA,
    with_format,
    written_format,
)
from synthdiv.stages.plan.reader import plan_shard_counts
from synthdiv.utils.io import TMP_MARK, atomic_write, atomic_write_json, read_jsonl, write_parquet_atomic

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_COLUMNS",
    "MANIFEST_PART_SCHEMA",
    "ShardWriter",
    "shard_state",
    "clean_shard",
    "complete_shards",
    "planned_complete_shards",
    "SIDECAR_TYPES",
    "WDS_INFO",
    "write_wds_info",
]

# The manifest: MANIFEST_SCHEMA, then the tar holding the image, its file extension and whether it stayed degenerate.
MANIFEST_COLUMNS = pa.schema([*MANIFEST_SCHEMA, ("tar", pa.string()), ("ext", pa.string()), ("degenerate", pa.bool_())])
# What a manifest part stores: MANIFEST_COLUMNS, then where each image's bytes lie in its tar (the writer fills these
# in), so that training reads any image directly instead of scanning 7.7k tars at every start.
# Then the image-to-image provenance (PLAN_SOURCE_SCHEMA: source, strength), null for text-to-image images.
MANIFEST_PART_SCHEMA = pa.schema([*MANIFEST_COLUMNS, ("offset", pa.int64()), ("size", pa.int64()),
                                  *PLAN_SOURCE_SCHEMA])
TAR_SIZE_KEY = b"synthdiv.tar_size"
WDS_INFO = "_info.json"  # the shard list timm's wds reader reads (timm/data/readers/reader_wds.py, _load_info)


def _python_type(arrow_type: pa.DataType) -> type:
    if pa.types.is_boolean(arrow_type):
        return bool
    if pa.types.is_floating(arrow_type):
        return float
    return int if pa.types.is_integer(arrow_type) else str


# The JSON sidecar's fields that the manifest also has, with the manifest's type, plus ``degenerate_reason`` ("" when
# the image is fine). Readers that infer one schema from a few samples (Hugging Face ``datasets``) need each field to
# keep one type in every sample, so the writer refuses a sidecar that breaks it (a null or a string ``degenerate``).
SIDECAR_TYPES: dict[str, type] = {f.name: _python_type(f.type) for f in (*MANIFEST_COLUMNS, *PLAN_SOURCE_SCHEMA)} | {
    "degenerate_reason": str, "negative_prompt": str}


class ShardWriter:
    """Writes one shard: ``open()``, ``add()`` per image, then ``commit(rows)`` or ``abort()``.

    Nothing appears under the final names before ``commit``: the tar is renamed into place, then the manifest part is
    written. ``abort`` removes the temporary tar. Not thread-safe: one thread drives a writer.
    """

    def __init__(self, run: RunDir, shard: int) -> None:
        self.run = run
        self.shard = int(shard)
        self._stack: ExitStack | None = None
        self._tar: tarfile.TarFile | None = None
        self._names: list[str] = []
        self._spans: dict[str, tuple[int, int]] = {}  # image key -> (byte offset of its data, size)

    def open(self) -> ShardWriter:
        self._stack = ExitStack()
        fh = self._stack.enter_context(atomic_write(self.run.shard_tar(self.shard), "wb"))
        self._tar = tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115 - closed in commit
        return self

    def add(self, key: str, ext: str, data: bytes, meta: dict[str, Any]) -> None:
        """Append ``<key>.<ext>`` (the encoded image), ``<key>.cls`` (``meta["class"]``) and ``<key>.json`` (``meta``).

        Raises:
            TypeError: ``meta`` has no integer ``class``, or a field of :data:`SIDECAR_TYPES` of another type.
        """
        if self._tar is None:
            raise RuntimeError("ShardWriter.add before open")
        _check_sidecar(key, meta)
        blob = json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8")
        label = str(meta["class"]).encode("ascii")
        for name, payload in ((f"{key}.{ext}", data), (f"{key}.cls", label), (f"{key}.json", blob)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uid, info.gid = len(payload), 0, 0o644, 0, 0
            self._tar.addfile(info, io.BytesIO(payload))
            if payload is data:  # the tar's offset is now past the data and its padding to a whole block
                blocks = -(-len(data) // tarfile.BLOCKSIZE)
                self._spans[key] = (self._tar.offset - blocks * tarfile.BLOCKSIZE, len(data))
        self._names.append(key)

    def commit(self, rows: pa.Table) -> int:
        """Close and rename the tar, then write the manifest part; returns the tar's size in bytes.

        Args:
            rows: One row per image (MANIFEST_COLUMNS); the writer adds each image's ``offset`` and ``size``.
        """
        if self._tar is None or self._stack is None:
            raise RuntimeError("ShardWriter.commit before open")
        ids = rows.column("image_id").to_pylist()
        if rows.num_rows != len(self._names) or not set(ids) <= self._spans.keys():
            self.abort()
            raise RuntimeError(f"{shard_name(self.shard)}: {rows.num_rows} manifest rows do not name the "
                               f"{len(self._names)} images written")
        spans = np.array([self._spans[i] for i in ids], dtype=np.int64).reshape(-1, 2)
        given = rows
        rows = rows.select(MANIFEST_COLUMNS.names).cast(MANIFEST_COLUMNS)
        rows = rows.append_column("offset", pa.array(spans[:, 0])).append_column("size", pa.array(spans[:, 1]))
        for field in PLAN_SOURCE_SCHEMA:  # image-to-image provenance, null where the caller has none
            col = given.column(field.name).cast(field.type) if field.name in given.column_names else pa.nulls(
                rows.num_rows, field.type)
            rows = rows.append_column(field, col)
        for field in MANIFEST_SAMPLING_SCHEMA:  # only those the caller recorded
            if field.name in given.column_names:
                rows = rows.append_column(field, given.column(field.name).cast(field.type))
        self._tar.close()
        self._stack.close()  # fsync + rename into place
        self._tar = self._stack = None
        size = self.run.shard_tar(self.shard).stat().st_size
        meta = {**(with_format(rows.schema, "manifest").metadata or {}), TAR_SIZE_KEY: str(size).encode()}
        write_parquet_atomic(rows.replace_schema_metadata(meta), self.run.manifest_part(self.shard))
        return size

    def abort(self) -> None:
        """Drop the temporary tar (nothing under a final name is touched)."""
        if self._stack is not None:
            with contextlib.suppress(_Aborted):
                self._stack.__exit__(_Aborted, _Aborted(), None)
        self._tar = self._stack = None


class _Aborted(Exception):
    pass


def _check_sidecar(key: str, meta: dict[str, Any]) -> None:
    if "class" not in meta:
        raise TypeError(f"sidecar of {key}: 'class' (the class index, written as {key}.cls) is missing")
    for name, kind in SIDECAR_TYPES.items():
        if name not in meta:
            continue
        value = meta[name]
        ok = isinstance(value, int) and not isinstance(value, bool) if kind is int else isinstance(value, kind)
        if not ok:
            raise TypeError(f"sidecar of {key}: {name!r} must be {kind.__name__} in every sample, got {value!r}")


def _part_tar_size(part: Path) -> int | None:
    try:
        meta = pq.read_schema(part).metadata or {}
        return int(meta[TAR_SIZE_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None


def _tar_members_ok(tar: Path, part: Path) -> bool:
    try:
        table = pq.read_table(part, columns=["image_id", "ext"])
        recorded = written_format(table.schema.metadata, "manifest") is not None
        ids, exts = table.column("image_id").to_pylist(), table.column("ext").to_pylist()
        expected = {f"{i}.{e}" for i, e in zip(ids, exts, strict=True)} | {f"{i}.json" for i in ids}
        with tarfile.open(tar, mode="r:") as tf:
            names = tf.getnames()
    except (OSError, tarfile.TarError, pa.ArrowException, KeyError, EOFError):
        return False
    labelled = expected | {f"{i}.cls" for i in ids}
    # a part written before formats were recorded may predate the .cls members: its shard stays complete without them
    # (redoing it would regenerate every image); a part of a recorded format has them, or its shard is damaged
    return len(names) == len(set(names)) and set(names) in ((labelled,) if recorded else (labelled, expected))


def shard_state(run: RunDir, shard: int, verify: str = "size") -> str:
    """``complete``, ``missing``, ``tar without manifest part``, ``part without tar`` or ``corrupt``.

    Args:
        verify: ``size`` compares the tar's size with the one its part recorded; ``members`` also lists the tar and
            compares its member names with the part's image ids.
    """
    tar, part = run.shard_tar(shard), run.manifest_part(shard)
    has_tar, has_part = tar.is_file(), part.is_file()
    if not has_tar and not has_part:
        return "missing"
    if not has_part:
        return "tar without manifest part"
    if not has_tar:
        return "part without tar"
    size = _part_tar_size(part)
    if size is None or size != tar.stat().st_size:
        return "corrupt"
    if verify == "members" and not _tar_members_ok(tar, part):
        return "corrupt"
    return "complete"


def clean_shard(run: RunDir, shard: int, state: str | None = None) -> None:
    """Remove a shard's temporary files and, unless it is complete, its tar and part, before it is redone."""
    prefix = shard_name(shard)
    for folder in (run.shards, run.manifest):
        if folder.is_dir():
            for leftover in folder.glob(f"{prefix}.*{TMP_MARK}*"):
                logger.info("removing %s left by an interrupted run", leftover.name)
                leftover.unlink(missing_ok=True)
    if state not in (None, "complete", "missing"):
        logger.warning("%s: %s; it will be redone", prefix, state)
        (run.shards / WDS_INFO).unlink(missing_ok=True)  # it lists this shard; written again when all are complete
        run.manifest_part(shard).unlink(missing_ok=True)  # the part first: a tar alone is never read
        run.shard_tar(shard).unlink(missing_ok=True)


def write_wds_info(run: RunDir, split: str = "train", shards: list[int] | None = None) -> Path:
    """Write ``shards/_info.json`` (atomically): the complete shards and their sample counts as one split.

    The layout is the one timm's ``wds/`` reader reads, so ``timm.data.create_dataset("wds/<name>", root=<shards>,
    split="train")`` and timm's ``train.py --data-dir <shards> --dataset wds/<name>`` train on the shards directly.
    The split holds every image of the shards (also those the score filter or the degenerate flag leave out of
    synthdiv's own training view: see ``synthdiv.open_run(...).manifest("train")``). ``shards``: the complete
    shards, when the caller has just checked them (default: the planned complete shards).
    """
    shards = planned_complete_shards(run) if shards is None else shards
    lengths = [pq.read_metadata(run.manifest_part(s)).num_rows for s in shards]
    info: dict[str, Any] = {
        "name": run.root.name,
        "splits": {split: {"name": split, "num_samples": sum(lengths),
                           "filenames": [run.shard_tar(s).name for s in shards], "shard_lengths": lengths}},
    }
    if run.classes.is_file():
        info["num_classes"] = len(read_jsonl(run.classes))
    path = run.shards / WDS_INFO
    atomic_write_json(path, info)
    return path


def complete_shards(run: RunDir, shards: Iterable[int] | None = None) -> list[int]:
    """Shards whose tar and manifest part both exist with matching sizes (a cheap check: one stat and footer each)."""
    if not run.manifest.is_dir():
        return []
    if shards is None:
        shards = sorted(int(p.stem.split("-")[1]) for p in run.manifest.glob("shard-*.parquet"))
    return [s for s in shards if shard_state(run, s, "size") == "complete"]


def planned_complete_shards(run: RunDir) -> list[int]:
    """The complete shards the plan names (all complete shards when there is no plan): a shard left on disk by a
    plan that has since been redone without it (a dropped adaptive round) is not part of the run."""
    if not run.plan.exists():
        return complete_shards(run)
    return complete_shards(run, plan_shard_counts(run.plan)[0].tolist())
