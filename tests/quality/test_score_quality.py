"""The score stage's quality outputs on a generated toy run (embedded tiny CLIP and diffusion): stored embeddings,
the cross-class probability, planted memorized images, the named filters and their records, ``quality.json``."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from synthdiv.config.loader import config_from_dict
from synthdiv.config.models import generator_id
from synthdiv.core.rundir import RunDir
from synthdiv.engine.runner import run_stage
from synthdiv.errors import ConfigError
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.score.embeddings import load_real, load_synthetic
from synthdiv.stages.score.reader import filtered_manifest
from synthdiv.utils.io import atomic_write_jsonl, read_jsonl
from tests.generate.conftest import write_inputs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _config(root, tiny_model_dir, **score):
    return config_from_dict({
        "run_dir": str(root / "run"),
        "models": {"generator": {"model": str(tiny_model_dir), "device": "cpu", "options": {"steps": 1}},
                   "clip": {"device": "cpu"}},
        "generate": {"batch_size": 2, "torch_threads": 1}, "plan": {"shard_size": 4},
        "classes": {"real_root": str(root / "real")},
        "score": {"real_per_class": None, "duplicates": {"threshold": 0.999, "real_threshold": 0.999}, **score},
    })


@pytest.fixture(scope="module")
def scored(tmp_path_factory, tiny_model_dir):
    """Three classes of four images; the first image of each class is also copied into its class's real images."""
    root = tmp_path_factory.mktemp("quality")
    cfg = _config(root, tiny_model_dir)
    run = RunDir(cfg.run_dir)
    write_inputs(run, 4, 4, generator_id(cfg.models.generator))
    run_stage(cfg, "generate")
    manifest = read_manifest(run)
    label = dict(zip(manifest.column("image_id").to_pylist(), manifest.column("class").to_pylist(), strict=True))
    copied = {}
    for shard in sorted(run.shards.glob("*.tar")):
        with tarfile.open(shard) as tf:
            for m in tf:
                if m.name.endswith(".jpg"):
                    key = m.name[:-4]
                    cls = label[key]
                    if cls not in copied:
                        copied[cls] = key
                        folder = root / "real" / str(cls)
                        folder.mkdir(parents=True)
                        (folder / f"{key}.jpg").write_bytes(tf.extractfile(m).read())
    rows = read_jsonl(run.resolved)
    atomic_write_jsonl(run.resolved, [{**r, "real_dir": str(root / "real" / str(r["index"]))} for r in rows])
    summary = run_stage(cfg, "score")
    return cfg, run, summary, copied


def test_columns_probabilities_and_stored_embeddings(scored):
    cfg, run, summary, _ = scored
    scores = pq.read_table(run.scores)
    assert summary["scored"] == scores.num_rows == 12
    prob, rank = scores.column("prob").to_numpy(), scores.column("class_rank").to_numpy()
    assert ((prob > 0) & (prob <= 1)).all()
    assert (prob[rank == 0] >= 1 / 3 - 1e-6).all()  # the argmax of a softmax over 3 classes has at least 1/3
    assert summary["logit_scale"] > 0
    syn = load_synthetic(run)
    assert syn.emb.dtype == np.float16 and syn.emb.shape[0] == 12
    assert syn.labels.tolist() == sorted(syn.labels.tolist())  # class-sorted: a class is one slice
    assert set(syn.kinds.tolist()) == {"base", "style"}
    np.testing.assert_allclose(np.linalg.norm(syn.emb.astype(np.float32), axis=1), 1.0, atol=2e-3)
    real = load_real(run)
    assert real is not None and len(real.ids) == 3


def test_planted_copies_of_real_images_are_memorized(scored):
    _, run, _, copied = scored
    scores = pq.read_table(run.scores)
    ids = scores.column("image_id").to_pylist()
    memorized = dict(zip(ids, scores.column("memorized").to_pylist(), strict=True))
    assert {i for i, m in memorized.items() if m} == set(copied.values())
    real_nn = dict(zip(ids, scores.column("real_nn").to_pylist(), strict=True))
    assert all(real_nn[key].endswith(f"{key}.jpg") for key in copied.values())
    quality = json.loads((run.root / "quality.json").read_text())
    assert {c: quality["classes"][c]["memorized"] for c in ("0", "1", "2")} == {"0": 1, "1": 1, "2": 1}
    entry = quality["classes"]["0"]
    assert set(entry) >= {"all", "base", "style"} and entry["all"]["images"] == 4
    assert entry["all"]["vendi"] >= 1.0 and entry["all"]["real_images"] == 1


def test_named_filters_are_views_with_records(scored):
    cfg, run, _, copied = scored
    scores = pq.read_table(run.scores)
    manifest = read_manifest(run)
    top1 = cfg.model_copy(update={"train": cfg.train.model_copy(update={"filters": ["clip-top1"]})})
    kept = filtered_manifest(top1, run)
    assert kept.num_rows == int((scores.column("class_rank").to_numpy() == 0).sum())
    record = json.loads((run.root / "filters" / "clip-top1.json").read_text())
    assert record["filters"]["clip-top1"]["top_k"] == 1 and record["kept"] == kept.num_rows
    assert sum(r["images"] for r in record["per_class"]) == 12
    mem = filtered_manifest(top1.model_copy(update={"train": cfg.train.model_copy(
        update={"filters": ["memorized"]})}), run)
    assert set(mem.column("image_id").to_pylist()) == set(manifest.column("image_id").to_pylist()) - set(
        copied.values())
    strict = config_from_dict({**cfg.model_dump(mode="json"), "filters": {
        "sure": {"kind": "cross_class", "min_prob": 0.999}}, "train": {"filters": ["sure"]}})
    assert filtered_manifest(strict, run).num_rows == int((scores.column("prob").to_numpy() >= 0.999).sum())
    with pytest.raises(ConfigError, match="unknown filter 'nope'"):
        filtered_manifest(cfg, run, ["nope"])
    assert len(list(run.shards.glob("*.tar"))) == 3  # nothing deleted


