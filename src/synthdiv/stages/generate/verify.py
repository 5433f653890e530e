"""The full check of a generate stage's shards (``synthdiv verify``): every tar is read, not just measured.

The cheap check that ``status`` and every stage start run compares each tar's size with the size its manifest part
recorded; it finds lost parts, lost tars and truncated tars. This one also finds damage that keeps the size (a
flipped bit, a copy that went wrong): for every shard it reads the tar's headers and checks, against the manifest
part, that each image and its metadata are there once, that each image lies at the byte range the part recorded
(training reads it from there), that it decodes, and that the metadata names the same image. With ``repair`` the
manifest part of each damaged shard is removed (the tar alone is never read), so ``synthdiv generate`` redoes it.

A planned shard with neither tar nor manifest part is *not made yet* when the generate stage has not finished it (a
note, not damage: ``generate`` makes it): the stage never finished, or the shard was planned after it did (an
adaptive round). A shard the finished stage made that is gone is lost, and that is damage.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from synthdiv.core.rundir import shard_name
from synthdiv.stages.generate.reader import known_shards
from synthdiv.stages.generate.shards import shard_state

if TYPE_CHECKING:
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["VerifyResult", "verify_shards", "check_shard"]


@dataclass
class VerifyResult:
    """What :func:`verify_shards` found: shards checked, images found intact, one problem line per damaged shard."""

    shards: int = 0
    images: int = 0
    damaged: dict[int, str] = field(default_factory=dict)
    repaired: list[int] = field(default_factory=list)
    not_made: list[int] = field(default_factory=list)  # planned, not made yet: generate has not finished

    @property
    def ok(self) -> bool:
        return not self.damaged

    def lines(self) -> list[str]:
        """One line per damaged shard, then a note on the shards not made yet."""
        lines = [f"{shard_name(s)}: {problem}" for s, problem in sorted(self.damaged.items())]
        if self.not_made:
            n = len(self.not_made)
            lines.append(f"{n} planned shard{'s are' if n > 1 else ' is'} not made yet (first: "
                         f"{shard_name(self.not_made[0])}); generate has not finished: run `synthdiv generate` to "
                         "make the rest")
        return lines


def check_shard(run: RunDir, shard: int) -> tuple[int, str | None]:
    """(images checked, the first problem found or None) of one shard."""
    state = shard_state(run, shard, "size")
    if state != "complete":
        return 0, state
    try:
        part = pq.read_table(run.manifest_part(shard), columns=["image_id", "ext", "offset", "size"])
    except (OSError, pa.ArrowException, KeyError) as exc:
        return 0, f"unreadable manifest part ({str(exc).splitlines()[0]})"
    ids, exts = part.column("image_id").to_pylist(), part.column("ext").to_pylist()
    offsets, sizes = part.column("offset").to_numpy(), part.column("size").to_numpy()
    try:
        with open(run.shard_tar(shard), "rb") as fh:
            members = _members(fh)
            if isinstance(members, str):
                return 0, members
            for i, (key, ext) in enumerate(zip(ids, exts, strict=True)):
                problem = _check_image(fh, members, key, ext, int(offsets[i]), int(sizes[i]))
                if problem:
                    return i, f"image {key}: {problem}"
    except OSError as exc:
        return 0, f"unreadable tar ({exc})"
    planned = set(ids)
    stray = sorted(n for n in members if n.split(".", 1)[0] not in planned)
    if stray:
        return len(ids), f"member {stray[0]!r} is not in the manifest"
    return len(ids), None


def _members(fh: io.BufferedReader) -> dict[str, tuple[int, int]] | str:
    """name -> (offset of its data, size), or a problem (a duplicate name, a tar that does not read)."""
    out: dict[str, tuple[int, int]] = {}
    try:
        with tarfile.open(fileobj=fh, mode="r:") as tf:
            for m in tf:
                if m.name in out:
                    return f"member {m.name!r} is in the tar twice"
                out[m.name] = (m.offset_data, m.size)
    except (tarfile.TarError, EOFError) as exc:
        return f"unreadable tar ({exc})"
    return out


def _check_image(fh: io.BufferedReader, members: dict[str, tuple[int, int]], key: str, ext: str, offset: int,
                 size: int) -> str | None:
    from PIL import Image

    name = f"{key}.{ext}"
    if name not in members:
        return f"{name} is not in the tar"
    if f"{key}.json" not in members:
        return f"{key}.json is not in the tar"
    if members[name] != (offset, size):
        return f"lies at bytes {members[name]}, the manifest says {(offset, size)}"
    fh.seek(offset)
    try:
        with Image.open(io.BytesIO(fh.read(size))) as img:
            img.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure means a damaged image
        return f"does not decode ({type(exc).__name__}: {str(exc)[:80]})"
    meta_offset, meta_size = members[f"{key}.json"]
    fh.seek(meta_offset)
    try:
        meta = json.loads(fh.read(meta_size))
    except ValueError:
        return f"{key}.json is not valid JSON"
    if not isinstance(meta, dict) or meta.get("image_id") != key:
        return f"{key}.json names another image"
    return None


def verify_shards(run: RunDir, repair: bool = False, workers: int = 4) -> VerifyResult:
    """Read every shard of the run and check it against its manifest part (see the module docstring).

    Args:
        repair: Remove the manifest part of each damaged shard, so that ``synthdiv generate`` redoes it (refused,
            in one line, when a folder of the run is a link).
        workers: Shards checked at once (image decoding releases the GIL).
    """
    if repair:
        run.refuse_links()  # repair deletes manifest parts: never through a link out of the run
    shards = known_shards(run).tolist()
    made = _made_by_finished_stage(run, shards)
    result = VerifyResult()
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="synthdiv-verify") as pool:
        for shard, (images, problem) in zip(shards, pool.map(lambda s: check_shard(run, s), shards), strict=True):
            result.images += images
            if problem == "missing" and shard not in made:
                result.not_made.append(shard)
                continue
            result.shards += 1
            if problem is not None:
                result.damaged[shard] = problem
    if repair:
        for shard, problem in sorted(result.damaged.items()):
            if problem != "missing" and run.manifest_part(shard).exists():
                run.manifest_part(shard).unlink()
                result.repaired.append(shard)
                logger.warning("%s: %s; its manifest part is removed, `synthdiv generate` will redo it",
                               shard_name(shard), problem)
    logger.info("verified %d shards, %d images: %d damaged%s", result.shards, result.images, len(result.damaged),
                f", {len(result.not_made)} not made yet" if result.not_made else "")
    return result


def _made_by_finished_stage(run: RunDir, shards: list[int]) -> set[int]:
    """The planned shards the generate stage made when it was last done: none when it never finished, else the
    first ``planned_shards`` of its summary (an adaptive round plans its shards after the plan's last)."""
    state = run.read_state("generate")
    if state is None or state.status != "done":
        return set()
    planned = (state.summary or {}).get("planned_shards")
    ordered = sorted(shards)
    return set(ordered[:planned] if isinstance(planned, int) and not isinstance(planned, bool) else ordered)

