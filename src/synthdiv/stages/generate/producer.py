"""Turning planned shards into written shards: the model on the calling thread, encoding and tar writing on workers.

:class:`PlannedWork` holds the plan's shard sizes and the rows and prompt texts of this worker's shards only (a
rank's memory does not grow with the plan); :class:`ShardProducer` generates a shard batch by batch, hands each
finished batch to ``writer_threads`` encoder threads (PIL releases the GIL while it encodes) and to one tar thread
that appends in plan order and commits the shard. The next batch is already on the model while the previous one is
encoded and written. Every runner (local, torchrun, ray) uses these two classes, so
they form the same batches and write the same bytes.
"""

from __future__ import annotations

import io
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthdiv.core.rundir import shard_name
from synthdiv.core.schemas import PLAN_GENERATOR_FIELD, PLAN_SCHEMA, PLAN_SOURCE_SCHEMA, PROMPTS_SCHEMA
from synthdiv.errors import ConfigError, InputError
from synthdiv.stages.generate.degenerate import Generated, generate_with_retries
from synthdiv.stages.generate.img2img import SourceImages
from synthdiv.stages.generate.sampling import draw_guidance, resolve_sampling
from synthdiv.stages.generate.shards import MANIFEST_COLUMNS, ShardWriter
from synthdiv.stages.plan.reader import BATCH_ROWS, cast_to, open_checked, shard_counts, shard_range

if TYPE_CHECKING:
    from PIL import Image

    from synthdiv.config.generate import GenerateConfig
    from synthdiv.core.rundir import RunDir
    from synthdiv.models.generators.base import Generator

logger = logging.getLogger(__name__)


__all__ = ["PlannedWork", "ShardProducer", "encode_image"]


@dataclass
class ShardRows:
    """The planned images of one shard, in plan order."""

    shard: int
    image_id: list[str]
    cls: list[int]
    prompt_id: list[str]
    seed: list[int]
    source: list[str | None] | None = None  # image-to-image source per row (None: a text-to-image plan)
    strength: list[float | None] | None = None
    generator: str | None = None  # the shard's generator in a mixed plan (None: the config's one generator)


@dataclass
class _Made:
    retries: int
    degenerate: bool
    size: tuple[int, int]
    guidance: float | None = None  # the image's own guidance scale (generate.sampling), else None
    negative: str = ""


