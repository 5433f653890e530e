"""Learner-feedback rounds: a pooled round keeps, per class, the images its model finds most informative (a recorded,
reproducible view; nothing deleted), and ``within_class: yield`` moves a round's prompts toward the contexts and
styles whose images were kept."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthdiv.core.schemas import LEARNER_SCORES_SCHEMA, with_format, written_format
from synthdiv.engine.adapt import add_round
from synthdiv.engine.runner import run_stage
from synthdiv.errors import InputError
from synthdiv.stages.generate.reader import read_manifest
from synthdiv.stages.plan.adaptive import least_used, prompt_yields, weighted_picks
from synthdiv.stages.plan.reader import plan_rounds, read_plan
from synthdiv.stages.score.learner import informativeness, most_informative, pooled_rounds, select_pools
from synthdiv.stages.score.reader import filtered_manifest, learner_mask
from synthdiv.utils.io import write_parquet_atomic
from tests.generate.test_adapt import _adapt_inputs

SURE = [0.98, 0.01, 0.01]  # the model already knows this image: it teaches little
UNSURE = [0.34, 0.33, 0.33]


def test_each_measure_on_known_probabilities():
    probs = np.array([[0.5, 0.5, 0.0], [0.7, 0.2, 0.1]], dtype=np.float32)
    labels = np.array([2, 0])
    p = probs.astype(np.float64)
    entropy = informativeness(probs, labels, "entropy")  # a class of probability 0 adds nothing
    assert entropy.dtype == np.float64 and entropy.tolist() == [np.log(2), -(p[1] * np.log(p[1])).sum()]
    assert informativeness(probs, labels, "margin").tolist() == [0.0, -(p[1, 0] - p[1, 1])]
    assert informativeness(probs[:, :2], labels, "margin").tolist() == [0.0, -(p[1, 0] - p[1, 1])]  # two classes
    assert informativeness(probs, labels, "loss").tolist() == [-np.log(1e-12), -np.log(p[1, 0])]  # 0: clipped
    with pytest.raises(ValueError) as refused:
        informativeness(probs, labels, "gini")
    assert str(refused.value) == "informativeness: unknown measure 'gini'; expected one of: entropy, margin, loss"


def test_each_measure_ranks_what_the_model_is_unsure_of_first():
    probs = np.array([SURE, UNSURE, [0.5, 0.49, 0.01], [0.01, 0.98, 0.01]])
    labels = np.array([0, 0, 0, 0])
    entropy = informativeness(probs, labels, "entropy")
    assert entropy[1] == pytest.approx(-(0.34 * np.log(0.34) + 2 * 0.33 * np.log(0.33)))
    assert entropy[0] == pytest.approx(entropy[3]) and entropy[0] < entropy[2] < entropy[1]
    margin = informativeness(probs, labels, "margin")
    assert margin.tolist() == pytest.approx([-0.97, -0.01, -0.01, -0.97])
    loss = informativeness(probs, labels, "loss")
    assert loss.tolist() == pytest.approx(-np.log([0.98, 0.34, 0.5, 0.01]))  # the own class's loss: the 4th is wrong
    assert informativeness(np.array([[1.0]]), np.array([0]), "margin").tolist() == [0.0]
    with pytest.raises(ValueError, match="unknown measure 'gini'"):
        informativeness(probs, labels, "gini")


@pytest.mark.parametrize("measure", ["entropy", "margin", "loss"])
def test_the_kept_set_is_exactly_the_informative_part_of_a_pool(measure):
    """A pool of 3 classes x 8 images, half of each class already known to the model: keeping 4 per class keeps
    exactly the unknown half, whatever the row order."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 8)
    informative = np.tile([True, False], 12)
    probs = np.array([np.roll(UNSURE if i else SURE, c) for c, i in zip(labels, informative, strict=True)])
    ids = np.array([f"img{i:02d}" for i in range(24)])
    score = informativeness(probs, labels, measure)
    kept = most_informative(score, labels, np.array([4, 4, 4]), ids)
    assert kept.tolist() == informative.tolist()
    perm = rng.permutation(24)
    again = most_informative(score[perm], labels[perm], np.array([4, 4, 4]), ids[perm])
    assert sorted(ids[perm][again]) == sorted(ids[kept])
    # fewer kept than informative: ties are broken by image id; a class asked for none keeps none
    some = most_informative(score, labels, np.array([2, 0, 8]), ids)
    assert ids[some].tolist() == ["img00", "img02", *ids[16:].tolist()]


