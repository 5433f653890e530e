"""What later stages read of the generate stage: the manifest of the complete shards, each image's bytes by
its byte range (or decoded), and which shards are still missing or damaged.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthdiv.core.rundir import RunDir, shard_name
from synthdiv.data.sources import read_bytes
from synthdiv.errors import InputError
from synthdiv.stages.generate.shards import MANIFEST_PART_SCHEMA, planned_complete_shards, shard_state
from synthdiv.stages.plan.reader import plan_shard_counts
from synthdiv.utils.decode import UnreadableImage, decode_image

if TYPE_CHECKING:
    from PIL import Image


def read_manifest(run: RunDir, columns: list[str] | None = None) -> pa.Table:
    """Every manifest row of the complete planned shards, in shard order, then plan order within a shard; only
    ``columns`` when given (a narrow read of a large run)."""
    shards = planned_complete_shards(run)
    if not shards:
        empty = MANIFEST_PART_SCHEMA.empty_table()
        return empty.select(columns) if columns is not None else empty
    return pa.concat_tables([part for _, part in iter_manifest_parts(run, columns, shards)],
                            promote_options="default")


def iter_manifest_parts(run: RunDir, columns: list[str] | None = None,
                        shards: list[int] | None = None) -> Iterator[tuple[int, pa.Table]]:
    """``(shard, rows)`` for each complete planned shard in order (or each of ``shards``), one part in memory at a
    time: what a reader of a 7.7M-image run streams instead of :func:`read_manifest`. A column an older part lacks is
left out of that part's rows.

    Raises:
        InputError: A part's footer reads but its pages do not.
    """
    for shard in planned_complete_shards(run) if shards is None else shards:
        path = run.manifest_part(shard)
        try:
            names = pq.read_schema(path).names if columns is not None else None
            present = [c for c in columns if c in names] if columns is not None and names is not None else None
            yield shard, pq.read_table(path, columns=present).replace_schema_metadata(None)
        except (OSError, pa.ArrowException) as exc:  # footer readable, pages damaged: thrift or decode errors
            raise InputError(f"{path}: damaged manifest part ({str(exc).splitlines()[0][:120]}); "
                             "`synthdiv verify --repair` remakes its shard") from None


def image_bytes(run: RunDir, rows: pa.Table) -> list[bytes]:
    """The encoded image of each manifest row, in row order: read at the byte range the manifest records (one seek
    per image, no tar scanned), or, for rows of a manifest written before byte ranges were kept, found in its tar.

    Raises:
        InputError: A row's image is not in its shard (the shard changed after the manifest was written).
    """
    names = set(rows.column_names)
    data = rows.select([c for c in ("image_id", "shard", "ext", "offset", "size") if c in names]).to_pylist()
    out: list[bytes | None] = [None] * len(data)
    scan: dict[int, dict[str, int]] = {}
    for i, r in enumerate(data):
        if (r.get("offset") if r.get("offset") is not None else -1) >= 0 and r.get("size"):
            out[i] = read_bytes(str(run.shard_tar(r["shard"])), r["offset"], r["size"])
        else:
            scan.setdefault(r["shard"], {})[f"{r['image_id']}.{r.get('ext') or 'jpg'}"] = i
    for shard, wanted in scan.items():
        with tarfile.open(run.shard_tar(shard)) as tf:
            for member in tf:
                if member.name in wanted:
                    out[wanted[member.name]] = tf.extractfile(member).read()  # type: ignore[union-attr]
    missing = [data[i]["image_id"] for i, blob in enumerate(out) if blob is None]
    if missing:
        raise InputError(f"{run.shard_tar(data[0]['shard'])}: image {missing[0]} is not in its shard; run "
                         "`synthdiv verify --repair`, then `synthdiv generate`")
    return [blob for blob in out if blob is not None]


def iter_shard_images(run: RunDir, rows: pa.Table) -> Iterator[Image.Image]:
    """The images of the manifest ``rows``, in row order, read by their byte ranges (:func:`image_bytes`) and decoded
    under the decoder policy (:mod:`synthdiv.utils.decode`): a damaged one is one line naming its shard and key."""
    shards, ids = rows.column("shard").to_pylist(), rows.column("image_id").to_pylist()
    for shard, image_id, blob in zip(shards, ids, image_bytes(run, rows), strict=True):
        name = f"{shard_name(shard)}:{image_id}"
        try:
            yield decode_image(blob, name=name)
        except UnreadableImage as exc:
            raise UnreadableImage(name, f"{exc.reason}; run `synthdiv verify --repair`, then `synthdiv generate`"
                                  ) from None


def incomplete_shards(run: RunDir) -> dict[int, str]:
    """Shards that are not complete, with their state, by the cheap check (each tar's size against its part's).

    The planned shards when there is a plan; otherwise those with a tar or a manifest part on disk.
    """
    return _incomplete(run, known_shards(run))


def known_shards(run: RunDir) -> np.ndarray:
    """The planned shards when there is a plan; otherwise those with a tar or a manifest part on disk."""
    if run.plan.exists():
        return _plan_counts(run)[0]
    names = {p.name.split(".")[0] for d in (run.shards, run.manifest) if d.is_dir() for p in d.glob("shard-*")}
    return np.array(sorted(int(n[6:]) for n in names if n[6:].isdigit()), dtype=np.int64)


def require_complete(run: RunDir, stage: str) -> None:
    """Refuse to read the shards of an incomplete generate stage: ``stage`` would see only part of the images.

    Raises:
        InputError: Naming how many shards are missing or damaged and the first of them.
    """
    bad = incomplete_shards(run)
    if bad:
        total = len(known_shards(run))
        shard, state = next(iter(bad.items()))
        known = "planned" if run.plan.exists() else "found"
        raise InputError(
            f"{run.manifest}: {len(bad)} of {total} {known} shards are missing or damaged (first: {shard_name(shard)}: "
            f"{state}); run `synthdiv generate` to redo them before `synthdiv {stage}`"
        )


def _plan_counts(run: RunDir) -> tuple[np.ndarray, np.ndarray]:
    return plan_shard_counts(run.plan)


def _incomplete(run: RunDir, shards: np.ndarray) -> dict[int, str]:
    return {int(s): st for s, st in zip(shards.tolist(), _states(run, shards), strict=True) if st != "complete"}


def _states(run: RunDir, shards: np.ndarray) -> list[str]:
    return [shard_state(run, int(s), "size") for s in shards]
