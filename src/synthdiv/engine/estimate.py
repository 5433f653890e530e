"""``synthdiv estimate``: the run as a budget, before and while it spends: what remains and the total.

Images come from the plan when there is one, else from the plan budget and the classes: ``classes.jsonl`` when the
classes stage ran, else the class source itself (the class file, the ImageFolder, or ImageNet's metadata: ILSVRC-2012
has 1,281,167 train images, so an ImageNet config is estimated before its data is on disk). LLM calls and tokens
follow the prompts and disambiguate settings (first tries; corrective retries come on top), with a cost where
``estimate.llm_price_per_million_tokens`` is set. Generation and training time use a measured rate (this run's
generate and train stages record the device they ran on, and the rate is labelled with it: a CPU rate is "per CPU",
never "per GPU"), a configured one, or the documented defaults of :mod:`synthdiv.engine.throughputs` (scaled by
the denoiser rows a guidance interval saves).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.parquet as pq

from synthdiv.core.rundir import RunDir
from synthdiv.engine.throughputs import UNKNOWN_DEVICE, Rate, generation_rate, training_rate
from synthdiv.errors import InputError
from synthdiv.models.generators.diffusers import model_defaults
from synthdiv.models.generators.guidance import guided_steps
from synthdiv.stages.classes.stage import collect_classes
from synthdiv.stages.generate.sampling import resolve_sampling
from synthdiv.stages.generate.shards import complete_shards
from synthdiv.stages.plan.budget import cap_fairly, class_budgets, training_real_counts
from synthdiv.stages.plan.reader import plan_shard_counts
from synthdiv.utils.humanize import human_bytes, human_duration, human_rate
from synthdiv.utils.io import read_jsonl

if TYPE_CHECKING:
    from rich.table import Table

    from synthdiv.config.root import RunConfig

logger = logging.getLogger(__name__)

__all__ = [
    "Budget", "Row", "estimate", "budget", "budget_table", "class_counts", "planned_images", "bytes_per_image",
    "guess_size", "human_duration", "human_bytes", "IMAGENET_1K_TRAIN",
]

IMAGENET_1K_TRAIN = 1_281_167  # ILSVRC-2012 train images (732 to 1,300 per class)
_BYTES_PER_PIXEL = {"jpg": 0.35, "webp": 0.25}  # of RGB pixels at quality ~90, photographic content
_OVERHEAD = 2048  # json metadata + tar headers per image
_INPUT_TOKENS = {"disambiguate": 400, "prompts": 250}  # prompt tokens of one request (template, definition, names)


@dataclass
class Row:
    """One line of the budget: a quantity, what remains of it, its total, and where the numbers come from."""

    quantity: str
    remaining: str
    total: str
    source: str


@dataclass
class Budget:
    """The numbers behind ``synthdiv estimate`` (seconds are on one device; None where unknown)."""

    classes: int
    images: int
    images_made: int
    shards: int
    disk_bytes: float
    llm_calls: int
    llm_calls_left: int
    llm_tokens: int
    llm_tokens_left: int
    llm_cost: float | None
    llm_cost_left: float | None
    generate_rate: Rate | None
    generate_seconds: float | None
    generate_seconds_left: float | None
    train_images: int | None
    train_rate: Rate | None
    train_seconds: float | None
    train_seconds_left: float | None
    rows: list[Row] = field(default_factory=list)

    @property
    def images_left(self) -> int:
        return max(0, self.images - self.images_made)


def _timm_wnids(source: str) -> list[str]:
    """The wnids of imagenet-1k / -22k from timm's synset lists, read as files (importing timm imports torch)."""
    spec = importlib.util.find_spec("timm")
    name = {"imagenet-1k": "imagenet_synsets.txt", "imagenet-22k": "imagenet22k_synsets.txt"}[source]
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - timm is a dependency
        raise InputError(f"classes.source: {source} needs timm's ImageNet metadata; pip install timm")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info" / name
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def class_counts(cfg: RunConfig, run: RunDir) -> tuple[np.ndarray, str]:
    """Real images per class (one entry per class) and where they come from.

    ``classes.jsonl`` when it exists; else the class source (reading a class file or ImageFolder as the classes stage
    would); for ImageNet whose ``real_root`` is not on disk, the ILSVRC-2012 train set spread evenly over the classes.
    """
    if run.classes.exists():
        rows = read_jsonl(run.classes)
        return np.array([r.get("real_images") or 0 for r in rows], dtype=np.int64), run.classes.name
    section = cfg.classes
    if isinstance(section.source, str) and (section.real_root is None or not section.real_root.is_dir()):
        n = len(section.subset) if section.subset else len(_timm_wnids(section.source))
        n = min(n, section.max_classes or n)
        if section.source == "imagenet-1k" and section.real_root is not None:
            counts = np.full(n, IMAGENET_1K_TRAIN // 1000, dtype=np.int64)
            return counts, f"ImageNet metadata: {n:,} classes x ~{IMAGENET_1K_TRAIN // 1000:,} (not on disk)"
        return np.zeros(n, dtype=np.int64), f"ImageNet metadata: {n:,} classes, no real images"

    if section.real_root is None or section.real_root.is_dir():
        records = collect_classes(section)
        return np.array([r.real_images for r in records], dtype=np.int64), "class source (classes stage not run)"
    # real_root is not on disk yet: the classes of the source, and ImageNet-1k's mean count where a wnid is one of it
    records = collect_classes(section.model_copy(update={"real_root": None}))
    known = set(_timm_wnids("imagenet-1k"))
    counts = np.array([IMAGENET_1K_TRAIN // 1000 if r.wnid in known else 0 for r in records], dtype=np.int64)
    return counts, (f"{len(records):,} classes of the class source; {int((counts > 0).sum()):,} ImageNet-1k classes "
                    f"x ~{IMAGENET_1K_TRAIN // 1000:,} real images (real_root not on disk)")


def planned_images(cfg: RunConfig, run: RunDir) -> tuple[int, int, int, str]:
    """(classes, images, shards, source): plan.parquet when it exists, else the plan stage's own budget arithmetic."""
    real, source = class_counts(cfg, run)
    if run.plan.exists():
        shards, counts = plan_shard_counts(run.plan)
        return len(real), int(counts.sum()), len(shards), "plan.parquet"
    budgets = cap_fairly(class_budgets(cfg.plan, training_real_counts(cfg.train, real, cfg.seed)), cfg.plan.max_images)
    images = int(budgets.sum())
    return len(real), images, math.ceil(images / cfg.plan.shard_size), f"plan budget from {source}"


def guess_size(cfg: RunConfig) -> tuple[int, int]:
    """The stored image size: generator options, else the model family's native size; capped by max_side."""
    opts, model = cfg.models.generator.options, cfg.models.generator.model.lower()
    big = ("xl", "flux", "stable-diffusion-3", "pixart")
    native = 32 if model == "embedded" else 1024 if any(k in model for k in big) and "turbo" not in model else 512
    w, h = int(opts.get("width") or native), int(opts.get("height") or native)
    m = cfg.generate.max_side
    if m is not None and max(w, h) > m:
        w, h = round(w * m / max(w, h)), round(h * m / max(w, h))
    return w, h


def _made(run: RunDir) -> tuple[int, int, float]:
    """(images, shards, bytes) already written in complete shards."""
    done = complete_shards(run)
    size = sum(run.shard_tar(s).stat().st_size for s in done)
    count = sum(pq.read_metadata(run.manifest_part(s)).num_rows for s in done)
    return count, len(done), float(size)


def bytes_per_image(cfg: RunConfig, run: RunDir) -> tuple[float, str]:
    """Mean stored bytes per image of the shards written so far, else a per-format guess."""
    count, shards, size = _made(run)
    if count:
        return size / count, f"measured on {shards} shard(s)"
    w, h = guess_size(cfg)
    return w * h * 3 * _BYTES_PER_PIXEL[cfg.generate.image_format] + _OVERHEAD, f"guessed for {w}x{h}"


def _generation_rate(cfg: RunConfig, run: RunDir, given: float | None) -> Rate | None:
    spec = cfg.models.generator
    if given is not None:
        return Rate(given, cfg.estimate.device, "--images-per-second")
    state = run.read_state("generate")
    summary = (state.summary or {}) if state is not None else {}
    if summary.get("images_per_second"):
        device = summary.get("device") or (spec.device if spec.device != "auto" else UNKNOWN_DEVICE)
        return Rate(float(summary["images_per_second"]), str(device), "measured in this run")
    if cfg.generate.images_per_second is not None:
        return Rate(cfg.generate.images_per_second, cfg.estimate.device, "generate.images_per_second")

    w, h = int(spec.options.get("width") or 0), int(spec.options.get("height") or 0)
    if not (w and h):
        w, h = guess_size(cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"max_side": None})}))
    steps = int(spec.options.get("steps") or model_defaults(spec.model)[0])
    rate = generation_rate(spec.model, w, h, steps)
    saving = interval_saving(cfg, steps)
    if rate is None or saving is None:
        return rate
    factor, note = saving
    return Rate(rate.per_second * factor, rate.device, f"{rate.source}; {note}")


