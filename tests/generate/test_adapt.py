"""Adaptive rounds: a plan that only grew keeps generate's shards and its fingerprint, a round follows the variant's
per-class errors, and ``synthdiv adapt`` runs the rounds end to end, resumably, making every image exactly once."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from synthdiv.core.pipeline import get_spec
from synthdiv.core.rundir import RunDir
from synthdiv.core.status import fingerprint, stage_status
from synthdiv.engine.adapt import adapt_run, add_round
from synthdiv.engine.runner import run_stage
from synthdiv.errors import ConfigError, InputError
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.plan.adaptive import append_round
from synthdiv.stages.plan.reader import plan_base_digest, plan_rounds, read_plan
from synthdiv.stages.plan.rounds import grow_plan
from synthdiv.stages.prompts.reader import read_prompts
from synthdiv.utils.hashing import file_digest
from synthdiv.utils.io import atomic_write_json, atomic_write_jsonl
from tests.generate.conftest import CLASS_NAMES

REPO = Path(__file__).resolve().parents[2]


def _grow(cfg, counts) -> None:
    run = RunDir(cfg.run_dir)
    from synthdiv.config.models import generator_id

    rows = append_round(read_plan(run), read_prompts(run), np.asarray(counts), cfg.seed,
                        generator_id(cfg.models.generator), cfg.plan.shard_size)
    grow_plan(run, rows, {"round": len(plan_rounds(run.plan)) + 1, "images": int(np.sum(counts))})


def test_a_grown_plan_keeps_the_shards_and_generate_makes_only_the_new_ones(gen_config):
    cfg = gen_config(images_per_class=2, shard_size=2)
    run = RunDir(cfg.run_dir)
    run_stage(cfg, "generate")
    spec = get_spec("generate")
    before_fp, first = fingerprint(cfg, spec, run), file_digest(run.plan)
    stamps = {s: run.shard_tar(s).stat().st_mtime_ns for s in range(3)}

    _grow(cfg, [1, 2, 1])
    from synthdiv.stages.generate.plan_check import check_plan_file

    assert check_plan_file(run.plan) == 10  # the grown plan keeps the plan contract
    assert file_digest(run.plan) != first and plan_base_digest(run.plan) == first
    assert fingerprint(cfg, spec, run) == before_fp  # grown, not changed: no refusal, no redo
    assert plan_rounds(run.plan) == [{"round": 1, "images": 4}]
    row = {r.stage: r for r in stage_status(cfg)}["generate"]
    assert row.state == "partial" and "6/10 images, 3/5 shards, 1 adaptive round" in row.detail

    summary = run_stage(cfg, "generate")
    assert summary["made_shards"] == 2 and summary["made_images"] == 4
    assert {s: run.shard_tar(s).stat().st_mtime_ns for s in range(3)} == stamps  # the first round's shards untouched
    plan, manifest = read_plan(run), read_manifest(run)
    assert manifest.column("image_id").to_pylist() == plan.column("image_id").to_pylist()
    assert len(set(plan.column("image_id").to_pylist())) == plan.num_rows == 10
    assert run_stage(cfg, "generate")["skipped"]
    meta = pq.ParquetFile(run.plan).metadata
    assert meta.num_row_groups >= 3 and all(  # one row group per new shard: a rank reads only its own
        meta.row_group(rg).column(4).statistics.min == meta.row_group(rg).column(4).statistics.max
        for rg in range(meta.num_row_groups - 2, meta.num_row_groups))


def test_a_plan_redone_without_its_rounds_hides_their_shards(gen_config):
    from tests.generate.conftest import write_inputs

    cfg = gen_config(images_per_class=2, shard_size=2)
    run = RunDir(cfg.run_dir)
    run_stage(cfg, "generate")
    plain = run.plan.read_bytes()
    _grow(cfg, [2, 0, 0])
    run_stage(cfg, "generate")
    assert read_manifest(run).num_rows == 8
    from synthdiv.config.models import generator_id

    write_inputs(run, 2, 2, generator_id(cfg.models.generator))  # the plan as the plan stage wrote it, no rounds
    assert run.plan.read_bytes() == plain and run.shard_tar(3).exists()
    assert run_stage(cfg, "generate")["skipped"]
    assert read_manifest(run).num_rows == 6  # shard 3 is on disk but in no plan: not part of the run


def test_a_round_after_a_plan_redone_without_its_rounds_makes_its_own_images(gen_config):
    """The dropped round's shard is still on disk where the new round's first shard goes: adapt clears it, so
    generate makes the new round's images instead of finishing 'done' with the dropped round's."""
    from synthdiv.config.models import generator_id
    from tests.generate.conftest import write_inputs

    cfg = gen_config(images_per_class=2, shard_size=2)
    cfg = cfg.model_copy(update={"adapt": cfg.adapt.model_copy(update={"rounds": 1, "images_per_round": 2})})
    run = _adapt_inputs(cfg, {"goldfish": 0.9, "crane": 0.4, "tabby cat": 0.5})
    run_stage(cfg, "generate")
    _grow(cfg, [2, 0, 0])
    run_stage(cfg, "generate")
    dropped = set(read_manifest(run).column("image_id").to_pylist()[6:])
    write_inputs(run, 2, 2, generator_id(cfg.models.generator))  # the plan redone, without its round
    assert run.shard_tar(3).exists() and run.manifest_part(3).exists()
    record = add_round(cfg, run, "main")
    assert record["first_shard"] == 3 and record["images"] == 2
    run_stage(cfg, "generate")
    plan, manifest = read_plan(run), read_manifest(run)
    assert manifest.column("image_id").to_pylist() == plan.column("image_id").to_pylist()
    new = set(plan.column("image_id").to_pylist()[6:])
    assert len(new) == 2 and new.isdisjoint(dropped)
    with tarfile.open(run.shard_tar(3)) as tf:
        assert {n.split(".", 1)[0] for n in tf.getnames()} == new  # the new round's images, made


def test_grow_plan_refuses_an_id_twice_and_leaves_the_plan(gen_config):
    cfg = gen_config(images_per_class=2, shard_size=2)
    run = RunDir(cfg.run_dir)
    before = run.plan.read_bytes()
    plan = read_plan(run)
    with pytest.raises(InputError, match="would plan an image id twice"):
        grow_plan(run, plan.slice(0, 2), {"round": 1})
    assert run.plan.read_bytes() == before


# grow_plan in a process that is SIGKILLed once the plan's old row group and the round's first shard are written
KILLED_GROW = """
import os, signal, sys
import pyarrow as pa, pyarrow.parquet as pq
from synthdiv.stages.plan.rounds import grow_plan
from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import PLAN_SCHEMA
real, calls = pq.ParquetWriter.write_table, []
def write_then_die(self, *args, **kwargs):
    real(self, *args, **kwargs)
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
pq.ParquetWriter.write_table = write_then_die
rows = pa.table({"image_id": ["r1", "r2"], "class": pa.array([0, 1], pa.int32()), "prompt_id": ["p0", "p1"],
                 "seed": [7, 8], "shard": pa.array([1, 2], pa.int32())}, schema=PLAN_SCHEMA)
