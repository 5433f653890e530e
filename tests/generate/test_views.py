"""After generation: CLIP scores, the filter view, the estimate and the contact sheet (one generated run shared)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from rich.console import Console

from synthdiv.config.generate import ScoreConfig
from synthdiv.config.loader import config_from_dict
from synthdiv.config.models import generator_id
from synthdiv.core.rundir import RunDir
from synthdiv.engine.estimate import estimate
from synthdiv.engine.runner import run_stage
from synthdiv.errors import InputError
from synthdiv.stages.generate.contact_sheet import contact_sheet
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.score.filters import keep_mask
from synthdiv.stages.score.reader import filtered_manifest
from synthdiv.stages.score.stage import score_matrix

from .conftest import write_inputs


@pytest.fixture(scope="module")
def generated(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("views")
    cfg = config_from_dict({
        "run_dir": str(root / "run"),
        "models": {"generator": {"model": str(tiny_model_dir), "device": "cpu", "options": {"steps": 1}},
                   "clip": {"device": "cpu"}},
        "generate": {"batch_size": 2, "torch_threads": 1}, "plan": {"shard_size": 2},
        "report": {"samples_per_class": 3},
    })
    run = RunDir(cfg.run_dir)
    write_inputs(run, 2, 2, generator_id(cfg.models.generator))
    run_stage(cfg, "generate")
    return cfg, run


@pytest.fixture
def scored(generated):
    """The generated run after the score stage (a no-op once scored): each test that reads scores asks for it, so
    every test passes alone and in any order."""
    cfg, run = generated
    run_stage(cfg, "score")
    return cfg, run


def _text(renderable) -> str:
    console = Console(record=True, width=200)
    console.print(renderable)
    return console.export_text()


def test_score_matrix_ranks_and_margins():
    img = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    txt = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]], dtype=np.float32)
    out = score_matrix(img, txt, np.array([0, 0, 2]))
    np.testing.assert_allclose(out["similarity"], [1.0, 0.6, 0.6], rtol=1e-6)
    assert out["class_rank"].tolist() == [0, 2, 1]
    np.testing.assert_allclose(out["margin"], [0.2, -0.36, -0.4], rtol=1e-5)


def test_keep_mask_threshold_quantile_and_unscored():
    sim = np.array([0.1, 0.5, 0.9, 0.3, np.nan, 0.7])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert keep_mask(sim, labels, 0.4, None).tolist() == [False, True, True, False, False, True]
    assert keep_mask(sim, labels, None, 0.5).tolist() == [False, True, True, False, False, True]
    assert keep_mask(sim, labels, None, 1.0).tolist() == [True, True, True, True, False, True]


def test_score_stage_and_filter_view(generated):
    cfg, run = generated
    summary = run_stage(cfg, "score")
    scores, manifest = pq.read_table(run.scores), read_manifest(run)
    assert summary["scored"] == manifest.num_rows == 6
    assert scores.column("image_id").to_pylist() == manifest.column("image_id").to_pylist()
    sim, rank = scores.column("similarity").to_numpy(), scores.column("class_rank").to_numpy()
    assert np.all(np.abs(sim) <= 1.0001) and set(rank.tolist()) <= {0, 1, 2}
    assert np.array_equal(rank == 0, scores.column("margin").to_numpy() >= 0)
    assert filtered_manifest(cfg, run).equals(manifest)  # no filter: every row
    top = cfg.model_copy(update={"score": ScoreConfig(keep_quantile=0.33)})
    kept = filtered_manifest(top, run)
    assert sorted(kept.column("class").to_pylist()) == [0, 1, 2]  # the best image of each class
    strict = cfg.model_copy(update={"score": ScoreConfig(min_similarity=float(np.median(sim)))})
    assert filtered_manifest(strict, run).num_rows == int((sim >= np.median(sim)).sum())
    assert len(list(run.shards.glob("*.tar"))) == 3  # nothing deleted


def test_rescoring_reuses_the_scores_of_unchanged_shards(scored):
    import os

    cfg, run = scored
    before = pq.read_table(run.scores)
    assert run_stage(cfg, "score", redo=True)["cached_shards"] == 3
    assert pq.read_table(run.scores).equals(before)
    tar = sorted(run.shards.glob("*.tar"))[1]
    os.utime(tar, ns=(tar.stat().st_atime_ns, tar.stat().st_mtime_ns + 10**9))  # as if the shard were redone
    assert run_stage(cfg, "score", redo=True)["cached_shards"] == 2
    assert pq.read_table(run.scores).equals(before)


def test_estimate_from_plan_measured_size_and_rate(generated):
    cfg, _ = generated
    text = _text(estimate(cfg, 2.0))
    assert "6 made so far" in text and "2 images per shard" in text
    assert "measured on 3 shard(s)" in text and "--images-per-second" in text
    assert "3 s" in text  # 6 images at 2 img/s, never "0.00 GPU-hours"
    assert RunDir(cfg.run_dir).read_state("generate").summary["device"] == "cpu"  # recorded where it ran
    measured = _text(estimate(cfg))
    assert "per CPU: measured in this run, on cpu" in measured  # the device the rate was measured on, not "per GPU"
    assert "generation CPU time" in measured and "generation GPU" not in measured
    with pytest.raises(InputError, match="--images-per-second: expected a positive number"):
        estimate(cfg, 0.0)


def test_estimate_before_planning(make_config):
    cfg = make_config(plan={"images_per_class": 1300, "shard_size": 1000})
    text = _text(estimate(cfg, 6.3))  # no classes stage yet: ImageNet-1k's classes from its metadata
    assert "1,300,000" in text and "1,300" in text and "guessed for 32x32" in text
    assert "57 h (2 days)" in text  # 1.3M / 6.3 img/s


def test_contact_sheet_all_and_one_class(generated, tmp_path):
    cfg, run = generated
    path = contact_sheet(cfg)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (160 + 3 * 96, 3 * 96)
        cell = np.asarray(img.convert("RGB"))[2:90, 162:250]
        assert cell.std() > 0  # an image was pasted, not a blank cell
    one = contact_sheet(cfg, "crane", tmp_path / "crane.png")
    with Image.open(one) as img:
        assert img.size == (160 + 3 * 96, 96)
    with pytest.raises(InputError, match="--class 'heron'"):
        contact_sheet(cfg, "heron")


def test_cli_estimate_and_samples(generated, tmp_path, capsys):
    from synthdiv.cli.app import main

    cfg, _ = generated
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    assert main(["estimate", "-c", str(config), "--images-per-second", "3"]) == 0
    assert "generation GPU time" in capsys.readouterr().out
    out = tmp_path / "s.png"
    assert main(["show", "samples", "-c", str(config), "--class", "goldfish", "-o", str(out)]) == 0
    assert out.is_file()
    assert main(["show", "samples", "-c", str(config), "--class", "heron"]) == 2


def test_shards_read_with_webdataset(generated):
    import webdataset as wds

    _, run = generated
    manifest = read_manifest(run)
    urls = [str(p) for p in sorted(run.shards.glob("shard-*.tar"))]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil"))
    assert [s["__key__"] for s in samples] == manifest.column("image_id").to_pylist()
    assert all(s["json"]["image_id"] == s["__key__"] and s["jpg"].size == (32, 32) for s in samples)
