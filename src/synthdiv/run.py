"""The run directory: artifact paths, atomic writes, content fingerprints and per-stage state.

Every artifact is written under a temporary name in its final folder, fsynced, then renamed into place, so a
reader sees either the old file, the new file, or none: never half of one. Stage state lives in
``.synthdiv/stages/<stage>.json`` inside the run directory.
"""

from __future__ import annotations

import contextlib
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
    "file_digest",
    "canonical_hash",
    "fsync_path",
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
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
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


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Read a JSON-lines artifact written by :func:`atomic_write_jsonl`."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


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
    """sha256 of a file's bytes; for a folder, of its entries' names, sizes and mtimes (one level deep).

    One level keeps the fingerprint of an ImageFolder with a million images cheap: adding or removing an image
    changes its class folder's mtime, which is in the listing.
    """
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if TMP_MARK not in child.name:
                st = child.stat()
                h.update(f"{child.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _FILE_DIGESTS:  # `run` fingerprints a stage twice (cascade, then run); a 7.7M-row plan costs ~0.5 s
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
        _FILE_DIGESTS[key] = h.hexdigest()
    return _FILE_DIGESTS[key]


# (path, inode, size, mtime, ctime) -> sha256: an atomic rewrite is a new inode, an in-place one changes mtime/ctime
_FILE_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


@dataclass
class StageState:
    """What the run directory remembers of one stage."""

    stage: str
    status: str  # "running" or "done"
    fingerprint: str
    started_at: float
    finished_at: float | None = None
    summary: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


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
        path = self.state_path(stage)
        if not path.exists():
            return None
        return StageState(**json.loads(path.read_text(encoding="utf-8")))

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
