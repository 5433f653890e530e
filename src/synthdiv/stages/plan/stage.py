"""The plan stage: which image of which class is made from which prompt with which seed, and in which shard.

``plan.parquet`` (:data:`synthdiv.core.schemas.PLAN_SCHEMA`) is built column-wise with numpy and pyarrow, so 7.7M rows
(6x ImageNet-1k) take seconds and a few hundred MB. The layout:

* each class's budget (:mod:`synthdiv.stages.plan.budget`) is split across prompt kinds by ``prompts.proportions``;
* within a kind, row ``j`` uses prompt ``j mod m`` (m prompts of that kind): every prompt is used once before any
  is used twice, and ``j div m`` is the prompt's *repeat* number;
* the seed of a row comes from (run seed, class, prompt_id, repeat), its ``image_id`` from (class, prompt_id,
  seed, generator id) (:mod:`synthdiv.core.ids`);
* rows are interleaved: the kinds within a class, then the classes, by the fraction of their own budget a row
  sits at. Any prefix of the plan (a shard, the first hour of a run) therefore holds every class and kind in
  proportion, which is what a sequential WebDataset reader wants; ``shard = position // plan.shard_size``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.config.models import generator_id
from synthdiv.config.prompts import DEFAULT_IMAGES_PER_CLASS
from synthdiv.core import ids
from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import PLAN_GENERATOR_FIELD, PLAN_SCHEMA, PLAN_SOURCE_SCHEMA, PROMPT_KINDS, with_format
from synthdiv.errors import ConfigError, InputError
from synthdiv.stages.classes.reader import class_real_files
from synthdiv.stages.disambiguate.reader import read_resolved
from synthdiv.stages.plan.budget import cap_fairly, class_budgets, split_by_kind, training_real_counts
from synthdiv.stages.plan.img2img import SourcePlan, assign_sources
from synthdiv.stages.plan.mixture import shard_generators
from synthdiv.stages.prompts.reader import read_prompts
from synthdiv.utils.io import atomic_write
from synthdiv.utils.progress import Progress

if TYPE_CHECKING:
    import pyarrow as pa

    from synthdiv.config.prompts import PlanConfig
    from synthdiv.config.root import RunConfig

logger = logging.getLogger(__name__)

__all__ = ["build", "generator_id", "build_plan", "plan_batches", "image_ids", "PlanLayout", "layout_plan"]

_ROW_GROUP = 1 << 20
# The most rows a plan may hold: 13x a 6x ImageNet-1k run (7.7M rows); building the layout takes tens of bytes a row.
MAX_PLAN_IMAGES = 100_000_000
# A plan with image-to-image rows: PLAN_SCHEMA, then PLAN_SOURCE_SCHEMA.
_SOURCE_PLAN_SCHEMA = PLAN_SCHEMA.append(PLAN_SOURCE_SCHEMA.field(0)).append(PLAN_SOURCE_SCHEMA.field(1))


class PlanLayout:
    """Row order of a plan, before seeds and ids: per row, its class, prompt (index into the prompt table) and
    repeat number, already in (shard, position) order.

    Attributes:
        cls: int32 class index per row.
        prompt: int64 row of the (class, kind)-grouped prompt table per row.
        repeat: int64 uses of the same prompt before this one.
        counts: ``(C, K)`` images per class and kind.
    """

    def __init__(self, cls: np.ndarray, prompt: np.ndarray, repeat: np.ndarray, counts: np.ndarray) -> None:
        self.cls, self.prompt, self.repeat, self.counts = cls, prompt, repeat, counts

    def __len__(self) -> int:
        return len(self.cls)


def layout_plan(counts: np.ndarray, available: np.ndarray) -> PlanLayout:
    """Lay out rows for ``counts[c, k]`` images of class c and kind k drawn from ``available[c, k]`` prompts.

    The prompt table is assumed grouped by class then kind (column order), ``available`` giving the group sizes.
    """
    counts = np.asarray(counts, dtype=np.int64)
    available = np.asarray(available, dtype=np.int64)
    n_cls, n_kind = counts.shape
    if ((counts > 0) & (available == 0)).any():
        raise ValueError("layout_plan: images asked of a (class, kind) with no prompts")
    sizes = counts.ravel()
    total = int(sizes.sum())
    group = np.repeat(np.arange(sizes.size, dtype=np.int32), sizes)
    starts = np.cumsum(sizes) - sizes
    j = np.arange(total, dtype=np.int64) - np.repeat(starts, sizes)
    m = np.maximum(available.ravel(), 1)[group]
    prompt_start = (np.cumsum(available.ravel()) - available.ravel())[group]
    prompt = prompt_start + j % m
    repeat = j // m
    del m, prompt_start
    cls = (group // n_kind).astype(np.int32)
    kind = group % n_kind
    del group
    # Rank of each row within its class when the kinds are interleaved by (2j+1)/(2a_k): count, for every other
    # kind k', the rows j' with (2j'+1)*a_k < (2j+1)*a_k' (<= for earlier kinds, so ties go to the earlier kind).
    rank = j.copy()
    a_self = sizes.reshape(n_cls, n_kind)[cls, kind]
    for other in range(n_kind):
        a_other = counts[:, other][cls]
        num = (2 * j + 1) * a_other
        strict = np.where(num - 1 - a_self >= 0, (num - 1 - a_self) // (2 * a_self) + 1, 0)
        loose = np.where(num - a_self >= 0, (num - a_self) // (2 * a_self) + 1, 0)
        found = np.minimum(np.where(other < kind, loose, strict), a_other)
        rank += np.where(kind == other, 0, found)
    del a_self, kind, j
    per_class = counts.sum(axis=1)
    key = (2 * rank + 1) / (2.0 * per_class[cls])
    del rank
    order = np.argsort(key, kind="stable")  # rows start in class order, so ties go to the lower class
    del key
    return PlanLayout(cls[order], prompt[order], repeat[order], counts)


def plan_batches(
    layout: PlanLayout,
    prompt_classes: np.ndarray,
    prompt_ids: pa.Array,
    run_seed: int,
    gen_id: str,
    shard_size: int,
    rows_per_batch: int = _ROW_GROUP,
    sources: SourcePlan | None = None,
    mixture: Sequence[tuple[str, float]] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of :data:`PLAN_SCHEMA` for ``layout`` (seeds and image ids computed batch by batch).

    With ``sources`` (image-to-image rows), the batches also have the :data:`PLAN_SOURCE_SCHEMA` columns and an
    img2img row's image id mixes in its (source, strength) key. With a ``mixture`` of (generator id, share), each
    shard gets one generator (:func:`~synthdiv.stages.plan.mixture.shard_generators`), a row's image id names it
    (not ``gen_id``), and the batches end with its ``generator`` column.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    pid_list = prompt_ids.to_pylist()
    seed_keys = ids.prompt_keys(run_seed, prompt_classes, pid_list)
    if mixture:
        mixed_ids = pa.array([g for g, _ in mixture], pa.string())
        mixed_keys = np.stack([ids.image_keys(prompt_classes, pid_list, g) for g, _ in mixture])
    img_keys = ids.image_keys(prompt_classes, pid_list, gen_id) if not mixture else None
    del pid_list
    rows_per_batch = max(shard_size, rows_per_batch // shard_size * shard_size)
    for start in range(0, len(layout), rows_per_batch):
        stop = min(start + rows_per_batch, len(layout))
        prompt = layout.prompt[start:stop]
        seeds = ids.derive_seeds(seed_keys[prompt], layout.repeat[start:stop])
        shard = (np.arange(start, stop, dtype=np.int64) // shard_size).astype(np.int32)
        gens = shard_generators(shard, [share for _, share in mixture]) if mixture else None
        keys = mixed_keys[gens, prompt] if mixture else img_keys[prompt]
        image = ids.splitmix64(keys ^ ids.splitmix64(seeds.astype(np.uint64)))
        if sources is not None:
            code = sources.code[start:stop]
            img = code >= 0
            image[img] = ids.splitmix64(image[img] ^ sources.keys[code[img]])
        columns = [
            ids.hex64(image),
            pa.array(layout.cls[start:stop], type=pa.int32()),
            prompt_ids.take(pa.array(prompt)),
            pa.array(seeds, type=pa.int64()),
            pa.array(shard, type=pa.int32()),
        ]
        schema = PLAN_SCHEMA
        if sources is not None:
            mask = pa.array(~img)
            paths = pa.array(sources.paths, pa.string()).take(pa.array(np.where(img, code, 0)))
            strength = pa.array(sources.strengths[np.where(img, code, 0)], pa.float32())
            columns += [pc.if_else(mask, None, paths), pc.if_else(mask, None, strength)]
            schema = _SOURCE_PLAN_SCHEMA
        if mixture:
            columns.append(mixed_ids.take(pa.array(gens)))
            schema = schema.append(PLAN_GENERATOR_FIELD)
        yield pa.RecordBatch.from_arrays(columns, schema=schema)


def image_ids(classes: Any, prompt_ids: Any, seeds: Any, gen_id: str) -> pa.Array:
    """Image ids of arbitrary rows, exactly as the plan names them (for checks by later stages)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    classes = np.asarray(classes, dtype=np.int64)
    pairs = pc.binary_join_element_wise(pa.array(classes.astype(str)), pa.array(prompt_ids, type=pa.string()), "\0")
    encoded = pairs.dictionary_encode()
    uniq = [s.split("\0", 1) for s in encoded.dictionary.to_pylist()]
    keys = ids.image_keys([int(c) for c, _ in uniq], [p for _, p in uniq], gen_id)
    index = np.asarray(encoded.indices, dtype=np.int64)
    seeds = np.asarray(seeds, dtype=np.int64).astype(np.uint64)
    return ids.hex64(ids.splitmix64(keys[index] ^ ids.splitmix64(seeds)))


