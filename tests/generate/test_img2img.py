"""Image-to-image from real images (plan.img2img): the plan's seeded sources and stable ids, the diffusers backend's
image-to-image pipeline on the embedded tiny model, and exactly-once generation through the local runner."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from synthdiv.core.ids import prompt_id
from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import PLAN_SCHEMA, PLAN_SOURCE_SCHEMA, PROMPTS_SCHEMA
from synthdiv.errors import InputError
from synthdiv.models.generators.image_fit import fit_image, img2img_steps
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.generate.stage import generate_images
from synthdiv.stages.plan.img2img import assign_sources
from synthdiv.stages.plan.stage import build_plan
from synthdiv.utils.io import atomic_write_jsonl, write_parquet_atomic
from tests.conftest import SMOKE_DATA

CLASSES = ("bag", "coat", "dress")


def _real_dirs(tmp_path: Path, per_class: int = 3) -> list[Path]:
    """A few real images per class, copied from the smoke data (the folder names must not change)."""
    out = []
    for name in CLASSES:
        src = sorted((SMOKE_DATA / "train" / name).iterdir())[:per_class]
        dst = tmp_path / "real" / name
        dst.mkdir(parents=True, exist_ok=True)
        for f in src:
            shutil.copy(f, dst / f.name)
        out.append(dst)
    return out


def _write_inputs(run: RunDir, real_dirs: list[Path | None]) -> None:
    prompts = []
    for c, name in enumerate(CLASSES):
        for kind, text in (("base", f"a photo of a {name}"), ("style", f"a sketch of a {name}")):
            prompts.append({"prompt_id": prompt_id(c, kind, text), "class": c, "class_name": name, "kind": kind,
                            "text": text, "negative": "", "context": None, "style": None, "template_id": "t",
                            "llm_id": None})
    import pyarrow as pa

    write_parquet_atomic(pa.Table.from_pylist(prompts, schema=PROMPTS_SCHEMA), run.prompts)
    rows = [{"index": c, "name": n, "wnid": None, "definition": None,
             "real_images": len(list(d.iterdir())) if d else 0, "real_dir": str(d) if d else None, "description": n,
             "candidates": [], "status": "ok", "llm_id": None, "template_id": None}
            for c, (n, d) in enumerate(zip(CLASSES, real_dirs, strict=True))]
    atomic_write_jsonl(run.resolved, rows)
    atomic_write_jsonl(run.classes, [{k: r[k] for k in ("index", "name", "wnid", "definition", "real_images",
                                                         "real_dir")} for r in rows])


@pytest.fixture
def img2img_config(make_config, tiny_model_dir, tmp_path):
    """``make(share, strengths, per_class)`` -> a RunConfig whose run has classes, prompts and a built plan."""

    def make(share: float = 0.5, strengths=(0.6,), per_class: int = 8, shard_size: int = 4, real_dirs=None,
             name: str = "run"):
        model = {"backend": "diffusers", "model": str(tiny_model_dir), "device": "cpu", "options": {"steps": 2}}
        cfg = make_config(
            run_dir=str(tmp_path / name),
            models={"generator": model},
            generate={"batch_size": 3, "writer_threads": 2, "torch_threads": 1},
            prompts={"proportions": {"base": 0.5, "style": 0.5}},
            plan={"images_per_class": per_class, "shard_size": shard_size,
                  "img2img": {"share": share, "strengths": list(strengths)}},
        )
        run = RunDir(cfg.run_dir)
        run.root.mkdir(parents=True, exist_ok=True)
        _write_inputs(run, real_dirs if real_dirs is not None else _real_dirs(tmp_path))
        build_plan(cfg, run)
        return cfg

    return make


# ---------------------------------------------------------------------------------------------------------- plan


def test_sources_are_spread_evenly_and_seeded():
    cls = np.repeat(np.arange(3), 10)[np.random.default_rng(0).permutation(30)]
    files = [["a.png", "b.png", "c.png"], [], ["x.png", "y.png"]]
    plan = assign_sources(cls, files, 0.5, [0.4, 0.8], run_seed=7)
    img = plan.code >= 0
    assert int(img[cls == 0].sum()) == 5 and int(img[cls == 2].sum()) == 5
    assert not img[cls == 1].any()  # no real images: text-to-image only
    used = Counter(plan.paths[k] for k in plan.code[img & (cls == 0)])
    assert sorted(used.values()) == [1, 2, 2]  # each real image once before any twice
    pairs = {(plan.paths[k], float(plan.strengths[k])) for k in plan.code[img & (cls == 2)]}
    assert {s for _, s in pairs} == {np.float32(0.4), np.float32(0.8)}
    again = assign_sources(cls, files, 0.5, [0.4, 0.8], run_seed=7)
    assert np.array_equal(again.code, plan.code) and again.paths == plan.paths
    other = assign_sources(cls, files, 0.5, [0.4, 0.8], run_seed=8)
    assert [other.paths[k] for k in other.code[img]] != [plan.paths[k] for k in plan.code[img]]


def test_text_to_image_plan_is_unchanged_and_img2img_ids_are_distinct(img2img_config):
    off = img2img_config(share=0.0)
    off_bytes = RunDir(off.run_dir).plan.read_bytes()
    text_only = pq.read_table(RunDir(off.run_dir).plan)
    assert text_only.schema.names == PLAN_SCHEMA.names
    default = off.model_copy(update={"plan": off.plan.model_copy(update={"img2img": type(off.plan.img2img)()})})
    build_plan(default, RunDir(off.run_dir))
    assert RunDir(off.run_dir).plan.read_bytes() == off_bytes  # share 0 == no img2img section: byte-identical

    on = img2img_config(share=0.5, strengths=(0.5, 0.75), name="on")
    plan = pq.read_table(RunDir(on.run_dir).plan)
    assert plan.schema.names == PLAN_SCHEMA.names + PLAN_SOURCE_SCHEMA.names
    src = plan.column("source").to_pylist()
    img = np.array([s is not None for s in src])
    assert img.sum() == 12 and len(set(plan.column("image_id").to_pylist())) == plan.num_rows
    same = np.array(plan.column("image_id").to_pylist()) == np.array(text_only.column("image_id").to_pylist())
    assert same[~img].all() and not same[img].any()  # text-to-image ids never change; img2img ids differ
    assert plan.column("seed").equals(text_only.column("seed"))
    for c in range(3):  # 4 img2img rows per class over 3 real images: counts 2, 1, 1
        mine = [s for s, k in zip(src, plan.column("class").to_pylist(), strict=True) if k == c and s]
        assert sorted(Counter(mine).values()) == [1, 1, 2]
    strengths = {s for s in plan.column("strength").to_pylist() if s is not None}
    assert strengths == {0.5, 0.75}


# ------------------------------------------------------------------------------------------------------- backend


def test_fit_image():
    im = Image.new("RGB", (60, 20), (255, 0, 0))
    assert fit_image(im.convert("L"), 32, 32).size == (32, 32) and fit_image(im, 32, 32).mode == "RGB"


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 60), st.floats(0.001, 1.0))
@example(1, 0.6)
@example(25, 0.5)
@example(1, 0.1)
@example(1, 0.49999999999999994)  # just below 1/2: 2 * strength is 0.9999999999999999, so 3 steps
@example(1, 0.19999999999999998)
def test_img2img_steps_are_the_fewest_that_run_one_denoising_step(steps, strength):
    n = img2img_steps(steps, strength)
    assert n >= steps and int(n * strength) >= 1  # diffusers runs int(num_inference_steps * strength) steps
    assert n == steps or int((n - 1) * strength) < 1  # and no more are asked than that needs


def test_img2img_steps_examples():
    assert [img2img_steps(1, s) for s in (1.0, 0.6, 0.5, 0.3, 0.1)] == [1, 2, 2, 4, 10]
    assert img2img_steps(25, 0.5) == 25 and img2img_steps(1, 0.49999999999999994) == 3


def test_diffusers_backend_makes_img2img_rows_through_the_image_pipeline(tiny_model_dir, tmp_path):
    from synthdiv.config.models import GeneratorSpec
    from synthdiv.models.generators import create_generator

    gen = create_generator(GeneratorSpec(model=str(tiny_model_dir), device="cpu", options={"steps": 2}))
    real = Image.open(sorted((SMOKE_DATA / "train" / "bag").iterdir())[0])
    prompts, seeds = ["a bag", "a bag", "a bag"], [1, 1, 1]
    mixed = gen.generate(prompts, seeds, None, [None, real, real], [None, 0.3, 0.9])
    assert type(gen._img2img).__name__ == "StableDiffusionImg2ImgPipeline" and gen._img2img.unet is gen.pipe.unet
    assert all(im.size == (gen.width, gen.height) for im in mixed)
    arrs = [np.asarray(im, dtype=np.int16) for im in mixed]
    assert np.abs(arrs[0] - arrs[1]).max() > 0 and np.abs(arrs[1] - arrs[2]).max() > 0
    again = gen.generate(["a bag"], [1], None, [real], [0.3])
    assert np.array_equal(np.asarray(again[0]), np.asarray(mixed[1]))  # seeded, and independent of its batch
    text = gen.generate(["a bag"], [1])
    assert np.array_equal(np.asarray(text[0]), np.asarray(mixed[0]))


# ------------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_local_runner_makes_img2img_rows_exactly_once_with_provenance(img2img_config):
    cfg = img2img_config(share=0.5, strengths=(0.5, 0.8))
    run = RunDir(cfg.run_dir)
    summary = generate_images(cfg, run)
    assert summary["made_shards"] == 6
    manifest = read_manifest(run)
    plan = pq.read_table(run.plan)
    assert manifest.num_rows == 24 and sorted(manifest.column("image_id").to_pylist()) == sorted(
        plan.column("image_id").to_pylist())
    by_id = dict(zip(plan.column("image_id").to_pylist(), plan.column("source").to_pylist(), strict=True))
    assert {i: s for i, s in zip(manifest.column("image_id").to_pylist(), manifest.column("source").to_pylist(),
                                 strict=True)} == by_id
    with tarfile.open(run.shard_tar(0)) as tf:
        metas = [json.load(tf.extractfile(m)) for m in tf.getmembers() if m.name.endswith(".json")]
    assert {type(m["source"]) for m in metas} == {str} and {type(m["strength"]) for m in metas} == {float}
    assert any(m["source"] and m["strength"] in (0.5, 0.8) for m in metas)

    # resume: a lost shard is remade with the same bytes, the others are not touched
    before = {s: run.shard_tar(s).read_bytes() for s in range(6)}
    run.shard_tar(2).unlink()
    run.manifest_part(2).unlink()
    mtime = run.shard_tar(0).stat().st_mtime_ns
    again = generate_images(cfg, run)
    assert again["made_shards"] == 1 and run.shard_tar(0).stat().st_mtime_ns == mtime
    assert all(run.shard_tar(s).read_bytes() == before[s] for s in range(6))
    assert read_manifest(run).num_rows == 24


def test_a_missing_source_image_is_one_line_naming_it(img2img_config, tmp_path):
    cfg = img2img_config(share=1.0, per_class=2, shard_size=2)
    plan = pq.read_table(RunDir(cfg.run_dir).plan)
    first = plan.column("source")[0].as_py()
    cls = plan.column("class")[0].as_py()
    (tmp_path / "real" / CLASSES[cls] / first).unlink()
    with pytest.raises(InputError, match=f"{first}: the source real image of plan image .* is gone"):
        generate_images(cfg, RunDir(cfg.run_dir))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_memorization_check_runs_on_img2img_output(img2img_config, tmp_path):
    """Image-to-image is where copies of real images can happen: the score stage compares every img2img image with
    the real images of its class, and an output that is a copy of one (planted here: the tiny random VAE cannot
    reconstruct, so no real copy happens by itself) is flagged as memorized and dropped by the `memorized` filter."""
    from synthdiv.engine.runner import run_stage
    from synthdiv.stages.generate.reader import image_bytes
    from synthdiv.stages.score.reader import filtered_manifest

    cfg = img2img_config(share=1.0, per_class=3, shard_size=3)
    run = RunDir(cfg.run_dir)
    generate_images(cfg, run)
    manifest = read_manifest(run)
    assert all(s is not None for s in manifest.column("source").to_pylist())  # every image starts from a real one
    first = manifest.slice(0, 1)
    row = first.to_pylist()[0]
    real_dir = Path(json.loads(run.resolved.read_text().splitlines()[row["class"]])["real_dir"])
    (real_dir / "planted.jpg").write_bytes(image_bytes(run, first)[0])  # a real image the output is a copy of
    cfg = cfg.model_copy(update={"score": cfg.score.model_copy(update={
        "real_per_class": None,
        "duplicates": cfg.score.duplicates.model_copy(update={"real_threshold": 0.999})})})
    run_stage(cfg, "score")
    scores = pq.read_table(run.scores).to_pylist()
    assert all(s["real_nn"] is not None and s["real_nn_cosine"] is not None for s in scores)
    flagged = {s["image_id"] for s in scores if s["memorized"]}
    assert row["image_id"] in flagged
    kept = filtered_manifest(cfg, run, ["memorized"])
    assert row["image_id"] not in kept.column("image_id").to_pylist()
    assert kept.num_rows == manifest.num_rows - len(flagged)
