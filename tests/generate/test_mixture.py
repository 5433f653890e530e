"""A mixture of generators (``models.mixture``): the plan gives each shard one generator in proportion to the shares,
each image's id names its own generator, generate makes every image once with the generator planned for it (a rank
loads only those its shards need), a lost shard is made again alike, and a run without a mixture is as before."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from synthdiv.config.models import generator_id
from synthdiv.core.pipeline import get_spec
from synthdiv.core.rundir import RunDir
from synthdiv.core.status import fingerprint
from synthdiv.engine.runner import run_stage
from synthdiv.errors import ConfigError, InputError
from synthdiv.stages.generate.producer import PlannedWork
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.generate.runners import assigned_shards, by_generator
from synthdiv.stages.plan.mixture import shard_generators
from synthdiv.stages.plan.reader import read_plan
from synthdiv.stages.plan.stage import image_ids
from synthdiv.utils.devices import DistEnv
from synthdiv.utils.hashing import file_digest
from tests.generate.conftest import mixed_config, write_inputs


def test_every_prefix_of_the_shards_holds_each_generator_in_proportion():
    assert shard_generators(range(6), [1, 1]).tolist() == [0, 1, 0, 1, 0, 1]
    assert shard_generators(range(8), [0.25, 0.75]).tolist() == [1, 0, 1, 1, 1, 0, 1, 1]
    shares = np.array([0.2, 0.3, 0.5])
    order = shard_generators(np.arange(200), shares)
    for n in range(1, 201):
        counts = np.bincount(order[:n], minlength=3)
        assert (np.abs(counts - shares * n) < 1).all()
    # a shard's generator depends on its number alone: the shards of a later round continue the sequence
    assert shard_generators([150, 3, 199], shares).tolist() == [order[150], order[3], order[199]]
    with pytest.raises(ValueError, match="positive"):
        shard_generators([0], [1.0, 0.0])


def _mixed(make_config, tiny_model_dir: Path, shares=(0.5, 0.5), **plan):
    return mixed_config(make_config, tiny_model_dir, shares, plan={"images_per_class": 4, "shard_size": 3, **plan})


@pytest.mark.timeout(600)
def test_a_mixed_run_makes_each_image_once_by_its_planned_generator(make_config, tiny_model_dir):
    cfg = _mixed(make_config, tiny_model_dir)
    run = RunDir(cfg.run_dir)
    gids = [generator_id(spec) for spec, _ in cfg.models.generators()]
    summary = run_stage(cfg, "plan")
    plan = read_plan(run)
    assert plan.num_rows == 12 and plan.column_names[-1] == "generator"
    by_shard = {s: set(g) for s, g in _group(plan, "shard", "generator").items()}
    assert by_shard == {0: {gids[0]}, 1: {gids[1]}, 2: {gids[0]}, 3: {gids[1]}}
    assert summary["by_generator"] == {gids[0]: 6, gids[1]: 6}
    # each image's id names its own generator, as any later stage recomputes it
    gens = plan.column("generator").to_pylist()
    for gid in gids:
        rows = [i for i, g in enumerate(gens) if g == gid]
        again = image_ids(plan.column("class").take(rows), plan.column("prompt_id").take(rows),
                          plan.column("seed").take(rows), gid)
        assert again.to_pylist() == plan.column("image_id").take(rows).to_pylist()

    # a rank of two loads only the generator of its shards (alternating shards, two ranks: one generator each)
    work = PlannedWork(run)
    for rank in (0, 1):
        mine = assigned_shards(work.shards, DistEnv(rank=rank, world_size=2, local_rank=rank))
        assert [(generator_id(spec), shards) for spec, shards in by_generator(cfg, work, mine)] == [
            (gids[rank], [rank, rank + 2])]

    run_stage(cfg, "generate")
    manifest = read_manifest(run)
    planned = dict(zip(plan.column("image_id").to_pylist(), gens, strict=True))
    made = manifest.column("image_id").to_pylist()
    assert sorted(made) == sorted(planned)  # every image once
    assert manifest.column("generator_id").to_pylist() == [planned[i] for i in made]

    # a shard lost with its part (a killed worker) is made again, by its generator, to the same bytes
    digest = file_digest(run.shard_tar(3))
    run.manifest_part(3).unlink()
    run.shard_tar(3).unlink()
    again = run_stage(cfg, "generate")
    assert again["made_shards"] == 1 and file_digest(run.shard_tar(3)) == digest
    assert sorted(read_manifest(run).column("image_id").to_pylist()) == sorted(planned)

    # the report breaks the CLIP scores and keep rates down by generator
    from synthdiv.stages.report.quality import score_tables

    kept = cfg.model_copy(update={"score": cfg.score.model_copy(update={"keep_quantile": 0.5})})
    run_stage(kept, "score")
    rows = score_tables(kept, run)["generators"]
    assert [(r["generator"], r["images"]) for r in rows] == sorted((g, 6) for g in gids)
    assert all(r["similarity"] and len(r["keep"]) == 1 for r in rows)


def _group(table, key: str, value: str) -> dict:
    out: dict = {}
    for k, v in zip(table.column(key).to_pylist(), table.column(value).to_pylist(), strict=True):
        out.setdefault(k, []).append(v)
    return out


def test_a_plan_whose_generator_left_the_mixture_is_refused_by_name(make_config, tiny_model_dir):
    cfg = _mixed(make_config, tiny_model_dir)
    run_stage(cfg, "plan")
    work = PlannedWork(RunDir(cfg.run_dir))
    fewer = cfg.model_copy(update={"models": cfg.models.model_copy(update={"mixture": cfg.models.mixture[:1]})})
    with pytest.raises(InputError, match=r"shard 1 is planned for generator 'diffusers:.*@main', which "
                                        r"models.mixture does not list"):
        by_generator(fewer, work, [0, 1])


def test_a_mixture_names_each_generator_once_and_checks_its_options(make_config, tiny_model_dir):
    one = {"backend": "diffusers", "model": "embedded", "share": 1}
    with pytest.raises(ConfigError, match=r"mixture\[1\]: diffusers:embedded@main is named twice"):
        make_config(models={"mixture": [one, one]})
    with pytest.raises(ConfigError, match=r"models.mixture\[0\].options"):
        make_config(models={"mixture": [{**one, "options": {"stpes": 2}}]})
    with pytest.raises(ConfigError, match=r"share"):
        make_config(models={"mixture": [{**one, "share": 0}]})


def test_without_a_mixture_plan_and_generate_keep_their_fingerprints(make_config, tiny_model_dir):
    """``models.mixture?`` enters the fingerprints only when set: a run made before mixtures existed is not stale."""
    cfg = make_config()
    mixed = _mixed(make_config, tiny_model_dir)
    for stage in ("plan", "generate"):
        spec = get_spec(stage)
        before = dataclasses.replace(spec, sections=tuple(s for s in spec.sections if s != "models.mixture?"))
        assert fingerprint(cfg, spec) == fingerprint(cfg, before)
        assert fingerprint(mixed, spec) != fingerprint(mixed, before)


def test_a_plan_without_a_mixture_has_no_generator_column(make_config, tiny_model_dir):
    cfg = make_config(plan={"images_per_class": 4, "shard_size": 3})
    write_inputs(RunDir(cfg.run_dir), 1, 3, "unused")
    run_stage(cfg, "plan")
    assert "generator" not in pq.read_schema(RunDir(cfg.run_dir).plan).names


def test_an_adaptive_round_of_a_mixed_plan_continues_its_generator_sequence(make_config, tiny_model_dir):
    from synthdiv.stages.plan.adaptive import append_round
    from synthdiv.stages.plan.rounds import grow_plan
    from synthdiv.stages.prompts.reader import read_prompts

    cfg = _mixed(make_config, tiny_model_dir, shares=(0.25, 0.75))
    run = RunDir(cfg.run_dir)
    run_stage(cfg, "plan")
    mixture = [(generator_id(spec), share) for spec, share in cfg.models.generators()]
    rows = append_round(read_plan(run), read_prompts(run), np.array([3, 3, 3]), cfg.seed, "unused",
                        cfg.plan.shard_size, mixture=mixture)
    assert rows.column("shard").to_pylist() == [4, 4, 4, 5, 5, 5, 6, 6, 6]
    expected = shard_generators([4, 5, 6], [0.25, 0.75])
    assert rows.column("generator").to_pylist() == [mixture[g][0] for g in np.repeat(expected, 3)]
    for gid, _ in mixture:
        mine = [i for i, g in enumerate(rows.column("generator").to_pylist()) if g == gid]
        assert image_ids(rows.column("class").take(mine), rows.column("prompt_id").take(mine),
                         rows.column("seed").take(mine), gid).to_pylist() == rows.column("image_id").take(
                             mine).to_pylist()
    grow_plan(run, rows, {"round": 1, "images": 9})
    assert read_plan(run).column("generator").to_pylist()[-9:] == rows.column("generator").to_pylist()
