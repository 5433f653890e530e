"""Classes from an ImageFolder (one sub-folder of images per class), and real-image counts per class folder.

Folder names that are WordNet ids (``n01440764``) take their name and definition from ImageNet's metadata; other
folder names become class names with ``_`` read as a space.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from synthdiv.catalog.imagenet import describe_wnid, name_of_wnid
from synthdiv.catalog.records import ClassRecord
from synthdiv.catalog.wordnet import WNID_RE
from synthdiv.errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["imagefolder_classes", "count_images", "find_class_dir"]


def count_images(folder: Path, extensions: Iterable[str]) -> int:
    """Number of image files under ``folder`` (recursively), by extension, without opening them."""
    exts = {e.lower() for e in extensions}
    total = 0
    for _root, _dirs, files in os.walk(folder):
        total += sum(1 for f in files if os.path.splitext(f)[1].lower() in exts)
    return total


def imagefolder_classes(root: Path, extensions: Iterable[str]) -> list[ClassRecord]:
    """One class per sub-folder of ``root``, sorted by folder name (torchvision's ImageFolder order)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(f"{root}: no class sub-folders (expected an ImageFolder: {root}/<class>/<image>)")
    records = []
    for index, folder in enumerate(folders):
        wnid = folder.name if WNID_RE.match(folder.name) else None
        name = (name_of_wnid(wnid) if wnid else None) or folder.name.replace("_", " ").strip()
        records.append(
            ClassRecord(
                index=index,
                name=name,
                wnid=wnid,
                definition=describe_wnid(wnid) if wnid else None,
                real_images=count_images(folder, extensions),
                real_dir=str(folder),
            )
        )
    return records


def find_class_dir(root: Path, record: ClassRecord) -> Path | None:
    """The folder of ``record``'s real images under ``root``: named by its wnid, its name, or its name with ``_``."""
    for candidate in (record.wnid, record.name, record.name.replace(" ", "_")):
        if candidate and (root / candidate).is_dir():
            return root / candidate
    return None