class PlannedWork:
    """The plan's shard sizes, and the rows and prompt texts of the shards this worker makes.

    Only the ``shard`` column of the whole plan is scanned (a few MB per million rows, one row group at a time, or
    nothing where a row group's statistics name one shard). Rows and prompts are read for the shards passed to
    :meth:`load` (or on first use by :meth:`rows`), skipping row groups whose ``shard`` statistics exclude them,
    so a rank's memory grows with its own shards, not with the plan.
    """

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._file = open_checked(run.plan, PLAN_SCHEMA, "plan")
        self.shards, self._counts = shard_counts(self._file)
        # image-to-image plans carry PLAN_SOURCE_SCHEMA's columns after PLAN_SCHEMA
        self._source_cols = [c for c in PLAN_SOURCE_SCHEMA.names if c in self._file.schema_arrow.names]
        names = self._file.schema_arrow.names
        self._gen_cols = [PLAN_GENERATOR_FIELD.name] if PLAN_GENERATOR_FIELD.name in names else []
        self._where: dict[int, tuple[pa.Table, int, int]] = {}  # shard -> (loaded table, first row, end row)
        self._prompts: dict[str, tuple[str, str, str]] = {}

    @property
    def total_images(self) -> int:
        return int(self._counts.sum())

    def shard_size(self, shard: int) -> int:
        i = int(np.searchsorted(self.shards, shard))
        if i == len(self.shards) or self.shards[i] != shard:
            raise KeyError(shard)
        return int(self._counts[i])

    def load(self, shards: Sequence[int]) -> None:
        """Read the rows of ``shards`` (in plan order) and the prompts they name; raises if a prompt is missing."""
        wanted = np.unique(np.asarray([s for s in shards if s not in self._where], np.int64))
        wanted = wanted[np.isin(wanted, self.shards)]
        if not len(wanted):
            return
        parts = []
        for rg in range(self._file.num_row_groups):
            lo, hi = shard_range(self._file, rg)
            if lo is not None:
                i = int(np.searchsorted(wanted, lo))
                if i == len(wanted) or wanted[i] > hi:
                    continue
            # batch by batch: a matching row group (up to 1M rows) is never decoded whole
            for batch in self._file.iter_batches(BATCH_ROWS, row_groups=[rg],
                                                 columns=PLAN_SCHEMA.names + self._source_cols + self._gen_cols):
                mask = np.isin(batch.column("shard").to_numpy(), wanted)
                if mask.any():
                    parts.append(pa.Table.from_batches([batch.filter(pa.array(mask))]))
        table = cast_to(pa.concat_tables(parts), PLAN_SCHEMA)
        shard_col = table.column("shard").to_numpy()
        order = np.argsort(shard_col, kind="stable")
        table = table.take(order).combine_chunks()  # grouped by shard, plan order within a shard
        found, starts = np.unique(shard_col[order], return_index=True)
        ends = [*starts[1:].tolist(), len(order)]
        self._load_prompts(table)
        for shard, lo, hi in zip(found.tolist(), starts.tolist(), ends, strict=True):
            self._where[shard] = (table, lo, hi)

    def _load_prompts(self, plan: pa.Table) -> None:
        needed = pc.unique(plan.column("prompt_id"))
        needed = needed.filter(pc.invert(pc.is_in(needed, pa.array(list(self._prompts), pa.string()))))
        self._prompts.update(_prompt_lookup(self.run, needed))
        missing = set(needed.to_pylist()) - self._prompts.keys()
        if missing:
            raise InputError(f"{self.run.plan}: prompt_id {sorted(missing)[0]!r} is not in {self.run.prompts.name}")

    def rows(self, shard: int) -> ShardRows:
        if shard not in self._where:
            self.load([shard])
        table, lo, hi = self._where[shard]
        t = table.slice(lo, hi - lo)
        source = {c: t.column(c).to_pylist() for c in self._source_cols} if self._source_cols else {}
        generator = None
        if self._gen_cols and t.num_rows:
            named = pc.unique(t.column(PLAN_GENERATOR_FIELD.name)).to_pylist()
            if len(named) != 1 or named[0] is None:
                raise InputError(f"{self.run.plan}: shard {shard} names generators {named}, expected one; run "
                                 "`synthdiv plan --redo`")
            generator = named[0]
        return ShardRows(
            shard, t.column("image_id").to_pylist(), t.column("class").to_pylist(),
            t.column("prompt_id").to_pylist(), t.column("seed").to_pylist(), **source, generator=generator,
        )

    def prompt(self, prompt_id: str) -> tuple[str, str, str]:
        """(text, negative, class_name) of a prompt."""
        return self._prompts[prompt_id]


def _prompt_lookup(run: RunDir, wanted: pa.Array) -> dict[str, tuple[str, str, str]]:
    """(text, negative, class_name) of the prompts in ``wanted``, read one row group at a time."""
    if not run.prompts.exists():
        raise InputError(f"{run.prompts}: not found; the generate stage needs the prompts of the plan")
    cols = ["prompt_id", "text", "negative", "class_name"]
    pf = open_checked(run.prompts, PROMPTS_SCHEMA, "prompts", cols)
    out: dict[str, tuple[str, str, str]] = {}
    if not len(wanted):
        return out
    for rg in range(pf.num_row_groups):
        t = pf.read_row_group(rg, columns=cols)
        t = t.filter(pc.is_in(t.column("prompt_id"), wanted))
        ids, texts, negs, names = (t.column(c).to_pylist() for c in cols)
        out.update({i: (x, n or "", c or "") for i, x, n, c in zip(ids, texts, negs, names, strict=True)})
    return out


def encode_image(image: Image.Image, fmt: str, quality: int, max_side: int | None) -> bytes:
    """JPEG or WebP bytes of ``image``, downscaled so its longer side is at most ``max_side``."""
    from PIL import Image

    if max_side is not None and max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    if fmt == "jpg":
        image.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=False)
    else:
        image.save(buf, format="WEBP", quality=quality, method=4)
    return buf.getvalue()


