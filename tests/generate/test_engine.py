"""The generate stage end to end with the tiny pipeline: shards, manifest, metadata, resume, corrupt shards."""

from __future__ import annotations

import json
import tarfile

import pyarrow.parquet as pq
import pytest
from PIL import Image

from synthdiv.core.pipeline import get_spec
from synthdiv.core.rundir import RunDir
from synthdiv.core.status import fingerprint
from synthdiv.engine.runner import run_stage
from synthdiv.errors import ConfigError, FingerprintMismatchError, InputError
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.generate.stage import is_complete, progress


def _plan(run: RunDir):
    return pq.read_table(run.plan)


def test_generate_writes_every_planned_image_once(gen_config):
    cfg = gen_config(images_per_class=2, shard_size=2)
    run = RunDir(cfg.run_dir)
    assert progress(cfg, run) == "0/6 images, 0/3 shards" and not is_complete(cfg, run)
    summary = run_stage(cfg, "generate")
    assert summary["made_images"] == 6 and summary["made_shards"] == 3
    manifest, plan = read_manifest(run), _plan(run)
    for col in ("image_id", "class", "prompt_id", "seed", "shard"):
        assert manifest.column(col).to_pylist() == plan.column(col).to_pylist()
    assert progress(cfg, run) == "6/6 images, 3/3 shards" and is_complete(cfg, run)
    with tarfile.open(run.shard_tar(1)) as tf:
        names = tf.getnames()
        ids = manifest.filter(manifest.column("shard").to_numpy() == 1).column("image_id").to_pylist()
        assert names == [f"{i}.{ext}" for i in ids for ext in ("jpg", "cls", "json")]
        meta = json.loads(tf.extractfile(f"{ids[0]}.json").read())
        img = Image.open(tf.extractfile(f"{ids[0]}.jpg"))
        img.load()
    assert meta["class_name"] == "crane" and meta["prompt"] == "a photo of a crane" and meta["steps"] == 1
    assert meta["generator_id"] == manifest.column("generator_id")[0].as_py()
    for key in ("seed", "used_seed", "retries", "scheduler", "guidance", "width", "height", "revision"):
        assert key in meta
    assert img.format == "JPEG" and img.size == (meta["width"], meta["height"])
    assert run_stage(cfg, "generate")["skipped"]


def test_resume_redoes_only_broken_shards(gen_config):
    cfg = gen_config(images_per_class=2, shard_size=2)
    run = RunDir(cfg.run_dir)
    run_stage(cfg, "generate")
    before = {s: run.shard_tar(s).read_bytes() for s in range(3)}
    stamp = run.shard_tar(0).stat().st_mtime_ns
    run.manifest_part(1).unlink()  # killed after the tar's rename, before its part
    run.shard_tar(2).write_bytes(before[2][:1000])  # truncated
    (run.shards / "shard-000000.tar.tmp-1-dead").write_bytes(b"half")
    run.clear_state("generate")
    summary = run_stage(cfg, "generate")
    assert summary["made_shards"] == 2 and summary["made_images"] == 4
    assert run.shard_tar(0).stat().st_mtime_ns == stamp  # the complete shard was not touched
    assert {s: run.shard_tar(s).read_bytes() for s in range(3)} == before  # same bytes again
    assert not list(run.shards.glob("*.tmp-*"))
    ids = read_manifest(run).column("image_id").to_pylist()
    assert len(ids) == len(set(ids)) == 6


def test_garbage_tar_is_reported_and_redone(gen_config, caplog):
    cfg = gen_config(images_per_class=1, shard_size=3, image_format="webp", max_side=16)
    run = RunDir(cfg.run_dir)
    run_stage(cfg, "generate")
    run.shard_tar(0).write_bytes(b"\0garbage" * 100)
    assert not is_complete(cfg, run)
    run.clear_state("generate")
    with caplog.at_level("WARNING"):
        assert run_stage(cfg, "generate")["made_shards"] == 1
    assert "shard-000000: corrupt; it will be redone" in caplog.text
    with tarfile.open(run.shard_tar(0)) as tf:
        first = next(n for n in tf.getnames() if n.endswith(".webp"))
        img = Image.open(tf.extractfile(first))
        assert img.format == "WEBP" and max(img.size) <= 16
    assert read_manifest(run).column("ext").to_pylist() == ["webp"] * 3


