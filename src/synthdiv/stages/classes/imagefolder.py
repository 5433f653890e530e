"""Classes from an ImageFolder (one sub-folder of images per class), and real-image counts per class folder.

Folder names that are WordNet ids (``n01440764``) take their name and definition from ImageNet's metadata; other
folder names become class names with ``_`` read as a space. A ``classes.csv`` beside the class folders (columns
``name``, the folder name, and ``wnid`` and/or ``definition``) names the sense of the folders it lists. A class
finds its real images only inside ``classes.real_root``: names that would leave it (``../x``, ``/abs``) are refused
when the class list is read and never joined to a path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from synthdiv.errors import InputError
from synthdiv.lexicon.wordnet import WNID_RE
from synthdiv.stages.classes.classfile import folder_senses
from synthdiv.stages.classes.imagenet import describe_wnid, name_of_wnid
from synthdiv.stages.classes.records import ClassRecord
from synthdiv.utils.names import name_problem, printable, safe_join

logger = logging.getLogger(__name__)

__all__ = ["imagefolder_classes", "class_folders", "count_images", "find_class_dir"]


def count_images(folder: Path, extensions: Iterable[str]) -> int:
    """Number of image files under ``folder`` (recursively), by extension, without opening them."""
    exts = {e.lower() for e in extensions}
    total = 0
    for _root, _dirs, files in os.walk(folder):
        total += sum(1 for f in files if os.path.splitext(f)[1].lower() in exts)
    return total


def class_folders(root: Path) -> list[Path]:
    """The class sub-folders of ``root``, sorted by name (torchvision's ImageFolder order), their names checked."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(f"{root}: no class sub-folders (expected an ImageFolder: {root}/<class>/<image>)")
    for folder in folders:
        problem = name_problem(folder.name)
        if problem is not None:
            raise InputError(f"{root}: class folder '{printable(folder.name, limit=60)}' {problem}")
    return folders


def imagefolder_classes(root: Path, extensions: Iterable[str]) -> list[ClassRecord]:
    """One class per sub-folder of ``root``, sorted by folder name (torchvision's ImageFolder order)."""
    records = []
    folders = class_folders(root)
    senses = folder_senses(root)
    unknown = sorted(set(senses) - {f.name for f in folders})
    if unknown:
        raise InputError(f"{root / 'classes.csv'}: line {senses[unknown[0]].line}: {unknown[0]!r} names no class "
                         f"folder of {root} (expected a folder name, as it is on disk)")
    for index, folder in enumerate(folders):
        given = senses.get(folder.name)
        wnid = folder.name if WNID_RE.match(folder.name) else (given.wnid if given else None)
        name = (name_of_wnid(folder.name) if WNID_RE.match(folder.name) else None) or folder.name.replace("_", " ")
        definition = (given.definition if given else None) or (describe_wnid(wnid) if wnid else None)
        records.append(
            ClassRecord(
                index=index,
                name=name.strip(),
                wnid=wnid,
                definition=definition,
                real_images=count_images(folder, extensions),
                real_dir=str(folder),
            )
        )
    return records


def find_class_dir(root: Path, record: ClassRecord) -> Path | None:
    """The folder of ``record``'s real images under ``root``: named by its wnid, its name, or its name with ``_``.

    A candidate that is not one plain folder name (``..``, ``a/b``, ``/abs``) is never looked up.
    """
    for candidate in (record.wnid, record.name, record.name.replace(" ", "_")):
        if candidate and name_problem(candidate) is None:
            folder = safe_join(root, candidate, what="classes.real_root")
            if folder.is_dir():
                return folder
    return None