def test_rescoring_at_another_temperature_reuses_the_embeddings(scored, tiny_model_dir, monkeypatch):
    cfg, run, _, _ = scored
    before = pq.read_table(run.scores)
    hot = config_from_dict({**cfg.model_dump(mode="json"), "score": {**cfg.score.model_dump(mode="json"),
                                                                     "temperature": 100.0}})
    summary = run_stage(hot, "score", redo=True)
    after = pq.read_table(run.scores)
    assert summary["cached_shards"] == 3
    assert after.column("similarity").equals(before.column("similarity"))
    np.testing.assert_allclose(after.column("prob").to_numpy(), 1 / 3, atol=0.02)  # a hot softmax is nearly flat
    def no_model(spec, shared=True):  # noqa: ANN001, ANN202
        raise AssertionError("a rescore from the cache loaded CLIP")

    # texts, images and logit scale: all cached
    monkeypatch.setattr("synthdiv.stages.score.stage.create_scorer", no_model)
    cool = config_from_dict({**cfg.model_dump(mode="json"), "score": {**cfg.score.model_dump(mode="json"),
                                                                      "temperature": 2.0}})
    assert run_stage(cool, "score", redo=True)["cached_shards"] == 3
    monkeypatch.undo()
    dedup_all = config_from_dict({**hot.model_dump(mode="json"), "score": {
        **hot.score.model_dump(mode="json"), "duplicates": {"threshold": -0.99, "real_threshold": 0.9999}}})
    run_stage(dedup_all, "score", redo=True)
    dup_of = pq.read_table(run.scores).column("dup_of").to_pylist()
    assert len(set(dup_of)) == 3  # every image of a class within the threshold: one representative per class
    kept = filtered_manifest(dedup_all, run, ["dedup"])
    assert sorted(kept.column("class").to_pylist()) == [0, 1, 2]
    run_stage(cfg, "score", redo=True)  # the module's run back as the other tests expect it, whatever their order
    assert pq.read_table(run.scores).equals(before)


def test_classifier_marks_mislabeled_and_easy_images(scored, tmp_path):
    import timm
    import torch

    from synthdiv.stages.score.classifier import classify_images
    from synthdiv.stages.train.export import export_model

    cfg, run, _, _ = scored
    model = timm.create_model("test_resnet", num_classes=3)
    head = model.get_classifier()
    with torch.no_grad():  # a "real-data model" that is sure every image is class 0
        head.weight.zero_()
        head.bias.copy_(torch.tensor([12.0, 0.0, 0.0]))
    folder = export_model(model, tmp_path / "real-model", data_config={"input_size": (3, 32, 32)})
    sure = config_from_dict({**cfg.model_dump(mode="json"), "score": {
        **cfg.score.model_dump(mode="json"), "classifier": {"model": str(folder), "device": "cpu"}}})
    summary = classify_images(sure, run)
    table = pq.read_table(run.root / "classifier_scores.parquet")
    manifest = read_manifest(run)
    label = dict(zip(manifest.column("image_id").to_pylist(), manifest.column("class").to_pylist(), strict=True))
    cls = np.array([label[i] for i in table.column("image_id").to_pylist()])
    assert summary["images"] == table.num_rows == 12
    assert table.column("easy").to_numpy(zero_copy_only=False).tolist() == (cls == 0).tolist()
    assert table.column("mislabeled").to_numpy(zero_copy_only=False).tolist() == (cls != 0).tolist()
    assert (table.column("top_class").to_numpy()[cls != 0] == 0).all()
    assert summary == classify_images(sure, run)  # the second pass reads its per-shard cache
    view = config_from_dict({**sure.model_dump(mode="json"), "train": {"filters": ["classifier"]}})
    assert filtered_manifest(view, run).num_rows == 0  # every image is either too easy or mislabeled
    only_bad = config_from_dict({**sure.model_dump(mode="json"), "filters": {
        "clf": {"kind": "classifier", "drop": ["mislabeled"]}}, "train": {"filters": ["clf"]}})
    assert sorted(set(filtered_manifest(only_bad, run).column("class").to_pylist())) == [0]


def test_each_variant_trains_on_its_own_filters(scored):
    """``train.filters`` per variant: the real+syn arm without filters sees every image, the one with
    ``memorized`` sees all but the planted copies (its data, not the root's)."""
    from synthdiv.stages.disambiguate.reader import read_resolved
    from synthdiv.stages.train.stage import prepare_data

    cfg, run, _, copied = scored
    variants = {"all": {"synthetic_fraction": 0.5}, "clean": {"synthetic_fraction": 0.5, "filters": ["memorized"]}}
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"variants": variants, "real_root": None})})
    classes = read_resolved(run.resolved)
    sizes = {name: len(prepare_data(cfg, cfg.train.variant(name), run, classes)[1]) for name in variants}
    memorized = sum(pq.read_table(run.scores).column("memorized").to_pylist())  # the planted copies, as scored now
    assert memorized >= 1 and sizes == {"all": 12, "clean": 12 - memorized}
