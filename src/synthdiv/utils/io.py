"""Atomic writes and the run's plain file formats (JSON, JSON lines, Parquet), and one line for a full disk.

Every artifact is written under a temporary name in its final folder, fsynced, then renamed into place, so a
reader sees either the old file, the new file, or none: never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import struct
import tokenize
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from synthdiv.errors import DiskFullError, InputError

__all__ = [
    "TMP_MARK",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_jsonl",
    "write_parquet_atomic",
    "read_jsonl",
    "json_lines",
    "fsync_path",
    "DISK_FULL_ERRNOS",
    "disk_full_cause",
    "disk_full_error",
]

TMP_MARK = ".tmp-"


@contextlib.contextmanager
def atomic_write(path: Path | str, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on a clean exit fsync and rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    try:
        with open(tmp, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # write() and fsync() name no file: a full disk's error names the artifact
        raise


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder's fsync makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(text)


def atomic_write_json(path: Path | str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: Path | str, rows: Iterable[dict[str, Any]]) -> int:
    """Write one JSON object per line; returns the number of rows."""
    n = 0
    with atomic_write(path, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n")
            n += 1
    return n


def json_lines(path: Path | str) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of every non-blank line of a JSON-lines file.

    Raises:
        InputError: A line is not JSON, or not UTF-8 (named with the file and line).
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield lineno, json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not UTF-8 text (byte {exc.start})") from None
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not a JSON object ({exc.msg})") from None


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Read a JSON-lines artifact written by :func:`atomic_write_jsonl` (a damaged line: see :func:`json_lines`)."""
    return [row for _, row in json_lines(path)]


def write_parquet_atomic(table: Any, path: Path | str, **kwargs: Any) -> None:
    """Write a pyarrow Table to ``path`` atomically (zstd compression unless told otherwise)."""
    import pyarrow.parquet as pq

    kwargs.setdefault("compression", "zstd")
    with atomic_write(path, "wb") as fh:
        pq.write_table(table, fh, **kwargs)


# -- a full disk: one line for every write ---------------------------------------------------------------------------

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def disk_full_cause(exc: BaseException) -> OSError | None:
    """The ENOSPC / EDQUOT error behind ``exc`` (itself, or what it was raised from or while handling), or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None


def disk_full_error(exc: OSError, folder: Path | str, then: str) -> Any:
    """The one-line :class:`~synthdiv.errors.DiskFullError` for a write that found the disk full: the file, the space
    left where it was written, and ``then`` (what is kept and how to go on)."""
    import shutil


    path = exc.filename or folder
    where = Path(folder)
    try:
        while not where.exists() and where != where.parent:
            where = where.parent
        free = f"{shutil.disk_usage(where).free / 2**20:,.1f} MiB free"
    except OSError:
        free = "free space unknown"
    return DiskFullError(f"{path}: {exc.strerror or os.strerror(errno.ENOSPC)} ({free} in {folder}); {then}")


# what np.load raises on a file that is absent, not an .npy / .npz, or cut short or damaged (inside its zip, or in
# the array header numpy parses as a Python literal)
NPY_DAMAGE = (OSError, KeyError, ValueError, TypeError, EOFError, NotImplementedError, SyntaxError, MemoryError,
              tokenize.TokenError, zipfile.BadZipFile, zlib.error, struct.error)
