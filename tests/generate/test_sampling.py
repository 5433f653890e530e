"""Per-image guidance drawn from the image's seed (issue 22, item 2): reproducible, within its set or range, and
independent of which other images are drawn alongside it."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from synthdiv.config.sampling import SamplingConfig
from synthdiv.core import ids
from synthdiv.stages.generate.sampling import draw_guidance

SEEDS = ids.derive_seeds(np.repeat(ids.prompt_keys(7, [3], ["p"]), 2000), np.arange(2000))


def test_no_setting_leaves_guidance_to_the_model() -> None:
    assert draw_guidance(SamplingConfig(), SEEDS) is None


def test_fixed_guidance_is_every_image() -> None:
    assert draw_guidance(SamplingConfig(guidance=2.0), SEEDS[:5]).tolist() == [2.0] * 5


def test_choices_are_drawn_evenly_and_only_from_the_set() -> None:
    values = draw_guidance(SamplingConfig(guidance_choices=[1.5, 2.0, 7.5]), SEEDS)
    counts = {v: int((values == v).sum()) for v in (1.5, 2.0, 7.5)}
    assert sum(counts.values()) == len(SEEDS)
    assert all(550 < c < 780 for c in counts.values()), counts


def test_range_draws_cover_the_range() -> None:
    values = draw_guidance(SamplingConfig(guidance_range=(1.0, 3.0)), SEEDS)
    assert values.min() >= 1.0 and values.max() < 3.0
    assert values.min() < 1.05 and values.max() > 2.95 and abs(values.mean() - 2.0) < 0.05


def test_same_seed_same_value_whatever_the_batch() -> None:
    cfg = SamplingConfig(guidance_range=(1.0, 8.0))
    whole = draw_guidance(cfg, SEEDS)
    resumed = draw_guidance(cfg, SEEDS[1234:1240])  # a resume that redoes only a few images
    assert resumed.tolist() == whole[1234:1240].tolist()
    assert draw_guidance(cfg, SEEDS[[7, 3]]).tolist() == [whole[7], whole[3]]


def test_streams_are_independent_and_pinned() -> None:
    a, b = ids.seeded_uniform(SEEDS, "guidance"), ids.seeded_uniform(SEEDS, "interval")
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.1
    assert a.min() >= 0.0 and a.max() < 1.0
    # pinned: a change to the stream would silently give every resumed image of an old run a different guidance
    pinned = ids.seeded_uniform(np.array([0, 8478931367390124558]), "guidance").tolist()
    assert pinned == [0.9875879162588518, 0.033192974505675044]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"guidance": 2.0, "guidance_range": (1.0, 2.0)},
        {"guidance_range": (3.0, 1.0)},
        {"guidance_choices": [-1.0]},
        {"interval": (0.5, 0.5)},
        {"interval": (0.2, 1.5)},
    ],
)
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        SamplingConfig(**kwargs)


def _sidecars(run, shard: int) -> dict[str, dict]:
    import json
    import tarfile

    with tarfile.open(run.shard_tar(shard)) as tf:
        return {m.name.split(".")[0]: json.load(tf.extractfile(m)) for m in tf if m.name.endswith(".json")}


@pytest.mark.timeout(600)
def test_a_sampled_run_records_each_images_guidance_and_remakes_a_lost_shard_alike(gen_config):
    from synthdiv.core.rundir import RunDir
    from synthdiv.engine.runner import run_stage
    from synthdiv.stages.generate.reader import read_manifest
    from synthdiv.utils.hashing import file_digest

    cfg = gen_config(images_per_class=2, shard_size=2, options={"steps": 4},
                     sampling={"guidance_range": [1.0, 8.0], "interval": [0.25, 1.0]})
    run = RunDir(cfg.run_dir)
    run_stage(cfg, "generate")
    manifest = read_manifest(run)
    seeds = np.asarray(manifest.column("seed").to_pylist())
    drawn = draw_guidance(cfg.generate.sampling, seeds)
    assert manifest.column("guidance").to_pylist() == drawn.astype(np.float32).tolist()
    assert manifest.column("guidance_interval").to_pylist() == [[0.25, 1.0]] * 6
    assert "negative_prompt" not in manifest.column_names  # prompts.negative_confusable is off
    meta = {k: v for s in range(3) for k, v in _sidecars(run, s).items()}
    by_id = dict(zip(manifest.column("image_id").to_pylist(), drawn.tolist(), strict=True))
    assert {k: (m["guidance"], m["guidance_interval"]) for k, m in meta.items()} == {
        k: (g, [0.25, 1.0]) for k, g in by_id.items()}

    digest = file_digest(run.shard_tar(1))
    run.manifest_part(1).unlink()
    run.shard_tar(1).unlink()
    again = run_stage(cfg, "generate")
    assert again["made_shards"] == 1 and file_digest(run.shard_tar(1)) == digest


def test_without_sampling_nothing_new_is_recorded_or_fingerprinted(gen_config):
    from synthdiv.core.rundir import RunDir
    from synthdiv.engine.runner import run_stage
    from synthdiv.stages.generate.reader import read_manifest

    cfg = gen_config(images_per_class=1, shard_size=3)
    assert list(cfg.generate.content) == ["image_format", "quality", "max_side", "max_retries"]
    run_stage(cfg, "generate")
    run = RunDir(cfg.run_dir)
    assert read_manifest(run).column_names[-2:] == ["source", "strength"]
    assert not {"guidance_interval"} & set(_sidecars(run, 0)[read_manifest(run).column("image_id")[0].as_py()])
    set_cfg = SamplingConfig(guidance_choices=[2.0])
    assert cfg.generate.model_copy(update={"sampling": set_cfg}).content["sampling"]["guidance_choices"] == [2.0]


def test_diverse_takes_the_model_familys_settings_where_none_is_given():
    from synthdiv.stages.generate.sampling import resolve_sampling

    assert resolve_sampling(SamplingConfig(), "embedded") is None
    family = resolve_sampling(SamplingConfig(diverse=True), "embedded")
    assert (family.guidance_range, family.interval, family.diverse) == ((1.5, 7.5), (0.25, 1.0), False)
    sdxl = resolve_sampling(SamplingConfig(diverse=True, guidance=3.0), "stabilityai/stable-diffusion-xl-base-1.0")
    assert (sdxl.guidance, sdxl.guidance_range, sdxl.interval) == (3.0, None, (0.15, 0.85))
    for own in ({"guidance_choices": [2.0, 3.0]}, {"guidance_range": (2.5, 3.5)}):  # a scale of its own is kept
        assert resolve_sampling(SamplingConfig(diverse=True, **own), "embedded").guidance_range == own.get(
            "guidance_range")
    assert resolve_sampling(SamplingConfig(diverse=True), "stabilityai/sdxl-turbo") is None  # distilled: no CFG
    assert resolve_sampling(SamplingConfig(diverse=True), "runwayml/stable-diffusion-v1-5").guidance_range == (1.5, 4.0)


def test_a_generator_that_cannot_vary_guidance_is_refused(gen_config):
    from synthdiv.core.rundir import RunDir
    from synthdiv.errors import ConfigError
    from synthdiv.stages.generate.producer import PlannedWork, ShardProducer

    class Plain:  # a fake backend without per-image guidance (only its refusal is tested)
        generator_id = "plain:model@main"

        def settings(self):
            return {"generator_id": self.generator_id, "model": "plain"}

    cfg = gen_config(images_per_class=1, shard_size=3, sampling={"guidance": 2.0})
    with pytest.raises(ConfigError, match="generate.sampling: generator plain:model@main cannot vary guidance"):
        ShardProducer(PlannedWork(RunDir(cfg.run_dir)), Plain(), cfg.generate)


@pytest.mark.timeout(600)
def test_a_diverse_run_samples_with_the_embedded_familys_range_and_interval(gen_config):
    from synthdiv.core.rundir import RunDir
    from synthdiv.engine.runner import run_stage
    from synthdiv.stages.generate.reader import read_manifest

    cfg = gen_config(images_per_class=1, shard_size=3, options={"steps": 4}, sampling={"diverse": True})
    run_stage(cfg, "generate")
    manifest = read_manifest(RunDir(cfg.run_dir))
    drawn = draw_guidance(SamplingConfig(guidance_range=(1.5, 7.5)), np.asarray(manifest.column("seed").to_pylist()))
    assert manifest.column("guidance").to_pylist() == drawn.astype(np.float32).tolist()
    assert manifest.column("guidance_interval").to_pylist() == [[0.25, 1.0]] * 3
