"""The run directory: where every artifact of a run lives, and each stage's recorded state.

Stage state lives in ``.synthdiv/stages/<stage>.json`` inside the run directory; a state file that does not read is
a ``damaged`` state. The run's folders are real folders: a link among them is refused before anything is written
(:meth:`RunDir.refuse_links`), so no write or delete leaves the run directory. Writes are atomic
(:mod:`synthdiv.utils.io`); fingerprints are content digests (:mod:`synthdiv.utils.hashing`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthdiv.errors import InputError
from synthdiv.utils.io import atomic_write_json

__all__ = ["RunDir", "StageState", "shard_name"]


def shard_name(shard: int) -> str:
    """The name of shard number ``shard`` without its extension (``shard-000012``): its tar and its manifest part."""
    return f"shard-{int(shard):06d}"


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
    def classifier_scores(self) -> Path:
        """The real-data classifier's view of every image (score stage, ``score.classifier``)."""
        return self.root / "classifier_scores.parquet"

    @property
    def learner_scores(self) -> Path:
        """The pooled adaptive rounds' images as the learner saw them, and which are kept (score stage)."""
        return self.root / "learner_scores.parquet"

    def round_model(self, round_number: int) -> Path:
        """The copy of the variant's export that adaptive round ``round_number`` was planned from (``synthdiv adapt``;
        the score stage selects that round's pool with it)."""
        return self.root / "adapt" / f"round-{round_number:03d}" / "model"

    @property
    def quality(self) -> Path:
        """Image-level diversity and fidelity per class and prompt kind (score stage)."""
        return self.root / "quality.json"

    @property
    def embeddings(self) -> Path:
        """Stored CLIP embeddings of the synthetic and real images (score stage)."""
        return self.root / "embeddings"

    def shard_tar(self, shard: int) -> Path:
        """The WebDataset tar of shard number ``shard`` (generate stage)."""
        return self.shards / f"{shard_name(shard)}.tar"

    def manifest_part(self, shard: int) -> Path:
        """The manifest rows of shard number ``shard`` (generate stage; the part is written after its tar)."""
        return self.manifest / f"{shard_name(shard)}.parquet"

    def aside(self, stage: str) -> Path:
        """Where ``--redo`` sets the outputs of ``stage`` aside until the stage finishes again."""
        return self.root / ".synthdiv" / "redo" / stage

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
