"""Real images: from ``classes.jsonl`` (each class's ``real_dir``), an ImageFolder, or a folder of WebDataset shards.

Class folders of an ImageFolder are matched to the run's classes by WordNet id or by name; a folder that matches
no class is skipped with a warning. Shards label their samples with ``<key>.cls`` or ``"class"`` / ``"label"`` in
``<key>.json`` (a class index). Indexing a shard reads every member header; with ``index_dir`` each shard's index is
kept there (keyed by the shard's path, size and mtime), so a second train start, or a second variant, reads one small
Parquet file per shard instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdiv.data.sources import IMAGE_EXTENSIONS, SampleSet, TarMember, index_tar, list_images
from synthdiv.errors import InputError
from synthdiv.utils.io import write_parquet_atomic
from synthdiv.utils.names import is_within, printable

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig

logger = logging.getLogger(__name__)

__all__ = ["real_samples", "real_dir_roots", "imagefolder_samples", "shard_samples", "class_lookup"]


def class_lookup(classes: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Folder name -> class index, by wnid, by name and by index (as ImageNet-V2 names its folders)."""
    lookup: dict[str, int] = {}
    for row in classes:
        for key in (row.get("wnid"), row.get("name")):
            if key:
                lookup.setdefault(str(key), row["index"])
                lookup.setdefault(str(key).lower(), row["index"])
    return lookup


def imagefolder_samples(
    root: Path | str, classes: Sequence[dict[str, Any]], extensions: Sequence[str] = IMAGE_EXTENSIONS
) -> SampleSet:
    """Images of an ImageFolder ``root/<class>/*``, labelled by matching ``<class>`` to the run's classes."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: image folder not found")
    lookup = class_lookup(classes)
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = lookup.get(folder.name, lookup.get(folder.name.lower()))
        if label is None:
            logger.warning("%s: folder matches no class of the run (by wnid or name); skipped", folder)
            continue
        rows += [(str(p), -1, -1, label, str(p)) for p in list_images(folder, extensions)]
    return SampleSet.from_rows(rows)


def shard_samples(root: Path | str, num_classes: int, index_dir: Path | None = None) -> SampleSet:
    """Samples of every ``*.tar`` shard under ``root``, labelled by their ``.cls`` or ``.json`` class.

    Args:
        index_dir: Keep each shard's index here and reuse it while the shard is unchanged (None: index every time).
    """
    root = Path(root)
    shards = sorted(root.rglob("*.tar"))
    rows = []
    for shard in shards:
        try:
            members = _shard_index(shard, index_dir)
        except InputError as exc:  # a damaged shard costs its images, never the run
            logger.warning("%s; skipped", exc)
            continue
        for m in members:
            label = m.meta.get("class", m.meta.get("label"))
            if not isinstance(label, int) or not 0 <= label < num_classes:
                logger.warning("%s: sample %s has no class index in 0..%d; skipped", shard, m.key, num_classes - 1)
                continue
            rows.append((str(shard), m.offset, m.size, label, f"{shard.name}:{m.key}"))
    return SampleSet.from_rows(rows)


def _shard_index(shard: Path, index_dir: Path | None) -> list[TarMember]:
    """:func:`index_tar` of ``shard``, through the index kept in ``index_dir`` when there is one."""
    if index_dir is None:
        return index_tar(shard)
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    st = shard.stat()
    key = hashlib.sha256(f"{shard.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:32]
    cached = Path(index_dir) / f"{key}.parquet"
    if cached.is_file():
        try:
            t = pq.read_table(cached, columns=["key", "offset", "size", "class"]).to_pydict()
            return [TarMember(str(k), int(o), int(n), {} if c is None else {"class": int(c)})
                    for k, o, n, c in zip(t["key"], t["offset"], t["size"], t["class"], strict=True)]
        except (pa.ArrowException, OSError, KeyError, ValueError, TypeError) as exc:  # a damaged index: a miss
            logger.warning("%s: damaged shard index (%s); indexing %s again", cached,
                           (str(exc).splitlines() or [""])[0][:120], shard.name)
    members = index_tar(shard)
    labels = [m.meta.get("class", m.meta.get("label")) for m in members]
    write_parquet_atomic(pa.table({
        "key": [m.key for m in members], "offset": pa.array([m.offset for m in members], pa.int64()),
        "size": pa.array([m.size for m in members], pa.int64()),
        "class": pa.array([int(c) if isinstance(c, int) else None for c in labels], pa.int64()),
    }), cached)
    return members


def real_dir_roots(cfg: RunConfig) -> list[Path] | None:
    """Where the classes stage may have found real images: ``classes.real_root`` or an ImageFolder source."""
    roots = [Path(cfg.classes.real_root)] if cfg.classes.real_root is not None else []
    if not isinstance(cfg.classes.source, str) and Path(cfg.classes.source).is_dir():
        roots.append(Path(cfg.classes.source))
    return roots or None


def real_samples(
    classes: Sequence[dict[str, Any]],
    real_root: Path | None = None,
    index_dir: Path | None = None,
    roots: Sequence[Path] | None = None,
) -> SampleSet:
    """The run's real training images: ``real_root`` (ImageFolder or shards) if given, else each class's real_dir.

    Args:
        index_dir: Where shard indexes are kept between calls (see :func:`shard_samples`).
        roots: The folders real images may come from (``classes.real_root``, an ImageFolder source): a real_dir
            outside them (a hand-edited or foreign ``classes.jsonl``) is refused rather than read.
    """
    if real_root is not None:
        real_root = Path(real_root)
        if not real_root.exists():
            raise InputError(f"train.real_root: {real_root} does not exist")
        if real_root.is_file() or any(real_root.glob("*.tar")):
            return shard_samples(real_root if real_root.is_dir() else real_root.parent, len(classes), index_dir)
        return imagefolder_samples(real_root, classes)
    rows = []
    for row in classes:
        if row.get("real_dir"):
            folder = Path(row["real_dir"])
            if roots is not None and not any(is_within(folder, root) for root in roots):
                raise InputError(f"classes.jsonl: class {row['index']}: real_dir {printable(str(folder), limit=200)} "
                                 f"is outside {' and '.join(str(r) for r in roots) or 'every real-image folder'}")
            if not folder.is_dir():
                raise InputError(f"classes.jsonl: class {row['index']} ({row['name']}): real_dir {folder} not found")
            rows += [(str(p), -1, -1, row["index"], str(p)) for p in list_images(folder)]
    return SampleSet.from_rows(rows)