def test_weighted_picks_are_least_used_with_equal_weights_and_proportional_otherwise():
    rng = np.random.default_rng(1)
    for _ in range(50):
        uses = rng.integers(0, 4, size=rng.integers(1, 7))
        m = int(rng.integers(0, 15))
        for got, want in zip(weighted_picks(uses, np.full(len(uses), 0.5), m), least_used(uses, m), strict=True):
            assert got.tolist() == want.tolist()
    index, repeat = weighted_picks(np.array([2, 2]), np.array([0.25, 0.75]), 8)
    assert np.bincount(index, minlength=2).tolist() == [1, 7]
    assert repeat[index == 1].tolist() == list(range(2, 9)) and repeat[index == 0].tolist() == [2]
    assert weighted_picks(np.array([0, 0]), np.array([0.0, 1.0]), 3)[0].tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="not all 0"):
        weighted_picks(np.array([0]), np.array([0.0]), 1)


def test_weighted_picks_of_nothing_and_their_refusals():
    # nothing asked or nothing to pick from
    for uses, weights, m in (([1, 2], [0.0, 0.0], 0), ([], [], 3), ([1], [0.0], -1)):
        index, repeat = weighted_picks(np.array(uses, np.int64), np.array(weights), m)
        assert (index.tolist(), repeat.tolist(), index.dtype, repeat.dtype) == ([], [], np.int64, np.int64)
    index, repeat = weighted_picks(np.array([3, 0]), np.array([1.0, 1.0]), 2)
    assert (index.tolist(), repeat.tolist(), repeat.dtype) == ([1, 1], [0, 1], np.int64)
    message = "weighted_picks: weights must be finite, non-negative and not all 0"
    for weights in ([-1.0, 1.0], [np.inf, 1.0], [np.nan, 1.0], [0.0, 0.0]):
        with pytest.raises(ValueError) as refused:
            weighted_picks(np.array([0, 0]), np.array(weights), 1)
        assert str(refused.value) == message
    with pytest.raises(ValueError, match="zip"):  # one weight per prompt
        weighted_picks(np.array([0, 0]), np.array([1.0]), 1)


def test_prompt_yields_are_kept_per_generated_image_of_the_same_context_or_style():
    rows = [("p0", 0, "context", "a beach", None), ("p1", 0, "context", "a beach", None),
            ("p2", 0, "context", "a forest", None), ("p3", 0, "style", None, "a sketch"),
            ("p4", 1, "context", "a beach", None)]
    prompts = pa.table({"prompt_id": [r[0] for r in rows], "class": pa.array([r[1] for r in rows], pa.int32()),
                        "kind": [r[2] for r in rows], "context": [r[3] for r in rows], "style": [r[4] for r in rows]})
    generated = ["p0", "p0", "p1", "p1", "p2", "p2", "p4", "unknown"]
    kept = np.array([True, True, True, False, False, False, True, True])
    # "a beach" of class 0 (p0, p1): 3 of 4 kept; "a forest": 0 of 2; the sketch style: not tried; class 1's beach: 1/1
    assert prompt_yields(prompts, generated, kept).tolist() == pytest.approx([4 / 6, 4 / 6, 1 / 4, 1 / 2, 2 / 3])


def test_prompt_yields_group_by_kind_and_style_too_and_need_a_kept_flag_per_image():
    rows = [("p0", 0, "base", None, None), ("p1", 0, "caption", None, None), ("p2", 0, "style", None, "a sketch"),
            ("p3", 0, "style", None, "a watercolour")]
    prompts = pa.table({"prompt_id": [r[0] for r in rows], "class": pa.array([r[1] for r in rows], pa.int32()),
                        "kind": [r[2] for r in rows], "context": pa.array([r[3] for r in rows], pa.string()),
                        "style": [r[4] for r in rows]})
    yields = prompt_yields(prompts, ["p0", "p0", "p2"], np.array([True, True, False]))
    assert yields.tolist() == [3 / 4, 1 / 2, 1 / 3, 1 / 2] and yields.dtype == np.float64
    with pytest.raises(ValueError, match="zip"):
        prompt_yields(prompts, ["p0", "p0"], np.array([True]))