def _read_inputs(run: RunDir) -> tuple[pa.Table, np.ndarray, list[dict[str, Any]]]:
    """The prompts, each class's real image count, and the resolved classes."""
    rows = read_resolved(run.resolved)
    real = [row.get("real_images") or 0 for row in rows]
    prompts = read_prompts(run, ["prompt_id", "class", "kind"])
    return prompts, np.asarray(real, dtype=np.int64), rows


def _bounded(plan: PlanConfig, real: np.ndarray) -> tuple[PlanConfig, int]:
    """Refuse a plan of more than :data:`MAX_PLAN_IMAGES` rows before any array of its size is allocated.

    The size is computed with Python integers (``images_per_class: 10**30`` would overflow numpy's int64). Returns the
    plan section, with a per-class count above ``max_images`` lowered to it (which plans the same images), and the
    number of images asked before the cap.
    """
    n = len(real)
    if plan.top_up_to is not None:
        field, size = "top_up_to", sum(max(0, int(plan.top_up_to) - int(r)) for r in real.tolist())
    elif plan.multiple_of_real is not None:
        field, size = "multiple_of_real", int(np.floor(real * float(plan.multiple_of_real) + 0.5).sum())
    else:
        per = DEFAULT_IMAGES_PER_CLASS if plan.images_per_class is None else int(plan.images_per_class)
        field, size = "images_per_class", per * n
    requested = size
    if plan.max_images is not None:
        size = min(size, int(plan.max_images))
    if size > MAX_PLAN_IMAGES:
        raise ConfigError(
            f"plan.{field}: the plan would hold {size:,} images, above the bound of {MAX_PLAN_IMAGES:,} rows; "
            "lower it or set plan.max_images"
        )
    value = getattr(plan, field)
    if plan.max_images is not None and field != "multiple_of_real" and value is not None and value > plan.max_images:
        plan = plan.model_copy(update={field: int(plan.max_images)})  # every class is capped below it anyway
    return plan, requested