def interval_saving(cfg: RunConfig, steps: int) -> tuple[float, str] | None:
    """How much faster the guidance interval makes a guided model (the default rates run both halves of CFG at
    every step; outside the interval only the conditional half runs), and a note saying so; None where the run
    sets no interval or its model does not guide."""
    spec = cfg.models.generator
    sampling = resolve_sampling(cfg.generate.sampling, spec.model)
    given = spec.options.get("guidance")
    guidance = float(model_defaults(spec.model)[1] if given is None else given)
    if sampling is None or sampling.interval is None or (guidance <= 1.0 and not sampling.draws_guidance):
        return None
    start, end = sampling.interval
    guided = guided_steps(steps, sampling.interval)
    factor = 2 * steps / (steps + guided)
    return factor, (f"guidance interval [{start:g}, {end:g}): {guided} of {steps} steps guided, "
                    f"{steps + guided} of {2 * steps} denoiser rows, x{factor:.2f}")


def _training_rate(cfg: RunConfig, run: RunDir) -> Rate | None:
    """The training rate: measured by this run's train stage (the mean over its variants, on the device it
    recorded), else ``estimate.train_images_per_second``, else the default of the timm architecture."""
    state = run.read_state("train")
    variants = (state.summary or {}).values() if state is not None else ()
    measured = [v for v in variants if isinstance(v, dict) and v.get("images_per_second")]
    if measured:
        per_second = sum(float(v["images_per_second"]) for v in measured) / len(measured)
        return Rate(per_second, str(measured[0].get("device") or UNKNOWN_DEVICE), "measured in this run")
    if cfg.estimate.train_images_per_second is not None:
        return Rate(cfg.estimate.train_images_per_second, cfg.estimate.device, "estimate.train_images_per_second")
    return training_rate(cfg.train.model, cfg.train.img_size)