grow_plan(RunDir(sys.argv[1]), rows, {"round": 1, "images": 2})
"""


def test_a_round_killed_while_grow_plan_writes_is_not_in_the_plan(tmp_path):
    import subprocess
    import sys

    import pyarrow as pa

    from synthdiv.core.schemas import PLAN_SCHEMA
    from synthdiv.utils.io import write_parquet_atomic

    run = RunDir(tmp_path / "run")
    first = pa.table({"image_id": ["a", "b"], "class": pa.array([0, 1], pa.int32()), "prompt_id": ["p0", "p1"],
                      "seed": [1, 2], "shard": pa.array([0, 0], pa.int32())}, schema=PLAN_SCHEMA)
    write_parquet_atomic(first, run.plan)
    before = run.plan.read_bytes()
    killed = subprocess.run([sys.executable, "-c", KILLED_GROW, str(run.root)], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]  # killed in the middle of the round, as intended
    assert run.plan.read_bytes() == before and plan_rounds(run.plan) == []  # not a row of the round, no record
    rows = pa.table({"image_id": ["r1"], "class": pa.array([0], pa.int32()), "prompt_id": ["p0"], "seed": [7],
                     "shard": pa.array([1], pa.int32())}, schema=PLAN_SCHEMA)
    grow_plan(run, rows, {"round": 1, "images": 1})  # the rerun plans the round whole
    assert read_plan(run).column("image_id").to_pylist() == ["a", "b", "r1"]
    assert plan_rounds(run.plan) == [{"round": 1, "images": 1}]


def _adapt_inputs(cfg, per_class: dict[str, float | None]) -> RunDir:
    run = RunDir(cfg.run_dir)
    atomic_write_jsonl(run.classes, [{"index": c, "name": n, "wnid": None, "definition": None, "real_images": 0,
                                      "real_dir": None} for c, n in enumerate(CLASS_NAMES)])
    atomic_write_json(run.eval / "main" / "test.json", {"variant": "main", "set": "test", "per_class": per_class})
    return run


def test_a_round_follows_the_variant_errors_and_is_recorded(gen_config):
    cfg = gen_config(images_per_class=2, shard_size=2)
    cfg = cfg.model_copy(update={"adapt": cfg.adapt.model_copy(update={"rounds": 1, "images_per_round": 10})})
    run = _adapt_inputs(cfg, {"goldfish": 0.9, "crane": 0.4, "tabby cat": None})
    run_stage(cfg, "generate")
    record = add_round(cfg, run, "main")
    # errors 0.1, 0.6 and (no test images) their mean 0.35; every image kept: 10 images in proportion
    assert record["errors"] == [0.1, 0.6, 0.35] and record["keep_rates"] == [1.0, 1.0, 1.0]
    assert record["counts"] == [1, 6, 3] and record["images"] == 10 and record["first_shard"] == 3
    assert plan_rounds(run.plan) == [record]
    added = read_plan(run).slice(6)
    assert np.bincount(added.column("class").to_numpy()).tolist() == [1, 6, 3]
    # within adapt.max_per_class: crane is capped, and what it cannot take goes to the others by need
    tight = cfg.model_copy(update={"adapt": cfg.adapt.model_copy(update={"max_per_class": 4})})
    assert add_round(tight, run, "main")["counts"] == [2, 4, 4]


def test_a_round_without_results_names_the_file(gen_config, monkeypatch):
    cfg = gen_config(images_per_class=2, shard_size=2)
    run = _adapt_inputs(cfg, {"goldfish": 0.9, "crane": 0.4, "tabby cat": 0.5})
    with pytest.raises(InputError, match=r"eval/real/test\.json: not found.*variant 'real'"):
        add_round(cfg, run, "real")
    (run.eval / "main" / "test.json").write_text("{not json")
    with pytest.raises(InputError, match=r"eval/main/test\.json: cannot read it as an evaluate result"):
        add_round(cfg, run, "main")
    wrong = cfg.model_copy(update={"adapt": cfg.adapt.model_copy(update={"rounds": 1, "images_per_round": 4,
                                                                         "variant": "nope"})})
    with pytest.raises(ConfigError, match=r"adapt.variant: 'nope' is not a train variant"):
        adapt_run(wrong)
    no_set = cfg.model_copy(update={"adapt": cfg.adapt.model_copy(update={"rounds": 1, "images_per_round": 4,
                                                                          "eval_set": "val"})})
    with pytest.raises(ConfigError, match=r"adapt.eval_set: 'val' is not an evaluate set of this config; expected "
                                          r"one of: none \(set evaluate.test_root, or add a validation folder"):
        adapt_run(no_set)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ConfigError, match=r"launched as several ranks"):
        adapt_run(no_set)


def _config(tmp_path: Path, rounds: int, pooled: bool = False) -> Path:
    smoke = REPO / "data" / "fashion-mnist-smoke"
    pool = ", pool_factor: 2, within_class: yield, select: margin" if pooled else ""
    text = f"""
