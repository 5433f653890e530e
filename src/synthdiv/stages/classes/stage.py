"""The classes stage: a class list from ImageNet ids, a class file or an ImageFolder -> ``classes.jsonl``.

Each class gets an index (its training label), a name, a WordNet id and definition where known, and the folder and
count of its real images. Empty names, and duplicate names that neither a wnid nor a definition tells apart, are
refused with their line numbers: later stages would otherwise write the same prompts for two classes.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdiv.config.classes import IMAGENET_SOURCES
from synthdiv.errors import InputError
from synthdiv.stages.classes.classfile import read_class_file
from synthdiv.stages.classes.imagefolder import class_folders, count_images, find_class_dir, imagefolder_classes
from synthdiv.stages.classes.imagenet import hypernym_name, imagenet_classes, lemmas_of_wnid
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.classes.records import ClassRecord
from synthdiv.utils.io import atomic_write_jsonl

if TYPE_CHECKING:
    from synthdiv.config.classes import ClassesConfig
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["build", "build_classes", "check_classes", "collect_classes", "external_inputs", "read_classes",
           "ClassRecord"]


def build(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """Stage implementation: write ``classes.jsonl``; returns counts for the stage summary."""
    records = collect_classes(cfg.classes)
    atomic_write_jsonl(run.classes, (r.to_json() for r in records))
    summary = {
        "classes": len(records),
        "with_definition": sum(r.definition is not None for r in records),
        "with_real_images": sum(r.real_images > 0 for r in records),
        "real_images": sum(r.real_images for r in records),
    }
    logger.info("classes: %d classes, %d real images", summary["classes"], summary["real_images"])
    return summary


def check_classes(cfg: RunConfig, run: RunDir) -> None:
    """Refuse a bad class list before the stage writes anything (the engine calls this before it takes the lock)."""
    section = cfg.classes
    if section.real_root is not None and not section.real_root.is_dir():
        raise InputError(f"classes.real_root: {section.real_root} is not a directory")
    if not isinstance(section.source, str) and Path(section.source).is_dir():
        class_folders(Path(section.source))  # names only: counting the images is the stage's work
    else:
        collect_classes(section.model_copy(update={"real_root": None}))


def collect_classes(section: ClassesConfig) -> list[ClassRecord]:
    """The classes described by a ``classes`` config section, validated and indexed 0..N-1."""
    source = section.source
    if isinstance(source, str) and source in IMAGENET_SOURCES:
        records, where = imagenet_classes(source), source
    else:
        path = Path(source)
        if path.is_dir():
            records, where = imagefolder_classes(path, section.image_extensions), str(path)
        elif path.is_file():
            records, where = read_class_file(path), str(path)
        else:
            raise InputError(f"classes.source: {path} does not exist (expected imagenet-1k, imagenet-22k, a "
                             ".txt/.csv class file or an ImageFolder directory)")
    records = [_with_senses(r) for r in _select(records, section)]
    _check_unique(records, where)
    if section.real_root is not None:
        records = _attach_real(records, section.real_root, section.image_extensions)
    return [r.with_(index=i) for i, r in enumerate(records)]


def _with_senses(record: ClassRecord) -> ClassRecord:
    """The record with its synset's lemmas and hypernym, where it has a wnid (the disambiguate stage uses them)."""
    if record.wnid is None or record.lemmas is not None:
        return record
    return record.with_(lemmas=lemmas_of_wnid(record.wnid), hypernym=hypernym_name(record.wnid))


def _select(records: list[ClassRecord], section: ClassesConfig) -> list[ClassRecord]:
    if section.subset is not None:
        by_key: dict[str, ClassRecord] = {}
        for r in records:
            for key in (r.wnid, r.name, r.name.casefold()):
                if key:
                    by_key.setdefault(key, r)
        chosen = []
        for item in section.subset:
            r = by_key.get(item) or by_key.get(item.casefold())
            if r is None:
                raise InputError(f"classes.subset: unknown class {item!r} (give a wnid or a name from the source)")
            chosen.append(r)
        records = chosen
    if section.max_classes is not None:
        records = records[: section.max_classes]
    return records


def _where(r: ClassRecord) -> str:
    if r.line is not None:
        return f"line {r.line}"
    return f"folder {Path(r.real_dir).name}" if r.real_dir else f"class {r.index}"


def _check_unique(records: list[ClassRecord], where: str) -> None:
    by_wnid: dict[str, ClassRecord] = {}
    for r in records:
        if r.wnid and r.wnid in by_wnid:
            raise InputError(f"{where}: {_where(by_wnid[r.wnid])} and {_where(r)}: duplicate wnid {r.wnid}")
        if r.wnid:
            by_wnid[r.wnid] = r
    groups: dict[str, list[ClassRecord]] = defaultdict(list)
    for r in records:
        groups[" ".join(r.name.casefold().split())].append(r)
    for same in groups.values():
        for i, a in enumerate(same):
            for b in same[i + 1 :]:
                if a.wnid == b.wnid and (a.definition or "") == (b.definition or ""):
                    raise InputError(
                        f"{where}: {_where(a)} and {_where(b)}: duplicate class name {b.name!r} that no wnid or "
                        "definition tells apart (use a CSV with a wnid or definition column)"
                    )


def _attach_real(records: list[ClassRecord], root: Path, extensions: list[str]) -> list[ClassRecord]:
    if not root.is_dir():
        raise InputError(f"classes.real_root: {root} is not a directory")
    out = []
    for r in records:
        folder = find_class_dir(root, r)
        if folder is None:
            logger.warning("classes: no real images for %r under %s", r.name, root)
            out.append(r.with_(real_dir=None, real_images=0))
        else:
            out.append(r.with_(real_dir=str(folder), real_images=count_images(folder, extensions)))
    return out


def external_inputs(cfg: RunConfig) -> list[Path]:
    """Files outside the run that the classes stage reads (for its fingerprint)."""
    paths = [] if isinstance(cfg.classes.source, str) else [Path(cfg.classes.source)]
    if cfg.classes.real_root is not None:
        paths.append(cfg.classes.real_root)
    return paths


build_classes = build  # the name callers used in synthdiv 0.1
