"""The run directory: artifact paths, atomic writes, content fingerprints and per-stage state.

Every artifact is written under a temporary name in its final folder, fsynced, then renamed into place, so a
reader sees either the old file, the new file, or none: never half of one. Stage state lives in
``.synthdiv/stages/<stage>.json`` inside the run directory; a state file that does not read is a ``damaged`` state.

A folder's digest is its content (relative paths, file sizes and bytes), never a folder's size or an mtime, so a run
copied to another filesystem or machine keeps its fingerprints. The run's folders are real folders: a link among them
is refused before anything is written (:meth:`RunDir.refuse_links`), so no write or delete leaves the run directory.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "RunDir",
    "StageState",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_jsonl",
    "write_parquet_atomic",
    "read_parquet_artifact",
    "read_jsonl",
    "json_lines",
    "file_digest",
    "canonical_hash",
    "listing_digest",
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
    from synthdiv.errors import InputError

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


def read_parquet_artifact(path: Path | str, stage: str, columns: Iterable[str] | None = None) -> Any:
    """A Parquet artifact of the run as a pyarrow Table (only ``columns`` when given): what every owner's reader
    (``read_prompts``, ``read_plan``, ``read_scores``) calls, so a missing file or column reads the same everywhere.

    Raises:
        StageOrderError: The file does not exist: ``stage`` has not written it.
        InputError: A column asked for is not in the file (written by an older synthdiv), or it is not Parquet.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthdiv.errors import InputError, StageOrderError

    path = Path(path)
    if not path.exists():
        raise StageOrderError(f"{path}: not found; run `synthdiv {stage}` first")
    wanted = list(columns) if columns is not None else None
    try:
        if wanted is not None:
            missing = [c for c in wanted if c not in pq.read_schema(path).names]
            if missing:
                raise InputError(f"{path}: no column {missing[0]!r} (written by an older synthdiv?); "
                                 f"run `synthdiv {stage} --redo`")
        return pq.read_table(path, columns=wanted)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None


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
    on (see :func:`synthdiv.stage_state.fingerprint_matches`)."""
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


@dataclass
class StageState:
    """What the run directory remembers of one stage.

    ``status`` is ``running`` or ``done`` as recorded, or ``damaged`` for a state file that does not read as one
    (empty, truncated, not JSON, a field missing or of the wrong type): ``problem`` then says what is wrong, and
    :meth:`RunDir.damaged_text` says what to do. A damaged state is never done, and the engine refuses to run its
    stage over it without ``--redo`` (it cannot tell which config made the outputs).
    """

    stage: str
    status: str  # "running", "done" or "damaged"
    fingerprint: str
    started_at: float
    finished_at: float | None = None
    summary: dict[str, Any] | None = None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "problem"}


_STATUSES = ("running", "done")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_state(raw: bytes, stage: str) -> StageState | str:
    """The state in ``raw``, or what is wrong with it (one line)."""
    if not raw.strip():
        return "the file is empty"
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if not isinstance(data, dict):
        return f"not a JSON object but {type(data).__name__}"
    checks = (("stage", lambda v: v == stage, f"the stage name {stage!r}"),
              ("status", lambda v: v in _STATUSES, " or ".join(_STATUSES)),
              ("fingerprint", lambda v: isinstance(v, str), "a string"),
              ("started_at", _number, "a number"),
              ("finished_at", lambda v: v is None or _number(v), "a number or null"),
              ("summary", lambda v: v is None or isinstance(v, dict), "an object or null"))
    for key, ok, expected in checks:
        if key not in data and key in ("stage", "status", "fingerprint", "started_at"):
            return f"no {key!r}"
        if key in data and not ok(data[key]):
            return f"{key!r} is {json.dumps(data[key])[:40]}, expected {expected}"
    return StageState(**{k: data.get(k) for k in ("stage", "status", "fingerprint", "started_at", "finished_at",
                                                  "summary")})


# The attributes of the run's artifacts, files and folders (``.synthdiv`` is checked with them).
ARTIFACTS = ("classes", "resolved", "prompts", "styles", "plan", "shards", "manifest", "scores", "train", "export",
             "eval", "report", "cache", "config")
_LINK_DEPTH = 2  # folders inside an artifact folder that are checked too: train/<variant>/checkpoints


class RunDir:
    """Paths of every artifact of a run (names from DESIGN.md) and the stage state store."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # artifacts, by stage
    @property
    def classes(self) -> Path:
        return self.root / "classes.jsonl"

    @property
    def resolved(self) -> Path:
        return self.root / "classes.resolved.jsonl"

    @property
    def prompts(self) -> Path:
        return self.root / "prompts.parquet"

    @property
    def styles(self) -> Path:
        return self.root / "styles.json"

    @property
    def plan(self) -> Path:
        return self.root / "plan.parquet"

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.parquet"

    @property
    def scores(self) -> Path:
        return self.root / "scores.parquet"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def cache(self) -> Path:
        """Caches that make a rerun free (LLM responses, embeddings); kept with the run for reproducibility."""
        return self.root / "cache"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def state_dir(self) -> Path:
        return self.root / ".synthdiv" / "stages"

    def state_path(self, stage: str) -> Path:
        return self.state_dir / f"{stage}.json"

    def read_state(self, stage: str) -> StageState | None:
        """The recorded state of ``stage`` (None when it has none); a state file that does not read as one is a
        ``damaged`` state (see :class:`StageState`), never an exception."""
        path = self.state_path(stage)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            parsed: StageState | str = f"unreadable ({exc.strerror or exc})"
        else:
            parsed = _parse_state(raw, stage)
        if isinstance(parsed, StageState):
            return parsed
        return StageState(stage=stage, status="damaged", fingerprint="", started_at=0.0, problem=parsed)

    def damaged_text(self, state: StageState) -> str:
        """What a damaged state is and what to do, on one line (for the engine's refusal and ``status``)."""
        name = state.stage
        return (f"{self.state_path(name)}: damaged stage state ({state.problem}); run `synthdiv {name} --redo` to "
                f"make the stage again (what it made is kept aside until then), or delete the file to let "
                f"`synthdiv {name}` resume over what it made")

    def write_state(self, state: StageState) -> None:
        atomic_write_json(self.state_path(state.stage), state.to_json())

    def clear_state(self, stage: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state_path(stage).unlink()

    def begin(self, stage: str, fingerprint: str) -> StageState:
        state = StageState(stage=stage, status="running", fingerprint=fingerprint, started_at=time.time())
        self.write_state(state)
        return state

    def finish(self, state: StageState, summary: dict[str, Any] | None) -> StageState:
        state.status = "done"
        state.finished_at = time.time()
        state.summary = summary or {}
        self.write_state(state)
        return state

    def refuse_links(self) -> None:
        """Refuse a run whose folders are links: synthdiv writes and deletes only inside the run directory.

        A folder of the run (every artifact folder, ``.synthdiv``, and the folders in them down to
        ``train/<variant>/checkpoints``) that is a symbolic link, or a link to nothing, would make a stage write
        into, and a redo or a resume delete from, a folder outside the run. The run directory itself may be a link
        (the user names it); a linked *file* is replaced by a write, never written through, so it is let be.

        Raises:
            InputError: Naming the first link, where it points, and what to do.
        """
        for name in (*ARTIFACTS, "synthdiv"):
            path = self.root / ".synthdiv" if name == "synthdiv" else getattr(self, name)
            link = path if _is_folder_link(path) else _folder_link_in(path, _LINK_DEPTH)
            if link is not None:
                from synthdiv.errors import InputError

                raise InputError(
                    f"run_dir {self.root}: {link.relative_to(self.root).as_posix()} is a symbolic link (to "
                    f"{os.readlink(link)}); synthdiv writes and deletes only inside the run directory, never through "
                    "a link: make it a real folder (to keep a run on another disk, put the whole run there: run_dir)"
                )


def _is_folder_link(path: Path) -> bool:
    """A link to a folder, or to nothing (a write would create what it names, wherever that is)."""
    return path.is_symlink() and (path.is_dir() or not path.exists())


def _folder_link_in(folder: Path, depth: int) -> Path | None:
    """The first folder link inside ``folder``, ``depth`` levels down (no link is followed)."""
    if depth <= 0 or folder.is_symlink() or not folder.is_dir():
        return None
    with os.scandir(folder) as entries:
        found = sorted((Path(e.path), e.is_symlink(), e.is_dir(follow_symlinks=False)) for e in entries)
    for path, link, _ in found:
        if link and _is_folder_link(path):
            return path
    for path, _, real_dir in found:
        if real_dir and (inner := _folder_link_in(path, depth - 1)) is not None:
            return inner
    return None


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

    from synthdiv.errors import DiskFullError

    path = exc.filename or folder
    where = Path(folder)
    try:
        while not where.exists() and where != where.parent:
            where = where.parent
        free = f"{shutil.disk_usage(where).free / 2**20:,.1f} MiB free"
    except OSError:
        free = "free space unknown"
    return DiskFullError(f"{path}: {exc.strerror or os.strerror(errno.ENOSPC)} ({free} in {folder}); {then}")