class ShardProducer:
    """Generates shards with one generator and writes them on worker threads.

    Args:
        work: The plan and prompts.
        generator: A :class:`~synthdiv.models.generators.base.Generator`.
        gcfg: The ``generate`` section (batch size, format, quality, retries, threads, sampling).
        on_images: Called with the number of images after each batch leaves the model (progress bars).
        record_negative: Put each image's negative prompt in the manifest (``prompts.negative_confusable``: the
            negative prompt then differs by class); the sidecar always has it.
    """

    def __init__(
        self, work: PlannedWork, generator: Generator, gcfg: GenerateConfig,
        on_images: Callable[[int], None] | None = None, record_negative: bool = False,
    ) -> None:
        self.work, self.generator, self.gcfg = work, generator, gcfg
        self.on_images = on_images or (lambda n: None)
        self.record_negative = record_negative
        self.settings = generator.settings()
        self.sampling = resolve_sampling(gcfg.sampling, str(self.settings.get("model") or ""))
        if self.sampling is not None and not getattr(generator, "supports_sampling", False):
            raise ConfigError(f"generate.sampling: generator {self.settings['generator_id']} cannot vary guidance per "
                              "image or over an interval; remove generate.sampling")
        self._sources = SourceImages(work.run)
        self._encode = ThreadPoolExecutor(gcfg.writer_threads, thread_name_prefix="synthdiv-encode")
        self._tar = ThreadPoolExecutor(1, thread_name_prefix="synthdiv-tar")
        self._inflight: deque[Future] = deque()
        self._commits: list[tuple[int, Future]] = []
        self._done: list[tuple[int, int]] = []

    def __enter__(self) -> ShardProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def produce(self, shard: int) -> None:
        """Generate every image of ``shard`` and queue its writing; the commit finishes in the background."""
        rows = self.work.rows(shard)
        writer = ShardWriter(self.work.run, shard)
        self._queue(self._tar.submit(writer.open))  # not awaited: the model starts while the last shard commits
        done: list[_Made] = []  # what the manifest needs; the images themselves go to the writer threads only
        try:
            bs = self.gcfg.batch_size
            for lo in range(0, len(rows.image_id), bs):
                ids, seeds = rows.image_id[lo : lo + bs], rows.seed[lo : lo + bs]
                texts = [self.work.prompt(p) for p in rows.prompt_id[lo : lo + bs]]
                guidances = self._guidances(seeds)
                made = generate_with_retries(
                    self.generator, [t[0] for t in texts], seeds, [t[1] for t in texts], self.gcfg.max_retries,
                    **self._init_images(rows, lo, lo + bs), **self._sampling_args(guidances),
                )
                for j, (key, g) in enumerate(zip(ids, made, strict=True)):
                    meta = self._meta(rows, lo + j, texts[j], g, guidances[j] if guidances else None)
                    enc = self._encode.submit(
                        encode_image, g.image, self.gcfg.image_format, self.gcfg.quality, self.gcfg.max_side
                    )
                    self._queue(self._tar.submit(_add, writer, key, self.gcfg.image_format, enc, meta))
                done.extend(_Made(g.retries, g.degenerate is not None, g.image.size,
                                  guidances[j] if guidances else None, texts[j][1]) for j, g in enumerate(made))
                self.on_images(len(ids))
        except BaseException:
            self._tar.submit(writer.abort).result()
            raise
        table = self._manifest_rows(rows, done)
        self._commits.append((shard, self._tar.submit(_commit, writer, table)))
        while len(self._commits) > 1:  # the previous shard's commit has had a whole shard's time to finish
            shard_done, fut = self._commits.pop(0)
            self._done.append((shard_done, fut.result()))

    def _guidances(self, seeds: Sequence[int]) -> list[float] | None:
        """Each image's guidance scale, drawn from its planned seed (None: generate.sampling leaves it alone)."""
        if self.sampling is None:
            return None
        drawn = draw_guidance(self.sampling, np.asarray(seeds, dtype=np.int64))
        return [float(g) for g in drawn] if drawn is not None else None

    def _sampling_args(self, guidances: list[float] | None) -> dict[str, Any]:
        if self.sampling is None:
            return {}
        args: dict[str, Any] = {"guidances": guidances} if guidances is not None else {}
        if self.sampling.interval is not None:
            args["interval"] = tuple(self.sampling.interval)
        return args

    def _init_images(self, rows: ShardRows, lo: int, hi: int) -> dict[str, Any]:
        """The source images and strengths of rows ``lo:hi`` of an image-to-image plan, else nothing."""
        if rows.source is None or all(s is None for s in rows.source[lo:hi]):
            return {}
        if not getattr(self.generator, "supports_img2img", False):
            raise InputError(f"{self.work.run.plan}: has image-to-image rows, which generator "
                             f"{self.settings['generator_id']} cannot make; redo the plan with plan.img2img.share: 0")
        images = self._sources.open_rows(rows.cls[lo:hi], rows.source[lo:hi], rows.image_id[lo:hi])
        return {"init_images": images, "strengths": (rows.strength or [None] * len(rows.source))[lo:hi]}

    def _queue(self, fut: Future) -> None:
        self._inflight.append(fut)
        limit = 4 * self.gcfg.batch_size + 8  # bound the images held in memory
        while len(self._inflight) > limit or (self._inflight and self._inflight[0].done()):
            self._inflight.popleft().result()

    def _meta(self, rows: ShardRows, i: int, text: tuple[str, str, str], g: Generated,
              guidance: float | None) -> dict[str, Any]:
        s = self.settings
        width, height = self._stored(g.image.size)
        meta = {
            "image_id": rows.image_id[i], "class": rows.cls[i], "class_name": text[2], "prompt_id": rows.prompt_id[i],
            "prompt": text[0], "negative_prompt": text[1], "seed": rows.seed[i], "used_seed": g.used_seed,
            "retries": g.retries, "degenerate": g.degenerate is not None, "degenerate_reason": g.degenerate or "",
            "generator_id": s["generator_id"],
            "revision": s.get("revision"), "scheduler": s.get("scheduler"), "steps": s.get("steps"),
            "guidance": s.get("guidance"), "generated_size": list(g.image.size), "width": width, "height": height,
            "format": self.gcfg.image_format, "batch_size": self.gcfg.batch_size, "shard": rows.shard,
        } | self._source_meta(rows, i)
        if guidance is not None:
            meta["guidance"] = guidance
        if self.sampling is not None and self.sampling.interval is not None:
            meta["guidance_interval"] = list(self.sampling.interval)
        return meta

    @staticmethod
    def _source_meta(rows: ShardRows, i: int) -> dict[str, Any]:
        """An image-to-image plan's sidecar fields: one type in every sample ("" and 0.0 for text-to-image)."""
        if rows.source is None:
            return {}
        strength = rows.strength[i] if rows.strength is not None else None
        if rows.source[i] is None or strength is None:
            return {"source": "", "strength": 0.0}
        return {"source": rows.source[i], "strength": float(f"{strength:.6g}")}

    def _manifest_rows(self, rows: ShardRows, done: list[_Made]) -> pa.Table:
        n = len(done)
        stored = [self._stored(g.size) for g in done]
        width, height = [w for w, _ in stored], [h for _, h in stored]
        table = pa.table(
            {
                "image_id": rows.image_id, "class": rows.cls, "prompt_id": rows.prompt_id, "seed": rows.seed,
                "shard": [rows.shard] * n, "retries": [g.retries for g in done], "width": width, "height": height,
                "generator_id": [self.settings["generator_id"]] * n, "tar": [f"{shard_name(rows.shard)}.tar"] * n,
                "ext": [self.gcfg.image_format] * n, "degenerate": [g.degenerate for g in done],
            },
            schema=MANIFEST_COLUMNS,
        )
        if rows.source is not None:  # image-to-image provenance: the writer adds it after its own columns
            table = table.append_column("source", pa.array(rows.source, pa.string()))
            table = table.append_column("strength", pa.array(rows.strength or [None] * n, pa.float32()))
        if self.sampling is not None:  # generate.sampling's record: each image's guidance, and the interval
            scale = float(self.settings.get("guidance") or 0.0)
            table = table.append_column("guidance", pa.array(
                [scale if g.guidance is None else g.guidance for g in done], pa.float32()))
            if self.sampling.interval is not None:
                table = table.append_column("guidance_interval", pa.array(
                    [list(self.sampling.interval)] * n, pa.list_(pa.float32())))
        if self.record_negative:
            table = table.append_column("negative_prompt", pa.array([g.negative for g in done], pa.string()))
        return table

    def _stored(self, size: tuple[int, int]) -> tuple[int, int]:
        m = self.gcfg.max_side
        if m is None or max(size) <= m:
            return size
        scale = m / max(size)
        return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))

    def drain(self) -> list[tuple[int, int]]:
        """Wait for every queued shard to be committed; returns (shard, tar bytes) pairs and re-raises failures."""
        while self._inflight:
            self._inflight.popleft().result()
        out = self._done + [(shard, fut.result()) for shard, fut in self._commits]
        self._commits.clear()
        self._done = []
        return out

    def close(self) -> None:
        self._encode.shutdown(wait=True)
        self._tar.shutdown(wait=True)


def _add(writer: ShardWriter, key: str, ext: str, enc: Future, meta: dict[str, Any]) -> None:
    try:
        writer.add(key, ext, enc.result(), meta)
    except BaseException:
        writer.abort()
        raise


def _commit(writer: ShardWriter, table: pa.Table) -> int:
    return writer.commit(table)