def build(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """The plan stage: read prompts.parquet and the classes' real-image counts, write plan.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq


    prompts, real, rows = _read_inputs(run)
    names = [row["name"] for row in rows]
    n_cls, kinds = len(real), list(PROMPT_KINDS)
    cls = np.asarray(prompts.column("class"), dtype=np.int64)
    kind_names = prompts.column("kind").to_pylist()
    bad = sorted({k for k in kind_names if k not in kinds})
    if bad or (len(cls) and (cls.min() < 0 or cls.max() >= n_cls)):
        raise InputError(f"{run.prompts}: unknown kind {bad[0]!r}" if bad else f"{run.prompts}: class out of range")
    kind = np.array([kinds.index(k) for k in kind_names], dtype=np.int64)
    group = np.lexsort((kind, cls))  # stable: file order within (class, kind)
    available = np.bincount(cls * len(kinds) + kind, minlength=n_cls * len(kinds)).reshape(n_cls, len(kinds))

    if cfg.plan.top_up_to is not None or cfg.plan.multiple_of_real is not None:
        real = training_real_counts(cfg.train, real, cfg.seed)  # what training will see, not all of it
    bounded, requested = _bounded(cfg.plan, real)
    budgets = cap_fairly(class_budgets(bounded, real), cfg.plan.max_images)
    counts = split_by_kind(budgets, available, cfg.prompts.proportions, kinds)
    stranded = np.flatnonzero((budgets > 0) & (counts.sum(axis=1) == 0))
    if len(stranded):
        raise InputError(
            f"{run.prompts}: class {names[stranded[0]]!r} has a budget of {budgets[stranded[0]]} images but no "
            "prompts of a kind with prompts.proportions > 0"
        )
    wanted = np.array([cfg.prompts.proportions.get(k, 0.0) > 0 for k in kinds])
    short_kind = int(((available == 0) & wanted[None, :] & (budgets[:, None] > 0)).any(axis=1).sum())
    if short_kind:
        logger.warning("%d classes lack prompts of a wanted kind; their share went to the other kinds", short_kind)

    layout = layout_plan(counts, available)
    gen = generator_id(cfg.models.generator)
    mixture = cfg.models.mixture_shares()
    sorted_ids = prompts.column("prompt_id").take(pa.array(group)).combine_chunks()
    sources = _img2img_sources(cfg, rows, layout)
    batches = plan_batches(layout, cls[group], sorted_ids, cfg.seed, gen, cfg.plan.shard_size, sources=sources,
                           mixture=mixture)
    schema = PLAN_SCHEMA if sources is None else _SOURCE_PLAN_SCHEMA
    schema = schema.append(PLAN_GENERATOR_FIELD) if mixture else schema
    with Progress(transient=True) as progress, atomic_write(run.plan, "wb") as fh:
        task = progress.add_task("planning images", total=len(layout))
        with pq.ParquetWriter(fh, with_format(schema, "plan"), compression="zstd") as writer:
            for batch in batches:
                writer.write_batch(batch, row_group_size=len(batch))
                progress.advance(task, len(batch))
    total, shards = len(layout), -(-len(layout) // cfg.plan.shard_size)
    logger.info("planned %d images of %d classes in %d shards (%s)", total, n_cls, shards, gen)
    summary = {
        "images": total,
        "shards": shards,
        "classes": n_cls,
        "classes_without_images": int((budgets == 0).sum()),
        "capped": requested > total,
        "by_kind": {k: int(counts[:, i].sum()) for i, k in enumerate(kinds)},
        "min_per_class": int(budgets.min()) if n_cls else 0,
        "max_per_class": int(budgets.max()) if n_cls else 0,
        "generator_id": gen,
    }
    if mixture:
        shard_gen = shard_generators(np.arange(shards), [share for _, share in mixture])
        per_shard = np.diff(np.minimum(np.arange(shards + 1) * cfg.plan.shard_size, total))
        summary["generator_id"] = "mixture"
        summary["by_generator"] = {g: int(per_shard[shard_gen == i].sum()) for i, (g, _) in enumerate(mixture)}
    if sources is not None:
        summary["img2img"] = sources.rows
    return summary


def _img2img_sources(cfg: RunConfig, rows: list[dict[str, Any]], layout: PlanLayout) -> SourcePlan | None:
    """The img2img rows of ``layout`` (``plan.img2img``), or None when the plan is text-to-image only."""
    spec = cfg.plan.img2img
    if spec.share <= 0:
        return None
    files = [class_real_files(row.get("real_dir"), cfg.classes.image_extensions) for row in rows]
    sources = assign_sources(layout.cls, files, spec.share, spec.strengths, cfg.seed)
    logger.info("plan.img2img: %d of %d images start from a real image (strengths %s)", sources.rows, len(layout),
                ", ".join(f"{x:g}" for x in spec.strengths))
    return sources


build_plan = build  # the name callers used in synthdiv 0.1