def test_plan_naming_an_unknown_prompt_is_an_input_error(gen_config):
    import pyarrow as pa

    from synthdiv.utils.io import write_parquet_atomic

    cfg = gen_config(images_per_class=1, shard_size=3)
    run = RunDir(cfg.run_dir)
    plan = _plan(run)
    plan = plan.set_column(2, "prompt_id", pa.array(["nope"] * plan.num_rows))
    write_parquet_atomic(plan, run.plan)
    with pytest.raises(InputError, match="prompt_id 'nope'"):
        run_stage(cfg, "generate")


def test_resume_may_change_how_but_not_what(gen_config):
    cfg = gen_config(images_per_class=1, shard_size=1)
    run = RunDir(cfg.run_dir)
    run.begin("generate", fingerprint(cfg, get_spec("generate"), run))  # a started run, as after a kill
    faster = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"batch_size": 4, "writer_threads": 1})})
    assert run_stage(faster, "generate")["made_shards"] == 3  # resumed: runner settings are not in the fingerprint
    smaller = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"quality": 50})})
    with pytest.raises(FingerprintMismatchError, match="synthdiv generate --redo"):
        run_stage(smaller, "generate")


def test_config_rejects_two_filters(make_config):
    with pytest.raises(ConfigError, match="only one of min_similarity and keep_quantile"):
        make_config(score={"min_similarity": 0.2, "keep_quantile": 0.5})
    with pytest.raises(ConfigError, match=r"generate\.image_format"):
        make_config(generate={"image_format": "png"})


def test_degenerate_images_are_retried_and_recorded(gen_config, monkeypatch):
    from synthdiv.models.generators.diffusers import DiffusersGenerator
    from synthdiv.stages.generate.degenerate import derive_seed

    cfg = gen_config(images_per_class=1, shard_size=3)
    run = RunDir(cfg.run_dir)
    planned_seed = _plan(run).column("seed")[1].as_py()
    real = DiffusersGenerator.generate

    def first_attempt_black(self, prompts, seeds, negative_prompts=None):  # a safety filter hitting one image
        images = real(self, prompts, seeds, negative_prompts)
        return [Image.new("RGB", im.size) if s == planned_seed else im for im, s in zip(images, seeds, strict=True)]

    monkeypatch.setattr(DiffusersGenerator, "generate", first_attempt_black)
    run_stage(cfg, "generate")
    manifest = read_manifest(run)
    assert manifest.column("retries").to_pylist() == [0, 1, 0]
    assert not any(manifest.column("degenerate").to_pylist())
    with tarfile.open(run.shard_tar(0)) as tf:
        meta = json.loads(tf.extractfile(f"{manifest.column('image_id')[1].as_py()}.json").read())
    assert meta["seed"] == planned_seed and meta["used_seed"] == derive_seed(planned_seed, 1) and meta["retries"] == 1


def test_the_plan_stage_feeds_the_generate_stage(gen_config):
    cfg = gen_config(images_per_class=1, shard_size=4)
    cfg = cfg.model_copy(update={"plan": cfg.plan.model_copy(update={"images_per_class": 3})})
    run = RunDir(cfg.run_dir)
    run.plan.unlink()
    run_stage(cfg, "plan")
    run_stage(cfg, "generate")
    plan, manifest = _plan(run), read_manifest(run)
    assert sorted(manifest.column("image_id").to_pylist()) == sorted(plan.column("image_id").to_pylist())
    assert set(manifest.column("generator_id").to_pylist()) == {f"diffusers:{cfg.models.generator.model}@main"}
