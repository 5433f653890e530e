"""Runners of the generate stage: ``local`` (in-process), ``torchrun`` (ranks from torchrun or Slurm) and ``ray``.

All three take the list of shards still to make (after the resume scan), use the same
:class:`~synthdiv.stages.generate.producer.ShardProducer`, and so form the same batches and write the same shards.
torchrun / Slurm ranks split the plan's shards by ``shard % world_size == rank``: a rank always owns the same shards,
even across restarts, so no two ranks ever write one shard. Ray sends each shard to exactly one actor of a pool.

    torchrun --nproc-per-node 8 -m synthdiv generate -c run.yaml --set generate.runner=torchrun
    srun --ntasks 32 --gpus-per-task 1 synthdiv generate -c run.yaml --set generate.runner=torchrun
    synthdiv generate -c run.yaml --set generate.runner=ray --set generate.ray_actors=8  (plus, on a cluster,
        --set generate.ray_gpus_per_actor=1 --set generate.ray_address=auto)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from synthdiv.config.models import GeneratorSpec, generator_id
from synthdiv.config.root import RunConfig
from synthdiv.core.rundir import RunDir
from synthdiv.errors import InputError, MissingDependencyError
from synthdiv.models.generators import create_generator
from synthdiv.stages.generate.producer import PlannedWork, ShardProducer
from synthdiv.utils.devices import DistEnv, device_name, resolve_device
from synthdiv.utils.progress import Progress

if TYPE_CHECKING:
    from rich.progress import Task

    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["assigned_shards", "by_generator", "run_local", "run_ray", "progress_bar"]


def assigned_shards(shards: Sequence[int] | np.ndarray, env: DistEnv) -> list[int]:
    """The shards of ``env.rank``: those with ``shard % world_size == rank``."""
    arr = np.asarray(shards, dtype=np.int64)
    return arr[arr % env.world_size == env.rank].tolist()


class _SpeedColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} img/s" if speed else "- img/s", style="progress.data.speed")


def progress_bar() -> Progress:
    """The generation progress bar: count, images/s and time left."""
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), _SpeedColumn(),
        TimeRemainingColumn(), transient=False,
    )


def _device_for(spec: GeneratorSpec, env: DistEnv) -> str | None:
    """A rank's own GPU (``cuda:LOCAL_RANK``) when the generator's device is ``auto`` and there are several ranks."""
    if env.world_size == 1 or spec.device != "auto":
        return None
    return resolve_device("auto", "models.generator.device", env.local_rank)


def by_generator(cfg: RunConfig, work: PlannedWork, shards: Sequence[int]) -> list[tuple[GeneratorSpec, list[int]]]:
    """``shards`` grouped by the generator that makes them (in order of first use): the config's one generator, or
    in a mixed plan each shard's own (``models.mixture``), so a worker loads only the generators its shards need.

    Raises:
        InputError: A shard names a generator that ``models.mixture`` does not list.
    """
    if not cfg.models.mixture:
        return [(cfg.models.generator, list(shards))]
    specs = {generator_id(spec): spec for spec, _ in cfg.models.generators()}
    groups: dict[str, list[int]] = {}
    for shard in shards:
        named = work.rows(shard).generator
        if named not in specs:
            raise InputError(f"{work.run.plan}: shard {shard} is planned for generator {named!r}, which "
                             f"models.mixture does not list ({', '.join(specs)}); run `synthdiv plan --redo`")
        groups.setdefault(named, []).append(shard)
    return [(specs[g], s) for g, s in groups.items()]


def _set_torch_threads(n: int | None) -> None:
    """Pin torch's CPU threads: float reductions (and so image bytes) depend on the thread count."""
    if n is not None:
        import torch

        torch.set_num_threads(n)


