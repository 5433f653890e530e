"""Real images: from ``classes.jsonl`` (each class's ``real_dir``), an ImageFolder, or a folder of WebDataset shards.

Class folders of an ImageFolder are matched to the run's classes by WordNet id or by name; a folder that matches
no class is skipped with a warning. Shards label their samples with ``<key>.cls`` or ``"class"`` / ``"label"`` in
``<key>.json`` (a class index).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthdiv.data.sources import IMAGE_EXTENSIONS, SampleSet, index_tar, list_images
from synthdiv.errors import InputError
from synthdiv.run import read_jsonl

logger = logging.getLogger(__name__)

__all__ = ["load_classes", "real_samples", "imagefolder_samples", "shard_samples", "class_lookup"]


def load_classes(path: Path | str) -> list[dict[str, Any]]:
    """Rows of ``classes.jsonl``, checked to be indexed 0..N-1 in order."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: classes.jsonl not found; run `synthdiv classes` first")
    rows = read_jsonl(path)
    for i, row in enumerate(rows):
        if row.get("index") != i:
            raise InputError(f"{path}: line {i + 1}: expected index {i}, got {row.get('index')!r}")
    if not rows:
        raise InputError(f"{path}: no classes")
    return rows


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


def shard_samples(root: Path | str, num_classes: int) -> SampleSet:
    """Samples of every ``*.tar`` shard under ``root``, labelled by their ``.cls`` or ``.json`` class."""
    root = Path(root)
    shards = sorted(root.rglob("*.tar"))
    rows = []
    for shard in shards:
        try:
            members = index_tar(shard)
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


def real_samples(classes: Sequence[dict[str, Any]], real_root: Path | None = None) -> SampleSet:
    """The run's real training images: ``real_root`` (ImageFolder or shards) if given, else each class's real_dir."""
    if real_root is not None:
        real_root = Path(real_root)
        if not real_root.exists():
            raise InputError(f"train.real_root: {real_root} does not exist")
        if real_root.is_file() or any(real_root.glob("*.tar")):
            return shard_samples(real_root if real_root.is_dir() else real_root.parent, len(classes))
        return imagefolder_samples(real_root, classes)
    rows = []
    for row in classes:
        if row.get("real_dir"):
            folder = Path(row["real_dir"])
            if not folder.is_dir():
                raise InputError(f"classes.jsonl: class {row['index']} ({row['name']}): real_dir {folder} not found")
            rows += [(str(p), -1, -1, row["index"], str(p)) for p in list_images(folder)]
    return SampleSet.from_rows(rows)