def _pooled(cfg, pool_factor: float = 2.0, select: str = "loss", within: str = "least_used"):
    update = {"rounds": 1, "images_per_round": 6, "pool_factor": pool_factor, "select": select,
              "within_class": within}
    return cfg.model_copy(update={"adapt": cfg.adapt.model_copy(update=update)})


def _export(run, name: str = "main") -> None:
    import timm

    from synthdiv.stages.train.export import export_model

    model = timm.create_model("test_resnet", num_classes=3)
    export_model(model, run.export / name, ["goldfish", "crane", "tabby cat"],
                 data_config={"input_size": (3, 32, 32)})


@pytest.mark.timeout(600)
def test_a_pooled_round_trains_on_its_most_informative_images_reproducibly(gen_config, caplog):
    cfg = _pooled(gen_config(images_per_class=2, shard_size=4))
    run = _adapt_inputs(cfg, {"goldfish": 0.5, "crane": 0.5, "tabby cat": 0.5})
    run_stage(cfg, "generate")
    with pytest.raises(InputError, match=r"export/main: no exported model.*run `synthdiv train` first"):
        add_round(cfg, run, "main")
    assert plan_rounds(run.plan) == []  # refused before anything was written
    _export(run)
    record = add_round(cfg, run, "main")
    assert record["keep"] == [2, 2, 2] and record["counts"] == [4, 4, 4] and record["images"] == 12
    assert record["pool_factor"] == 2.0 and record["select"] == "loss"
    assert (run.round_model(1) / "config.json").is_file()
    run_stage(cfg, "generate")
    manifest = read_manifest(run)
    assert manifest.num_rows == 6 + 12  # the whole pool is made once, and kept in the shards

    assert pooled_rounds(run) == plan_rounds(run.plan)
    with caplog.at_level("INFO", logger="synthdiv.stages.score.learner"):
        summary = select_pools(cfg, run, manifest)
    assert summary == {"pooled_rounds": 1, "pooled_images": 12, "kept": 6}
    logged = [r.getMessage() for r in caplog.records if r.name == "synthdiv.stages.score.learner"]
    assert logged == ["adapt round 1: kept the 6 of 12 pooled images round-001 finds most informative (loss)"]
    table = pq.read_table(run.learner_scores)
    assert written_format(table.schema.metadata, "learner_scores") == 1
    assert table.column("round").to_pylist() == [1] * 12
    score, cls, kept = (table.column(c).to_numpy(zero_copy_only=False) for c in ("informativeness", "class", "kept"))
    for c in range(3):  # per class, the 2 kept are the 2 with the highest loss under the round's model
        mine = cls == c
        assert kept[mine].sum() == 2 and score[mine][kept[mine]].min() >= score[mine][~kept[mine]].max()

    view = filtered_manifest(cfg, run)
    dropped = set(table.filter(pa.compute.invert(table.column("kept"))).column("image_id").to_pylist())
    assert view.num_rows == 12 and not dropped & set(view.column("image_id").to_pylist())
    assert learner_mask(run, manifest).sum() == 12

    _export(run)  # the variant is trained again: the round keeps selecting with the model it was planned from
    before = table.column("kept").to_pylist()
    select_pools(cfg, run, manifest)
    assert pq.read_table(run.learner_scores).column("kept").to_pylist() == before
    run_stage(cfg, "score")  # the stage writes the same selection and reports it
    assert pq.read_table(run.learner_scores).column("kept").to_pylist() == before

    # a degenerate image is never trained on, so never among the pool; a null flag is no degenerate image
    ids = manifest.column("image_id").to_pylist()
    pooled = [ids.index(i) for i in table.column("image_id").to_pylist()[:2]]
    degenerate = manifest.column("degenerate").to_pylist()
    degenerate[pooled[0]], degenerate[pooled[1]] = True, None
    marked = manifest.set_column(manifest.schema.get_field_index("degenerate"), "degenerate",
                                 pa.array(degenerate, pa.bool_()))
    assert select_pools(cfg, run, marked)["pooled_images"] == 11
    selected = set(pq.read_table(run.learner_scores).column("image_id").to_pylist())
    assert ids[pooled[0]] not in selected and ids[pooled[1]] in selected

    (run.round_model(1) / "config.json").unlink()  # the round's model copy is gone: no other model stands in
    with pytest.raises(InputError) as refused:
        select_pools(cfg, run, manifest)
    assert str(refused.value) == (f"{run.round_model(1)}: no config.json; adaptive round 1 selects its pool with the "
                                  "model it was planned from (`synthdiv adapt` copies it there)")