def run_local(cfg: RunConfig, run: RunDir, work: PlannedWork, todo: Sequence[int], env: DistEnv) -> dict[str, Any]:
    """Make ``todo`` shards in this process (the ``local`` runner, and each rank of ``torchrun``)."""
    import time

    _set_torch_threads(cfg.generate.torch_threads)
    groups = by_generator(cfg, work, todo) if todo else [(cfg.models.generator, [])]
    total = sum(work.shard_size(s) for s in todo)
    start, written, devices = time.perf_counter(), 0, []
    with progress_bar() as bar:
        task = bar.add_task(f"generate (rank {env.rank}/{env.world_size})" if env.world_size > 1 else "generate",
                            total=total)
        for spec, shards in groups:  # one generator in memory at a time
            generator = create_generator(spec, device=_device_for(spec, env))
            devices.append(device_name(getattr(generator, "device", None) or spec.device))
            with ShardProducer(work, generator, cfg.generate, on_images=lambda n: bar.advance(task, n),
                               record_negative=cfg.prompts.negative_confusable > 0) as producer:
                for shard in shards:
                    producer.produce(shard)
                written += len(producer.drain())
            del generator
    elapsed = time.perf_counter() - start
    # the rate is this process's, on its device: ``synthdiv estimate`` says where it was measured
    return {"made_images": total, "made_shards": written, "seconds": round(elapsed, 3),
            "images_per_second": round(total / elapsed, 4) if total and elapsed > 0 else None,
            "device": devices[0] if len(set(devices)) == 1 else "+".join(dict.fromkeys(devices))}


class _RayShardActor:
    """A Ray actor holding one generator; called with batches of shard numbers, it makes and commits them."""

    def __init__(self, cfg_json: dict[str, Any]) -> None:
        logging.basicConfig(level=logging.WARNING)
        self.cfg = RunConfig.model_validate(cfg_json)
        self.work = PlannedWork(RunDir(self.cfg.run_dir))
        _set_torch_threads(self.cfg.generate.torch_threads)
        self.producers: dict[str, ShardProducer] = {}  # by generator id: created when a shard first needs it

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        shards = [int(s) for s in batch["shard"]]
        for spec, mine in by_generator(self.cfg, self.work, shards):
            gid = generator_id(spec)
            if gid not in self.producers:
                self.producers[gid] = ShardProducer(self.work, create_generator(spec), self.cfg.generate,
                                                    record_negative=self.cfg.prompts.negative_confusable > 0)
            for shard in mine:
                self.producers[gid].produce(shard)
            self.producers[gid].drain()
        return {"shard": shards, "images": [self.work.shard_size(s) for s in shards]}


def run_ray(cfg: RunConfig, run: RunDir, work: PlannedWork, todo: Sequence[int]) -> dict[str, Any]:
    """Make ``todo`` shards with Ray Data: ``map_batches`` over a pool of generator actors, one shard per call."""
    import time

    try:
        import ray
    except ImportError:
        raise MissingDependencyError("generate.runner=ray needs Ray: pip install 'synthdiv[ray]'") from None
    g = cfg.generate
    start = time.perf_counter()
    if not todo:
        return {"made_images": 0, "made_shards": 0, "seconds": 0.0, "images_per_second": None}
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if g.ray_address is None:
            kwargs["num_cpus"] = g.ray_actors * (g.torch_threads or 1) + 1
        ray.init(address=g.ray_address, **kwargs)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ds = ray.data.from_items([{"shard": int(s)} for s in todo], override_num_blocks=len(todo))
    out = ds.map_batches(
        _RayShardActor, fn_constructor_kwargs={"cfg_json": cfg.model_dump(mode="json")}, batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=g.ray_actors), num_gpus=g.ray_gpus_per_actor or None,
        num_cpus=g.torch_threads or 1,
    )
    total = sum(work.shard_size(s) for s in todo)
    made_shards = 0
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"generate (ray, {g.ray_actors} actor{'s' if g.ray_actors > 1 else ''})", total=total)
            for row in out.iter_rows():
                made_shards += 1
                bar.advance(task, int(row["images"]))
    finally:
        if started_here:
            ray.shutdown()
    elapsed = time.perf_counter() - start
    return {"made_images": total, "made_shards": made_shards, "seconds": round(elapsed, 3),
            "images_per_second": round(total / elapsed, 4) if elapsed > 0 else None,
            "device": "cuda" if g.ray_gpus_per_actor else "cpu"}  # an actor without a GPU from Ray runs on the CPU
