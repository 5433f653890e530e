"""Content digests: of a JSON value, of a file, of a folder's content or listing.

A folder's digest is its content (relative paths, file sizes and bytes), never a folder's size or an mtime, so a run
copied to another filesystem or machine keeps its fingerprints.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthdiv.utils.io import TMP_MARK

__all__ = ["canonical_hash", "file_digest", "listing_digest", "legacy_folder_digest"]



def canonical_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys, no whitespace)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def file_digest(path: Path | str, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes; for a folder, of its content: every entry's path relative to the folder, and each
    file's size and content digest (:func:`_content_digest`).

    Never a folder's own size or any mtime: a run copied to another filesystem or machine (``cp -a``, ``rsync -a``,
    a tar round trip, a copy that keeps no times) has the digests it had, so its finished stages stay done. Links
    are not followed: a link enters as its target's name. ``*.tmp-*`` files of a writer at work are left out.
    """
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for rel, kind, child in _tree(path):
            if kind == "file":
                h.update(f"F\0{rel}\0{child.stat().st_size}\0{_content_digest(child, chunk)}\n".encode())
            elif kind == "link":
                h.update(f"L\0{rel}\0{os.readlink(child)}\n".encode())
            else:
                h.update(f"D\0{rel}\n".encode())
        return h.hexdigest()
    return _memo(path, lambda: _sha256(path, chunk))


def listing_digest(path: Path | str) -> str:
    """For a folder outside the run (a user's ImageFolder): sha256 of the relative paths of everything in it, read
    from the folder listings alone (no stat and no read per image, so an ImageNet-sized folder stays cheap); a
    file's digest is :func:`file_digest`. Adding, removing or renaming an image changes it, an image rewritten in
    place under its name does not; no folder size or mtime enters, so a copy of the folder has the same digest."""
    path = Path(path)
    if not path.is_dir():
        return file_digest(path)
    h = hashlib.sha256()
    for rel, kind, child in _tree(path):
        h.update(f"{kind[0].upper()}\0{rel}\0{os.readlink(child) if kind == 'link' else ''}\n".encode())
    return h.hexdigest()


def legacy_folder_digest(path: Path | str) -> str:
    """The folder digest synthdiv used before folder digests were content digests: names, sizes and mtimes one
    level deep. Only to recognise the fingerprints that runs made then recorded, on the filesystem they were made
    on (see :func:`synthdiv.core.status.fingerprint_matches`)."""
    path = Path(path)
    if not path.is_dir():
        return file_digest(path)
    h = hashlib.sha256()
    for child in sorted(path.iterdir()):
        if TMP_MARK not in child.name:
            st = child.stat()
            h.update(f"{child.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _tree(root: Path) -> Iterator[tuple[str, str, Path]]:
    """(relative path, ``file`` | ``dir`` | ``link``, path) of everything under ``root``, sorted, links not
    followed, ``*.tmp-*`` files left out."""
    stack = [root]
    found: list[tuple[str, str, Path]] = []
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                child = Path(entry.path)
                rel = child.relative_to(root).as_posix()
                if entry.is_symlink():
                    found.append((rel, "link", child))
                elif entry.is_dir():
                    found.append((rel, "dir", child))
                    stack.append(child)
                elif TMP_MARK not in entry.name:
                    found.append((rel, "file", child))
    return iter(sorted(found))


# files larger than this are digested by their size and three windows (start, middle, end), not read whole: a
# checkpoint of several GB in ``train/`` would otherwise be read at every ``status``. The artifacts this large are
# written whole (a checkpoint, exported weights), so a new one differs in every window.
_WHOLE_FILE_LIMIT = 64 << 20
_WINDOW = 1 << 20


def _content_digest(path: Path, chunk: int = 1 << 20) -> str:
    size = path.stat().st_size
    if size <= _WHOLE_FILE_LIMIT:
        return _memo(path, lambda: _sha256(path, chunk))

    def sampled() -> str:
        h = hashlib.sha256(f"sampled:{size}\n".encode())
        with open(path, "rb") as fh:
            for start in (0, (size - _WINDOW) // 2, size - _WINDOW):
                fh.seek(start)
                h.update(fh.read(_WINDOW))
        return h.hexdigest()

    return _memo(path, sampled, kind="sampled")


def _sha256(path: Path, chunk: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _memo(path: Path, compute: Any, kind: str = "whole") -> str:
    """``compute()`` once per version of the file in this process (``run`` fingerprints a stage twice: cascade,
    then run; a 7.7M-row plan costs ~0.5 s)."""
    st = path.stat()
    key = (kind, str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = compute()
    return _FILE_DIGESTS[key]


# (kind, path, inode, size, mtime, ctime) -> sha256: an atomic rewrite is a new inode, an in-place one changes
# mtime/ctime
_FILE_DIGESTS: dict[tuple[str, str, int, int, int, int], str] = {}