run_dir: {tmp_path / 'run'}
models:
  clip: {{backend: open_clip, model: embedded, device: cpu}}
  generator: {{backend: diffusers, model: embedded, device: cpu, options: {{steps: 1}}}}
classes: {{source: {smoke / 'train'}, max_classes: 3}}
disambiguate: {{enabled: false}}
prompts: {{contexts_per_class: 0, styles: 0, proportions: {{base: 1.0, context: 0, style: 0}}}}
plan: {{images_per_class: 2, shard_size: 4}}
generate: {{batch_size: 4, torch_threads: 1}}
train: {{model: test_resnet, img_size: 32, epochs: 1, batch_size: 16, synthetic_fraction: 0.25, auto_augment: null,
         num_workers: 0, torch_threads: 1, max_steps: 2, val_batches: 1,
         variants: {{real: {{synthetic_fraction: 0, aux_norm: none}}, real+syn: {{}}}}}}
evaluate: {{test_root: {smoke / 'test'}, batch_size: 64, num_workers: 0, torch_threads: 1,
            ood: [{{name: val, root: {smoke / 'test'}, folders: name}}]}}
report: {{samples_per_class: 1, bootstrap: 100}}
adapt: {{rounds: {rounds}, images_per_round: 6, min_per_class: 1, eval_set: val{pool}}}
"""
    path = tmp_path / f"adapt-{rounds}.yaml"
    path.write_text(text)
    return path


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_adapt_command_runs_rounds_resumably_and_makes_each_image_once(tmp_path: Path, capsys):
    from synthdiv.cli.app import main
    from synthdiv.config.loader import load_config

    one = _config(tmp_path, 1)
    assert main(["adapt", "-c", str(one)]) == 0
    assert "1 round(s) in the plan (1 added now)" in capsys.readouterr().out
    run = RunDir(tmp_path / "run")
    (record,) = plan_rounds(run.plan)
    assert record["variant"] == "real+syn" and record["eval_set"] == "val"
    assert record["images"] == 6 and min(record["counts"]) >= 1

    # round 2 is learner-steered (pool_factor 2, within_class yield): killed after it was written to the plan,
    # before any of its images, the rerun makes them, adds no round, and trains on the informative half of its pool
    two = load_config(_config(tmp_path, 2, pooled=True))
    add_round(two, run, "real+syn")
    second = plan_rounds(run.plan)[1]
    assert second["images"] == 12 and sum(second["keep"]) == 6 and second["within_class"] == "yield"
    assert (run.round_model(2) / "model.safetensors").is_file()
    assert run.manifest_part(int(second["first_shard"])).exists() is False
    assert main(["adapt", "-c", str(_config(tmp_path, 2, pooled=True))]) == 0
    assert "2 round(s) in the plan (0 added now), 18 images added" in capsys.readouterr().out
    plan, manifest = read_plan(run), read_manifest(run)
    assert plan.num_rows == 6 + 6 + 12 and len(set(plan.column("image_id").to_pylist())) == plan.num_rows
    assert sorted(manifest.column("image_id").to_pylist()) == sorted(plan.column("image_id").to_pylist())
    kept = pq.read_table(run.learner_scores)
    assert kept.column("round").to_pylist() == [2] * 12 and sum(kept.column("kept").to_pylist()) == 6
    assert json.loads((run.train / "real+syn" / "data.json").read_text())["synthetic_images"] == 6 + 6 + 6
    summary = json.loads((run.eval / "summary.json").read_text())
    assert set(summary) == {"real", "real+syn"}
    html = (run.report / "index.html").read_text()
    # the report lists both rounds, in the rounds table and in what each round cost
    assert "Adaptive rounds" in html and html.count("real+syn on val") == 2 * 2
    assert "What each adaptive round cost" in html
    capsys.readouterr()
    assert main(["show", "rounds", "-c", str(_config(tmp_path, 2, pooled=True))]) == 0
    shown = capsys.readouterr().out
    assert shown.count("real+syn on val") == 2 and "given most" in shown
    digest = file_digest(run.plan)
    assert main(["adapt", "-c", str(_config(tmp_path, 2, pooled=True))]) == 0  # nothing left: no round, no stage
    assert file_digest(run.plan) == digest
    assert "(0 added now)" in capsys.readouterr().out


def test_an_img2img_plan_grows_with_text_to_image_rows(tmp_path):
    import pyarrow as pa

    from synthdiv.core.schemas import PLAN_SCHEMA, PLAN_SOURCE_SCHEMA
    from synthdiv.stages.generate.plan_check import check_plan_file
    from synthdiv.utils.io import write_parquet_atomic

    run = RunDir(tmp_path / "run")
    schema = pa.schema([*PLAN_SCHEMA, *PLAN_SOURCE_SCHEMA])
    first = pa.table({"image_id": ["a", "b"], "class": pa.array([0, 1], pa.int32()), "prompt_id": ["p0", "p1"],
                      "seed": [1, 2], "shard": pa.array([0, 0], pa.int32()), "source": ["x.png", None],
                      "strength": pa.array([0.5, None], pa.float32())}, schema=schema)
    write_parquet_atomic(first, run.plan)
    rows = pa.table({"image_id": ["c"], "class": pa.array([1], pa.int32()), "prompt_id": ["p1"], "seed": [3],
                     "shard": pa.array([1], pa.int32())}, schema=PLAN_SCHEMA)
    grow_plan(run, rows, {"round": 1, "images": 1})
    plan = pq.read_table(run.plan)
    assert plan.column("image_id").to_pylist() == ["a", "b", "c"]
    assert plan.column("source").to_pylist() == ["x.png", None, None]  # the round's rows are text-to-image
    assert plan.schema.remove_metadata() == schema and check_plan_file(run.plan) == 3


def test_a_damaged_plan_is_named_by_the_plan_check(gen_config):
    cfg = gen_config(images_per_class=2, shard_size=2)
    run = RunDir(cfg.run_dir)
    run_stage(cfg, "generate")
    run.plan.write_bytes(b"not parquet")
    assert plan_base_digest(run.plan) == file_digest(run.plan)  # the file's own digest: the fingerprint changed
    with pytest.raises(InputError, match=r"plan\.parquet: cannot read the plan as Parquet"):
        run_stage(cfg, "generate", redo=True)

