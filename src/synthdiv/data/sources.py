"""Where training and evaluation images come from: image files and WebDataset tar members, as one indexed table.

A :class:`SampleSet` is columnar (numpy arrays), so a set of millions of images costs a few arrays, not millions of
dicts. Each sample is a byte range: a whole file (``offset == -1``) or a member of a tar shard (``offset`` and
``size`` of its data), which lets a map-style dataset read any sample directly, in any order, for exact resume.
"""

from __future__ import annotations

import json
import logging
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthdiv.errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["SampleSet", "IMAGE_EXTENSIONS", "read_bytes", "list_images", "index_tar", "TarMember"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_TAR_IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


@dataclass
class SampleSet:
    """Images and their labels, one row per sample.

    Attributes:
        paths: The file (or tar shard) each sample lives in.
        offsets: Byte offset of a tar member's data, or -1 for a whole file.
        sizes: Byte size of a tar member's data, or -1 for a whole file.
        labels: Class index of each sample.
        keys: A name per sample (file path or ``shard:key``) for messages and provenance.
    """

    paths: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    labels: np.ndarray
    keys: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))

    @classmethod
    def empty(cls) -> SampleSet:
        return cls.from_rows([])

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, int, int, int, str]]) -> SampleSet:
        """Build from ``(path, offset, size, label, key)`` rows."""
        rows = list(rows)
        return cls(
            paths=np.array([r[0] for r in rows], dtype=object),
            offsets=np.array([r[1] for r in rows], dtype=np.int64),
            sizes=np.array([r[2] for r in rows], dtype=np.int64),
            labels=np.array([r[3] for r in rows], dtype=np.int64),
            keys=np.array([r[4] for r in rows], dtype=object),
        )

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: Sequence[int] | np.ndarray) -> SampleSet:
        """The samples at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        return SampleSet(self.paths[idx], self.offsets[idx], self.sizes[idx], self.labels[idx], self.keys[idx])

    def class_counts(self, num_classes: int) -> np.ndarray:
        """Number of samples of each class."""
        return np.bincount(self.labels, minlength=num_classes)[:num_classes]

    def read(self, i: int) -> bytes:
        """The encoded bytes of sample ``i``."""
        return read_bytes(self.paths[i], int(self.offsets[i]), int(self.sizes[i]))


def read_bytes(path: str, offset: int, size: int) -> bytes:
    """Read a whole file (``offset < 0``) or ``size`` bytes at ``offset``."""
    with open(path, "rb") as fh:
        if offset < 0:
            return fh.read()
        fh.seek(offset)
        return fh.read(size)


def list_images(folder: Path | str, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly in ``folder`` or below it, sorted (so the order is the same on every machine)."""
    exts = {e.lower() for e in extensions}
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in exts and p.is_file())


@dataclass(frozen=True)
class TarMember:
    """One WebDataset sample of a shard: its image member's byte range and its metadata."""

    key: str
    offset: int
    size: int
    meta: dict


def index_tar(path: Path | str) -> list[TarMember]:
    """Index the image members of a WebDataset shard (``<key>.jpg`` + optional ``<key>.json`` / ``<key>.cls``).

    Raises:
        InputError: The file is not a readable tar archive.
    """
    images: dict[str, tuple[int, int]] = {}
    metas: dict[str, dict] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                base = m.name.rsplit("/", 1)[-1]
                key, _, ext = base.partition(".")
                key = m.name[: len(m.name) - len(base)] + key
                ext = ext.lower()
                if ext in _TAR_IMAGE_EXTS:
                    images[key] = (m.offset_data, m.size)
                elif ext in ("json", "cls"):
                    raw = tar.extractfile(m).read()  # type: ignore[union-attr]
                    try:
                        meta = json.loads(raw) if ext == "json" else {"class": int(raw.strip())}
                    except (ValueError, UnicodeDecodeError):
                        logger.warning("%s: unreadable %s of sample %s; ignored", path, ext, key)
                        continue
                    if isinstance(meta, dict):
                        metas.setdefault(key, {}).update(meta)
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"{path}: not a readable WebDataset tar shard ({exc})") from None
    return [TarMember(k, off, size, metas.get(k, {})) for k, (off, size) in images.items()]