def _llm_work(cfg: RunConfig, n_classes: int) -> dict[str, tuple[int, int]]:
    """Stage -> (calls, tokens) of first tries: a request's prompt plus its whole answer budget."""
    out: dict[str, tuple[int, int]] = {}
    d = cfg.disambiguate
    if d.enabled and d.candidates > 0:
        answer = d.max_tokens or 48 * d.candidates + 32
        out["disambiguate"] = (n_classes, n_classes * (_INPUT_TOKENS["disambiguate"] + answer))
    p = cfg.prompts
    calls = tokens = 0
    for wanted, per_item, times in ((p.contexts_per_class, 24, n_classes), (p.styles, 10, 1),
                                    (p.styles_per_class, 10, n_classes)):
        if wanted <= 0:
            continue
        k = p.batch_size
        n = math.ceil(wanted / k)
        calls += n * times
        tokens += n * times * (_INPUT_TOKENS["prompts"] + min(k, wanted) * per_item + 24)
    if calls:
        out["prompts"] = (calls, tokens)
    return out


def _train_images(cfg: RunConfig, real_total: int, synthetic_total: int) -> int:
    """Images seen by every variant's training: steps x batch (epochs are passes over the real block)."""
    seen = 0
    for name in cfg.train.variant_names():
        t = cfg.train.variant(name)
        if t.bridged:  # synthetic-only batches, then real-only ones (stages/train/bridge.py)
            first = t.max_steps or t.epochs * max(1, synthetic_total // t.batch_size)
            second = t.finetune_real_steps or t.finetune_real_epochs * max(1, real_total // t.batch_size)
            seen += (first + second) * t.batch_size
            continue
        n_syn = round(t.batch_size * t.synthetic_fraction)
        n_real = t.batch_size - n_syn
        per_epoch = max(1, real_total // n_real) if n_real else max(1, synthetic_total // max(n_syn, 1))
        seen += (t.max_steps or t.epochs * per_epoch) * t.batch_size
    return seen


def _done(run: RunDir, stage: str) -> bool:
    state = run.read_state(stage)
    return state is not None and state.status == "done"


def budget(cfg: RunConfig, images_per_second: float | None = None) -> Budget:
    """The run's budget: images, disk, LLM calls/tokens/cost, generation and training time, remaining and total."""
    if images_per_second is not None and not images_per_second > 0:
        raise InputError(f"--images-per-second: expected a positive number, got {images_per_second}")
    run = RunDir(cfg.run_dir)
    n_classes, images, shards, count_source = planned_images(cfg, run)
    made, _, _ = _made(run)
    per_image, size_note = bytes_per_image(cfg, run)
    llm = _llm_work(cfg, n_classes)
    calls = sum(c for c, _ in llm.values())
    tokens = sum(t for _, t in llm.values())
    calls_left = sum(c for s, (c, _) in llm.items() if not _done(run, s))
    tokens_left = sum(t for s, (_, t) in llm.items() if not _done(run, s))
    price = cfg.estimate.llm_price_per_million_tokens
    rate = _generation_rate(cfg, run, images_per_second)
    real, _ = class_counts(cfg, run)
    train_images = _train_images(cfg, int(real.sum()), images)
    t_rate = _training_rate(cfg, run)
    b = Budget(
        classes=n_classes, images=images, images_made=min(made, images), shards=shards,
        disk_bytes=images * per_image, llm_calls=calls, llm_calls_left=calls_left, llm_tokens=tokens,
        llm_tokens_left=tokens_left, llm_cost=tokens / 1e6 * price if price is not None else None,
        llm_cost_left=tokens_left / 1e6 * price if price is not None else None, generate_rate=rate,
        generate_seconds=images / rate.per_second if rate else None,
        generate_seconds_left=max(0, images - made) / rate.per_second if rate else None,
        train_images=train_images, train_rate=t_rate,
        train_seconds=train_images / t_rate.per_second if t_rate else None,
        train_seconds_left=(0.0 if _done(run, "train") else train_images / t_rate.per_second) if t_rate else None,
    )
    b.rows = _rows(cfg, b, count_source, per_image, size_note, llm)
    return b


def _rows(cfg: RunConfig, b: Budget, count_source: str, per_image: float, size_note: str,
          llm: dict[str, tuple[int, int]]) -> list[Row]:
    rows = [
        Row("classes", "", f"{b.classes:,}", count_source),
        Row("images", f"{b.images_left:,}", f"{b.images:,}", f"{b.images_made:,} made so far"),
        Row("shards", "", f"{b.shards:,}", f"{cfg.plan.shard_size:,} images per shard"),
        Row("disk", human_bytes(b.images_left * per_image), human_bytes(b.disk_bytes),
            f"{human_bytes(per_image)}/image, {size_note}"),
    ]
    stages = " + ".join(llm) or "no LLM work"
    rows.append(Row("LLM calls", f"{b.llm_calls_left:,}", f"{b.llm_calls:,}",
                    f"{stages}; first tries (corrective retries come on top)"))
    rows.append(Row("LLM tokens", f"{b.llm_tokens_left:,}", f"{b.llm_tokens:,}",
                    "prompt + full answer budget per call"))
    price = cfg.estimate.llm_price_per_million_tokens
    if price is not None and b.llm_cost is not None and b.llm_cost_left is not None:
        rows.append(Row("LLM cost", f"{b.llm_cost_left:,.2f}", f"{b.llm_cost:,.2f}",
                        f"at {price:g} per million tokens (estimate.llm_price_per_million_tokens)"))
    rows += _time_rows("generation", b.generate_rate, b.generate_seconds_left, b.generate_seconds,
                       "pass --images-per-second or set generate.images_per_second")
    rows += _time_rows("training", b.train_rate, b.train_seconds_left, b.train_seconds,
                       "set estimate.train_images_per_second", f"{b.train_images:,} images seen")
    return rows


def _time_rows(what: str, rate: Rate | None, left: float | None, total: float | None, hint: str,
               extra: str = "") -> list[Row]:
    if rate is None or left is None or total is None:
        return [Row(f"{what} time", "-", "-", f"rate unknown: {hint}" + (f"; {extra}" if extra else ""))]
    kind = rate.kind  # CPU, GPU, or "device" where the run did not record where it measured
    where = f"on {rate.device}" if rate.known else "the device it ran on was not recorded"
    note = f"{rate.source}, {where}" + (f"; {extra}" if extra else "")
    return [
        Row(f"{what} rate", "", human_rate(rate.per_second, "img"), f"per {kind}: {note}"),
        Row(f"{what} {kind} time", human_duration(left), human_duration(total), f"on one {kind}"),
    ]


def budget_table(b: Budget, title: str) -> Table:
    """The budget as a rich table: quantity, remaining, total, from."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("quantity")
    table.add_column("remaining", justify="right")
    table.add_column("total", justify="right")
    table.add_column("from")
    for row in b.rows:
        table.add_row(row.quantity, row.remaining, row.total, row.source)
    return table


def estimate(cfg: RunConfig, images_per_second: float | None = None) -> Table:
    """``synthdiv estimate``: the budget of the run as a table."""
    return budget_table(budget(cfg, images_per_second), f"budget of {cfg.run_dir}")