def test_without_a_pooled_round_there_is_no_selection_and_a_stale_one_is_removed(gen_config):
    cfg = gen_config(images_per_class=2, shard_size=4)
    run = _adapt_inputs(cfg, {"goldfish": 0.5, "crane": 0.5, "tabby cat": 0.5})
    run_stage(cfg, "generate")
    manifest = read_manifest(run)
    assert select_pools(cfg, run, manifest) == {} and learner_mask(run, manifest) is None
    stale = pa.table({"image_id": manifest.column("image_id").slice(0, 1), "round": pa.array([1], pa.int32()),
                      "class": pa.array([0], pa.int32()), "informativeness": pa.array([0.0], pa.float32()),
                      "kept": [False]}, schema=LEARNER_SCORES_SCHEMA)
    write_parquet_atomic(stale.replace_schema_metadata(with_format(stale.schema, "learner_scores").metadata),
                         run.learner_scores)
    assert filtered_manifest(cfg, run).num_rows == 5  # while it is there, the view honours it
    assert select_pools(cfg, run, manifest) == {} and not run.learner_scores.exists()
    assert filtered_manifest(cfg, run).num_rows == 6


def test_a_yield_round_moves_toward_the_style_whose_images_were_kept(gen_config):
    """Each class has a base prompt and a sketch-style prompt, 2 images each; the learner kept only the sketches.
    A round of 8 per class then gives the sketch style 7 and the base prompt 1 (least-used order would give 4 and 4)."""
    cfg = gen_config(images_per_class=4, shard_size=4)
    run = _adapt_inputs(cfg, {"goldfish": 0.5, "crane": 0.5, "tabby cat": 0.5})
    run_stage(cfg, "generate")
    manifest = read_manifest(run)
    base = np.array([p.endswith("-0") for p in manifest.column("prompt_id").to_pylist()])
    table = pa.table({"image_id": manifest.column("image_id"), "round": pa.array(np.ones(12), pa.int32()),
                      "class": manifest.column("class"), "informativeness": pa.array(np.zeros(12), pa.float32()),
                      "kept": pa.array(~base)}, schema=LEARNER_SCORES_SCHEMA)
    write_parquet_atomic(table, run.learner_scores)
    update = {"rounds": 1, "images_per_round": 24, "within_class": "yield"}
    yielded = cfg.model_copy(update={"adapt": cfg.adapt.model_copy(update=update)})
    record = add_round(yielded, run, "main")
    assert record["within_class"] == "yield" and "pool_factor" not in record
    added = read_plan(run).slice(12).column("prompt_id").to_pylist()
    assert sorted(added) == sorted([f"p{c}-1" for c in range(3)] * 7 + [f"p{c}-0" for c in range(3)])


def test_the_default_round_is_the_least_used_one(gen_config):
    """Without pool_factor or within_class, a round is as before: no selection fields, least-used prompts."""
    cfg = gen_config(images_per_class=4, shard_size=4)
    run = _adapt_inputs(cfg, {"goldfish": 0.5, "crane": 0.5, "tabby cat": 0.5})
    update = {"rounds": 1, "images_per_round": 24}
    record = add_round(cfg.model_copy(update={"adapt": cfg.adapt.model_copy(update=update)}), run, "main")
    assert not {"pool_factor", "select", "keep", "within_class"} & set(record)
    added = read_plan(run).slice(12).column("prompt_id").to_pylist()
    assert sorted(added) == sorted([f"p{c}-{k}" for c in range(3) for k in (0, 1)] * 4)
    assert not run.round_model(1).exists() and pooled_rounds(run) == []

