"""Evaluation: metrics, long-tail splits, folder class maps, ImageNet-R/-A subsets, shifted copies, and the
evaluate stage run through the engine on an exported model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import timm
from PIL import Image

from synthdiv.core.rundir import RunDir
from synthdiv.data.eval_sets import EvalSet, folder_set, shift_transform, subset_classes
from synthdiv.data.predict import eval_transform, predict
from synthdiv.errors import InputError
from synthdiv.metrics.accuracy import accuracy_report, long_tail_splits
from synthdiv.utils.io import read_jsonl


def test_top1_top5_and_per_class_accuracy():
    labels = np.array([0, 0, 1, 2, 2, 2])
    topk = np.array([[0, 1], [1, 0], [1, 2], [0, 1], [2, 0], [1, 2]])
    r = accuracy_report(topk, labels, ["a", "b", "c", "d"])
    assert r["top1"] == pytest.approx(3 / 6) and r["top5"] == pytest.approx(5 / 6)
    assert r["per_class"] == {"a": 0.5, "b": 1.0, "c": pytest.approx(1 / 3), "d": None}
    assert r["per_class_images"] == {"a": 2, "b": 1, "c": 3, "d": 0}


def test_long_tail_splits_by_training_counts():
    labels = np.array([0, 0, 1, 1, 2, 2])
    hit1 = np.array([True, True, True, False, False, False])
    out = long_tail_splits(hit1, labels, [500, 20, 19], many=100, few=20)
    assert out["many"] == {"classes": 1, "images": 2, "top1": 1.0}
    assert out["medium"] == {"classes": 1, "images": 2, "top1": 0.5}  # 20 is medium: 20-100 inclusive
    assert out["few"] == {"classes": 1, "images": 2, "top1": 0.0}


def _classes(wnids):
    return [{"index": i, "name": f"c{i}", "wnid": w} for i, w in enumerate(wnids)]


def test_folders_map_to_classes_by_wnid_index_or_name(tmp_path):
    classes = _classes(["n01", "n02", "n03"])
    for folder in ("n02", "2", "c1", "zzz"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (4, 4)).save(tmp_path / folder / "x.png")
    assert folder_set(tmp_path, "wnid", classes, "t").labels.tolist() == [1]
    assert folder_set(tmp_path, "index", classes, "t").labels.tolist() == [2]
    # by name (as the classes stage reads ImageFolder names): the wnid folder n02 and the name folder c1 are class 1
    assert sorted(folder_set(tmp_path, "name", classes, "t").labels.tolist()) == [1, 1]
    with pytest.raises(InputError, match="evaluate.ood"):
        folder_set(tmp_path / "zzz", "wnid", classes, "evaluate.ood[x]")


def test_name_folders_match_like_the_classes_stage(tmp_path):
    classes = [{"index": 0, "name": "ankle boot", "wnid": None}, {"index": 1, "name": "t-shirt top", "wnid": None}]
    for folder in ("ankle_boot", "T-shirt_top"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (4, 4)).save(tmp_path / folder / "x.png")
    assert sorted(folder_set(tmp_path, "name", classes, "t").labels.tolist()) == [0, 1]


def test_imagenet_r_and_a_subsets_come_from_timms_synset_lists():
    from importlib import resources

    info = resources.files("timm").joinpath("data/_info")
    r_wnids = info.joinpath("imagenet_r_synsets.txt").read_text().split()
    all_wnids = info.joinpath("imagenet_synsets.txt").read_text().split()
    classes = _classes(all_wnids)
    mask = subset_classes("imagenet-r", classes)
    assert mask.sum() == 200 and set(np.array(all_wnids)[mask]) == set(r_wnids)
    assert subset_classes("imagenet-a", classes).sum() == 200
    with pytest.raises(InputError, match="imagenet-r"):
        subset_classes("imagenet-r", _classes(["n99999999"]))


@pytest.mark.parametrize("kind", ["edges", "inverted", "noise"])
def test_shifts_are_deterministic_and_change_the_image(kind):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    f = shift_transform(kind)
    a, b = np.asarray(f(img)), np.asarray(f(img))
    assert a.shape == (16, 16, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, np.asarray(img))
    if kind == "inverted":
        assert np.array_equal(a, 255 - np.asarray(img))


def test_the_evaluate_stage_measures_the_exported_models(toy, make_config):
    from synthdiv.engine.runner import run_stage

    cfg = make_config(
        run_dir=str(toy["run"]),
        train={"model": "test_resnet", "img_size": 16, "batch_size": 8, "num_workers": 0, "lr": 1e-2,
               "max_steps": 12, "auto_augment": None, "eval_crop_pct": 1.0,
               "variants": {"real": {"synthetic_fraction": 0}, "real+syn": {}}},
        evaluate={"test_root": str(toy["test"]), "shifts": ["edges", "inverted", "noise"], "num_workers": 0,
                  "ood": [{"name": "sketchy", "root": str(toy["test"]), "folders": "name"}]},
    )
    with pytest.raises(Exception, match="train"):
        run_stage(cfg, "evaluate")  # evaluate before train: the engine says what to run first
    run_stage(cfg, "train")
    summary = run_stage(cfg, "evaluate")
    run = RunDir(cfg.run_dir)
    for variant in ("real", "real+syn"):
        assert sorted(p.name for p in (run.eval / variant).glob("*.json")) == [
            "sketchy.json", "test-edges.json", "test-inverted.json", "test-noise.json", "test.json"]
        assert len(list((run.eval / variant).glob("*.npz"))) == 5
        report = json.loads((run.eval / variant / "test.json").read_text())
        assert report["images"] == 20 and report["corrupt"] == 0
        assert set(report["per_class"]) == {"class0", "class1", "class2", "class3"}
        assert report["long_tail"]["few"]["classes"] == 4  # 12 training images per class: all few-shot
        # the recorded accuracy is that of the exported model, loaded with plain timm
        model = timm.create_model(f"local-dir:{run.export / variant}", pretrained=True)
        samples = folder_set(toy["test"], "name", [{"index": i, "name": f"class{i}"} for i in range(4)], "t")
        topk, labels, _ = predict(model, EvalSet("test", samples), eval_transform(model), num_workers=0)
        assert report["top1"] == pytest.approx(float((topk[:, 0] == labels).mean()))
        assert summary[variant]["test"] == report["top1"]
        assert summary[variant]["sketchy"] == report["top1"]  # the same images under another name
        # the predictions are kept for the report's intervals and confusions, in the set's order
        with np.load(run.eval / variant / "test.npz") as kept:
            assert np.array_equal(kept["topk"], topk) and np.array_equal(kept["labels"], labels)
        wrong = int((topk[:, 0] != labels).sum())
        assert sum(p["count"] for p in report["confused"]) == wrong
        assert all(p["true_name"] == f"class{p['true']}" for p in report["confused"])
        # validation at each epoch's end on the test set (train.val_batches, default on with evaluate.test_root)
        spe = json.loads((run.train / variant / "data.json").read_text())["steps_per_epoch"]
        rows = read_jsonl(run.train / variant / "metrics.jsonl")
        val = [r for r in rows if r.get("split") == "val"]
        assert [r["step"] for r in val] == sorted({*range(spe, 13, spe), 12})
        # one epoch scale for both kinds of rows: steps done / steps per epoch, so curves line up by epoch
        assert all(r["epoch"] == r["step"] / spe for r in rows)
        assert all(r["val_images"] == 20 and 0 <= r["val_top1"] <= r["val_top5"] <= 1 for r in val)
        assert run.read_state("train").summary[variant]["val_top1"] == val[-1]["val_top1"]  # in its summary line
    assert summary["real"]["test"] > 0.25  # better than chance on 4 separable colours
    assert json.loads((run.eval / "summary.json").read_text())["real"]["test"]["images"] == 20


def test_a_class_subset_restricts_predictions(toy):
    classes = [{"index": i, "name": f"class{i}"} for i in range(4)]
    samples = folder_set(toy["test"], "name", classes, "t")
    model = timm.create_model("test_resnet", num_classes=4, pretrained=False)
    mask = np.array([False, True, False, True])
    topk, _, _ = predict(model, EvalSet("r", samples, class_mask=mask), eval_transform(model), num_workers=0, k=2)
    assert set(topk[:, 0].tolist()) <= {1, 3} and set(topk.ravel().tolist()) <= {1, 3}


def test_corrupt_eval_images_are_counted(toy):
    shutil.copy(__file__, toy["test"] / "class0" / "broken.png")
    classes = [{"index": i, "name": f"class{i}"} for i in range(4)]
    model = timm.create_model("test_resnet", num_classes=4, pretrained=False)
    samples = folder_set(toy["test"], "name", classes, "t")
    topk, labels, corrupt = predict(model, EvalSet("t", samples), eval_transform(model), num_workers=0)
    assert corrupt == 1 and len(labels) == 20


def test_no_eval_sets_is_an_input_error(toy, make_config):
    from synthdiv.stages.evaluate.stage import evaluate_run

    cfg = make_config(run_dir=str(toy["run"]))
    with pytest.raises(InputError, match="evaluate.test_root"):
        evaluate_run(cfg, RunDir(cfg.run_dir))
    cfg = make_config(run_dir=str(toy["run"]), evaluate={"test_root": str(toy["test"])})
    with pytest.raises(InputError, match="no exported model"):
        evaluate_run(cfg, RunDir(cfg.run_dir))
