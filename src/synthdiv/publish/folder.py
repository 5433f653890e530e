"""The shards of a published folder: each run shard linked, or written anew when its members change.

A run shard goes into ``DIR/data/`` as a hard link (a copy across file systems; never moved) when it is published as
it is: every image, no marking, and JSON sidecars free of machine paths. Otherwise it is written anew, member by member
in the order of the run's tar (a streaming read and a streaming write, one member in memory): images left out of the
view are dropped, JPEGs get their XMP marking (:mod:`synthdiv.publish.marking`), sidecars are scrubbed
(:mod:`synthdiv.publish.privacy`). Either way each image's sha256, and its byte offset and size inside the published
tar, are returned for the metadata. Tar headers are normalised as the run's shard writer does (mtime 0, uid 0, 0644).
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthdiv.errors import InputError
from synthdiv.publish.marking import NotAJpeg, mark_jpeg
from synthdiv.publish.privacy import Scrubber

logger = logging.getLogger(__name__)

__all__ = ["Member", "publish_shard", "IMAGE_EXTS", "SIDECAR_KEEP"]

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
_JPEG = ("jpg", "jpeg")
# what the metadata takes from each image's JSON sidecar (how the generator made it; absent in older shards)
SIDECAR_KEEP = ("revision", "guidance", "guidance_interval", "steps", "scheduler")


@dataclass
class Member:
    """Where one image lies in its published tar, its digest, whether it was marked, and its sidecar's settings."""

    name: str
    sha256: str
    offset: int
    size: int
    marked: bool
    settings: dict[str, Any]


class _Hashing(io.RawIOBase):
    """A file object that hashes what passes through it (reading or writing), so each tar is read once."""

    def __init__(self, fh: Any, digest: Any = None) -> None:
        self._fh = fh
        self.digest = digest if digest is not None else hashlib.sha256()
        self._position = 0

    def tell(self) -> int:
        return self._position

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._fh.readinto(buffer)
        self.digest.update(memoryview(buffer)[:n])
        self._position += n
        return n

    def write(self, data: Any) -> int:
        self.digest.update(data)
        self._position += len(data)
        return self._fh.write(data)


def _members(path: Path, digest: Any = None) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    """The file members of the tar at ``path`` with their bytes, read in one pass (``digest`` hashes the file)."""
    try:
        with open(path, "rb") as raw:
            fh = _Hashing(raw, digest)
            with tarfile.open(fileobj=io.BufferedReader(fh), mode="r|") as tf:
                for info in tf:
                    if not info.isfile():
                        continue
                    handle = tf.extractfile(info)
                    yield info, handle.read() if handle is not None else b""
            while fh.read(1 << 20):  # the end-of-archive blocks, so the digest is the whole file's
                pass
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise InputError(f"{path}: not a readable shard ({str(exc).splitlines()[0][:120]}); run `synthdiv verify`"
                         ) from None


def _split(name: str) -> tuple[str, str]:
    key, _, ext = name.partition(".")
    return key, ext.lower()


def _settings(blob: bytes) -> dict[str, Any]:
    try:
        meta = json.loads(blob)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return {k: meta[k] for k in SIDECAR_KEEP if isinstance(meta, dict) and k in meta} if isinstance(meta, dict) else {}


def _link(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copyfile(src, dest)  # another file system (or no hard links there): a copy, the run's shard untouched


def _scan(src: Path, scrubber: Scrubber) -> tuple[dict[str, Member], bool, str]:
    """The members of ``src`` as they are, whether every sidecar is already free of machine paths, and the sha256 of
    the whole tar."""
    found: dict[str, Member] = {}
    settings: dict[str, dict[str, Any]] = {}
    clean = True
    digest = hashlib.sha256()
    for info, data in _members(src, digest):
        key, ext = _split(info.name)
        if ext in IMAGE_EXTS:
            found[key] = Member(info.name, hashlib.sha256(data).hexdigest(), info.offset_data, len(data), False, {})
        elif ext == "json":
            settings[key] = _settings(data)
            text = data.decode("utf-8", "replace")
            clean = clean and scrubber.text(text) == text
    for key, member in found.items():
        member.settings = settings.get(key, {})
    return found, clean, digest.hexdigest()


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> int:
    """Append ``name`` with normalised headers; returns the byte offset of its data in the tar."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = len(payload), 0, 0o644, 0, 0
    tar.addfile(info, io.BytesIO(payload))
    return tar.offset - -(-len(payload) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def _rewrite(src: Path, dest: Path, keep: Callable[[str], bool], mark: Callable[[str], str] | None,
             scrubber: Scrubber) -> tuple[dict[str, Member], str]:
    found: dict[str, Member] = {}
    settings: dict[str, dict[str, Any]] = {}
    with open(dest, "wb") as fh:
        out = _Hashing(fh)
        with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for info, data in _members(src):
                key, ext = _split(info.name)
                if not keep(key):
                    continue
                marked = False
                if ext in _JPEG and mark is not None:
                    try:
                        data, marked = mark_jpeg(data, mark(key)), True
                    except NotAJpeg as exc:
                        raise InputError(f"{src}: {info.name} is not a JPEG ({exc}); run `synthdiv verify`") from None
                elif ext == "json":
                    settings[key] = _settings(data)
                    data = scrubber.text(data.decode("utf-8", "replace")).encode("utf-8")
                offset = _add(tar, info.name, data)
                if ext in IMAGE_EXTS:
                    found[key] = Member(info.name, hashlib.sha256(data).hexdigest(), offset, len(data), marked, {})
        fh.flush()
        os.fsync(fh.fileno())
    for key, member in found.items():
        member.settings = settings.get(key, {})
    return found, out.digest.hexdigest()


def publish_shard(src: Path, dest: Path, keep: Callable[[str], bool] | None, mark: Callable[[str], str] | None,
                  scrubber: Scrubber) -> tuple[dict[str, Member], bool, str]:
    """Put the run shard ``src`` at ``dest``; returns its images by key, whether ``dest`` is a link (or copy) of
    ``src``, and the sha256 of ``dest``.

    Args:
        keep: Which image keys the published shard holds (None: every one).
        mark: The generator id to write into each JPEG's XMP, by key (None: the bytes stay as they are).
        scrubber: Takes machine paths out of the JSON sidecars.
    """
    if keep is None and mark is None:
        found, clean, digest = _scan(src, scrubber)
        if clean:
            _link(src, dest)
            return found, True, digest
    found, digest = _rewrite(src, dest, keep or (lambda _key: True), mark, scrubber)
    return found, False, digest
