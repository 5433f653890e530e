"""``synthdiv verify --dataset``: a received dataset folder checked against its own metadata and recipe.

Every shard tar is read from end to end (a streaming read: one member in memory) and set against its metadata part
(:data:`~synthdiv.core.schemas.PUBLISHED_SCHEMA`):

- every image the metadata lists is in its tar once, at the byte offset and with the size it records, with the
  sha256 it records; no image is in the tars that the metadata does not list, or in two shards;
- its label agrees three ways: the metadata's ``label``, the ``.cls`` member and the ``class`` of the JSON sidecar,
  and with the class the recipe's plan (``recipe/plan.parquet``) gave the image;
- a tar that ends early (truncated) or does not read is damage, and so is a tar without metadata or the reverse.

Each problem is one line naming the shard and the image. Nothing in the folder is changed.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthdiv.errors import InputError
from synthdiv.publish.folder import IMAGE_EXTS
from synthdiv.publish.layout import PublishedDir

__all__ = ["DatasetCheck", "check_dataset"]

_SHOWN = 20  # problem lines kept per kind; the rest are counted


@dataclass
class DatasetCheck:
    """What :func:`check_dataset` found."""

    shards: int = 0
    images: int = 0  # images found intact
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # problems by kind

    @property
    def ok(self) -> bool:
        return not self.counts

    def add(self, kind: str, line: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.counts[kind] <= _SHOWN:
            self.problems.append(line)


@dataclass
class _Tar:
    images: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)  # member name -> (offset, size, sha)
    labels: dict[str, list[str]] = field(default_factory=dict)  # key -> .cls contents
    sidecar: dict[str, Any] = field(default_factory=dict)  # key -> the sidecar's "class"
    error: str | None = None


def _read_tar(path: Path) -> _Tar:
    out = _Tar()
    try:
        with tarfile.open(path, mode="r|") as tf:
            for info in tf:
                if not info.isfile():
                    continue
                handle = tf.extractfile(info)
                data = handle.read() if handle is not None else b""
                if len(data) != info.size:
                    raise EOFError(f"{info.name} is cut short")
                key, _, ext = info.name.partition(".")
                if ext.lower() in IMAGE_EXTS:
                    out.images.setdefault(info.name, []).append(
                        (info.offset_data, len(data), hashlib.sha256(data).hexdigest()))
                elif ext == "cls":
                    out.labels.setdefault(key, []).append(data.decode("ascii", "replace").strip())
                elif ext == "json":
                    try:
                        meta = json.loads(data)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        meta = None
                    out.sidecar[key] = meta.get("class") if isinstance(meta, dict) else "<unreadable>"
    except (OSError, tarfile.TarError, EOFError) as exc:
        out.error = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    return out


class _PlanClasses:
    """The class the recipe's plan gave each image, looked up shard by shard (the plan sorted by shard once)."""

    def __init__(self, path: Path) -> None:
        self.available = path.is_file()
        if not self.available:
            return
        try:
            table = pq.read_table(path, columns=["image_id", "class", "shard"])
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise InputError(f"{path}: unreadable recipe plan ({str(exc).splitlines()[0][:120]})") from None
        order = np.argsort(table.column("shard").to_numpy(), kind="stable")
        self._table = table.take(order)
        self._shards = self._table.column("shard").to_numpy()

    def of_shard(self, shard: int) -> dict[str, int]:
        if not self.available:
            return {}
        lo, hi = np.searchsorted(self._shards, [shard, shard + 1])
        part = self._table.slice(int(lo), int(hi - lo))
        return dict(zip(part.column("image_id").to_pylist(), part.column("class").to_pylist(), strict=True))


def _shard_numbers(folder: PublishedDir) -> list[int]:
    parts = {int(p.stem.split("-")[1]) for p in folder.metadata.glob("shard-*.parquet")}
    return sorted(parts | set(folder.shards()))


def check_dataset(root: Path | str) -> DatasetCheck:
    """Check the published folder at ``root``; raises InputError when it is not one (no ``data/`` or
    ``metadata/``)."""
    folder = PublishedDir(root)
    if not folder.data.is_dir() or not folder.metadata.is_dir():
        raise InputError(f"{folder.root}: not a published dataset folder (expected data/ and metadata/; see "
                         "docs/publishing.md)")
    plan = _PlanClasses(folder.recipe_file("plan.parquet"))
    result = DatasetCheck()
    seen: dict[str, int] = {}  # key -> the shard it was found in
    for shard in _shard_numbers(folder):
        result.shards += 1
        _check_shard(folder, shard, plan, seen, result)
    return result


def _check_shard(folder: PublishedDir, shard: int, plan: _PlanClasses, seen: dict[str, int],
                 result: DatasetCheck) -> None:
    tar_path, part_path = folder.shard_tar(shard), folder.metadata_part(shard)
    tar_name, part_name = f"data/{tar_path.name}", f"metadata/{part_path.name}"
    if not part_path.is_file():
        result.add("unlisted shard", f"{tar_name}: no {part_name}: its images are listed nowhere")
        return
    try:
        rows = pq.read_table(part_path, columns=["key", "file", "label", "sha256", "offset", "size"]).to_pylist()
    except (OSError, pa.ArrowException, KeyError) as exc:
        result.add("damaged metadata", f"{part_name}: unreadable ({str(exc).splitlines()[0][:120]})")
        return
    if not tar_path.is_file():
        result.add("missing shard", f"{tar_name}: missing ({len(rows)} images listed in {part_name})")
        return
    tar = _read_tar(tar_path)
    if tar.error is not None:
        result.add("truncated shard", f"{tar_name}: truncated or damaged ({tar.error}); {len(rows)} images listed")
        return
    planned = plan.of_shard(shard)
    listed = set()
    for row in rows:
        key, name = row["key"], row["file"]
        listed.add(name)
        where = f"{tar_name}: {name}"
        found = tar.images.get(name, [])
        if not found:
            result.add("missing image", f"{where}: listed in {part_name}, not in the tar")
            continue
        if len(found) > 1:
            result.add("image twice", f"{where}: {len(found)} times in the tar")
            continue
        if key in seen:
            result.add("image twice", f"{where}: also in shard {seen[key]}")
            continue
        seen[key] = shard
        offset, size, sha = found[0]
        if (offset, size) != (row["offset"], row["size"]):
            result.add("moved image", f"{where}: at byte {offset} ({size} bytes), metadata says {row['offset']} "
                                      f"({row['size']} bytes)")
        elif sha != row["sha256"]:
            result.add("changed image", f"{where}: sha256 {sha[:12]}..., metadata says {str(row['sha256'])[:12]}...")
        elif (problem := _label_problem(key, row["label"], tar, planned, plan.available)) is not None:
            result.add("label", f"{where}: {problem}")
        else:
            result.images += 1
    for name in sorted(set(tar.images) - listed):
        result.add("unlisted image", f"{tar_name}: {name} is not in {part_name}")


def _label_problem(key: str, label: int, tar: _Tar, planned: dict[str, int], have_plan: bool) -> str | None:
    cls = tar.labels.get(key, [])
    if len(cls) != 1 or cls[0] != str(label):
        return f"label {label} in the metadata, .cls member says {', '.join(cls) or 'nothing'}"
    if tar.sidecar.get(key) != label:
        return f"label {label} in the metadata, its JSON sidecar says class {tar.sidecar.get(key)}"
    if have_plan and planned.get(key) != label:
        return (f"label {label}, the recipe's plan gives class {planned[key]}" if key in planned
                else "not in the recipe's plan")
    return None
