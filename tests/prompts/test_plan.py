"""The plan stage: layout invariants, ids and seeds, budgets end to end, determinism, and the engine."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdiv.config.models import GeneratorSpec, generator_id
from synthdiv.core import ids
from synthdiv.core.ids import prompt_id
from synthdiv.core.schemas import FORMATS, PLAN_SCHEMA, PROMPTS_SCHEMA, written_format
from synthdiv.errors import ConfigError, InputError
from synthdiv.stages.plan.stage import build_plan, image_ids, layout_plan


def write_prompts(run, per_class: list[dict[str, int]]) -> pa.Table:
    """prompts.parquet with ``per_class[c][kind]`` prompts of each kind (kinds deliberately interleaved in file)."""
    rows = []
    for c, kinds in enumerate(per_class):
        for kind in ("style", "context", "base"):
            for i in range(kinds.get(kind, 0)):
                text = f"{kind} {i} of class {c}"
                rows.append({"prompt_id": prompt_id(c, kind, text), "class": c, "class_name": f"c{c}", "kind": kind,
                             "text": text, "negative": "", "context": None, "style": None, "template_id": "t",
                             "llm_id": None})
    table = pa.Table.from_pylist(rows, schema=PROMPTS_SCHEMA)
    pq.write_table(table, run.prompts)
    return table


def test_generator_id_format():
    assert generator_id(GeneratorSpec(model="sd15")) == "diffusers:sd15@main"
    assert generator_id(GeneratorSpec(backend="x", model="m", revision="abc")) == "x:m@abc"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40),
                          st.integers(1, 5), st.integers(1, 7), st.integers(1, 5)), min_size=1, max_size=6))
def test_layout_invariants(spec):
    counts = np.array([s[:3] for s in spec])
    available = np.array([s[3:] for s in spec])
    layout = layout_plan(counts, available)
    assert len(layout) == counts.sum()
    offsets = np.concatenate([[0], np.cumsum(available.ravel())])
    for c in range(len(spec)):
        rows = np.flatnonzero(layout.cls == c)
        n = len(rows)
        assert n == counts[c].sum()
        for k in range(3):
            lo, hi = offsets[c * 3 + k], offsets[c * 3 + k + 1]
            mine = layout.prompt[rows][(layout.prompt[rows] >= lo) & (layout.prompt[rows] < hi)]
            assert len(mine) == counts[c, k]
            # every prompt of the kind is used once before any is used again, and repeats count up
            m = hi - lo
            assert (mine - lo).tolist() == [j % m for j in range(len(mine))]
        # every prefix of a class's rows holds each kind within one row of its share
        kinds = np.searchsorted(offsets, layout.prompt[rows], side="right") - 1 - c * 3
        for t in range(1, n + 1):
            seen = np.bincount(kinds[:t], minlength=3)
            assert (np.abs(seen - counts[c] * t / n) <= 1).all()
    # classes are interleaved: the position of a class's t-th row tracks t / budget
    for c in range(len(spec)):
        pos = np.flatnonzero(layout.cls == c)
        if len(pos):
            frac = (np.arange(len(pos)) + 0.5) / len(pos)
            assert np.all(np.abs(pos / max(len(layout), 1) - frac) <= len(spec) / max(len(layout), 1) + 0.5)


def test_layout_refuses_counts_without_prompts():
    with pytest.raises(ValueError):
        layout_plan(np.array([[1, 0, 0]]), np.array([[0, 1, 1]]))


def _plan(make_config, write_resolved, classes, per_class, **plan):
    cfg = make_config(plan=plan, prompts={"proportions": {"base": 0.2, "context": 0.5, "style": 0.3}})
    run = write_resolved(cfg.run_dir, classes)
    write_prompts(run, per_class)
    summary = build_plan(cfg, run)
    return cfg, run, summary, pq.read_table(run.plan)


def test_build_plan_end_to_end(make_config, write_resolved):
    classes = [("a", "a", 10), ("b", "b", 0), ("c", "c", 3)]
    per_class = [{"base": 1, "context": 4, "style": 2}, {"base": 1, "context": 2}, {"base": 2, "style": 3}]
    cfg, run, summary, table = _plan(make_config, write_resolved, classes, per_class, multiple_of_real=2,
                                     shard_size=4)
    assert table.schema.equals(PLAN_SCHEMA)
    assert written_format(table.schema.metadata, "plan") == FORMATS["plan"]
    assert table.num_rows == 26 == summary["images"]
    assert summary["shards"] == 7 and summary["classes_without_images"] == 1
    per = Counter(table.column("class").to_pylist())
    assert per == {0: 20, 2: 6}  # class b has no real images: 2 x 0 = 0
    shards = table.column("shard").to_numpy()
    assert shards.tolist() == [i // 4 for i in range(26)]
    ids = table.column("image_id").to_pylist()
    assert len(set(ids)) == 26 and all(len(i) == 16 for i in ids)
    assert len(set(table.column("seed").to_pylist())) == 26
    assert (table.column("seed").to_numpy() >= 0).all()
    # class 0: 20 images = 4 base + 10 context + 6 style; prompts cycled evenly
    prompts = pq.read_table(run.prompts).to_pylist()
    kind_of = {p["prompt_id"]: p["kind"] for p in prompts}
    used = Counter(kind_of[p] for p, c in zip(table.column("prompt_id").to_pylist(), per_class_col(table), strict=True)
                   if c == 0)
    assert used == {"base": 4, "context": 10, "style": 6}
    uses = Counter(p for p, c in zip(table.column("prompt_id").to_pylist(), per_class_col(table), strict=True)
                   if c == 0 and kind_of[p] == "context")
    assert sorted(uses.values()) == [2, 2, 3, 3]
    # image ids recomputable by any later stage
    again = image_ids(table.column("class"), table.column("prompt_id"), table.column("seed"), summary["generator_id"])
    assert again.to_pylist() == ids


def per_class_col(table):
    return table.column("class").to_pylist()


def test_seed_and_id_depend_on_run_seed_and_generator(make_config, write_resolved, tmp_path):
    classes = [("a", "a", 0)]
    per_class = [{"base": 1, "context": 3}]
    _, run, summary, t1 = _plan(make_config, write_resolved, classes, per_class, images_per_class=6)
    seeds = t1.column("seed").to_pylist()
    # repeats of one prompt get different seeds
    by_prompt = defaultdict(list)
    for p, s in zip(t1.column("prompt_id").to_pylist(), seeds, strict=True):
        by_prompt[p].append(s)
    assert all(len(set(v)) == len(v) for v in by_prompt.values())
    other = image_ids(t1.column("class"), t1.column("prompt_id"), t1.column("seed"), "diffusers:other@main")
    assert set(other.to_pylist()).isdisjoint(t1.column("image_id").to_pylist())


def test_seeds_and_image_ids_change_with_the_run_seed_and_the_layout_does_not(make_config, write_resolved, tmp_path):
    classes = [("a", "a", 0), ("b", "b", 0)]
    per_class = [{"base": 1, "context": 3}, {"base": 2, "style": 1}]
    plans = {}
    for seed in (0, 7):
        cfg = make_config(run_dir=str(tmp_path / f"run{seed}"), seed=seed, plan={"images_per_class": 6},
                          prompts={"proportions": {"base": 0.2, "context": 0.5, "style": 0.3}})
        run = write_resolved(cfg.run_dir, classes)
        write_prompts(run, per_class)
        build_plan(cfg, run)
        plans[seed] = pq.read_table(run.plan)
    a, b = plans[0], plans[7]
    assert a.num_rows == b.num_rows == 12
    for column in ("class", "prompt_id", "shard"):  # which prompt makes which image, and where: not the seed's
        assert a.column(column).equals(b.column(column)), column
    seeds_a, seeds_b = a.column("seed").to_pylist(), b.column("seed").to_pylist()
    assert all(x != y for x, y in zip(seeds_a, seeds_b, strict=True))  # every image gets another seed
    assert set(a.column("image_id").to_pylist()).isdisjoint(b.column("image_id").to_pylist())
    assert len(set(seeds_a)) == len(set(seeds_b)) == 12


def test_golden_ids_and_seeds():
    """The id scheme pinned by value: a change to any part of it renames every image of every existing run."""
    # SplitMix64's published outputs for the states 0 and 1 (Vigna's reference implementation), from any integers
    assert ids.splitmix64([0, 1]).tolist() == [0xE220A8397B1DCDAF, 0x910A2DEC89025CC1]
    pid = prompt_id(3, "base", "a photo of a goldfish")
    assert pid == "2b5d6dc05b9b15b3"
    assert prompt_id(3, "style", "a photo of a goldfish") != pid != prompt_id(4, "base", "a photo of a goldfish")
    key = ids.prompt_keys(0, [3], [pid])
    assert key.tolist() == [17612899612422622245] and ids.prompt_keys(7, [3], [pid]).tolist() == [15509405265257943668]
    seeds = ids.derive_seeds(np.repeat(key, 3), np.arange(3))
    assert seeds.tolist() == [8087758264086028167, 4177227676499983736, 7868991296137009611]
    assert ids.derive_seeds(ids.prompt_keys(7, [3], [pid]), np.array([0])).tolist() == [8478931367390124558]
    assert ids.derive_seeds([5, 6], [0, 0]).tolist() == ids.derive_seeds(np.array([5, 6], np.uint64), [0, 0]).tolist()
    assert ids.image_keys([3], [pid], "diffusers:sd15@main").tolist() == [18245812927623485474]
    assert image_ids(pa.array([3, 3]), pa.array([pid, pid]), pa.array([5, 6]), "diffusers:sd15@main").to_pylist() == [
        "a959de13638f31fd", "7b02cb5f5f9cebd7"]
    values = np.array([0, 1, 0xDEADBEEFCAFEBABE, 2**64 - 1], dtype=np.uint64)
    assert ids.hex64(values).to_pylist() == ["0000000000000000", "0000000000000001", "deadbeefcafebabe",
                                             "ffffffffffffffff"]


def test_hex64_refuses_more_values_than_one_string_array_holds_before_copying_them():
    too_many = np.broadcast_to(np.uint64(0), (2**27,))  # 2 GiB of hex digits; the view itself takes no memory
    with pytest.raises(ValueError, match=r"^hex64: 134217728 values exceed one string array; pass chunks$"):
        ids.hex64(too_many)


def test_keys_refuse_classes_and_prompt_ids_of_different_lengths():
    with pytest.raises(ValueError):
        ids.prompt_keys(0, [1, 2], ["a"])
    with pytest.raises(ValueError):
        ids.image_keys([1], ["a", "b"], "g")


def test_plan_is_byte_identical_on_rerun(make_config, write_resolved):
    classes = [(f"k{i}", f"k{i}", i * 3) for i in range(5)]
    per_class = [{"base": 1, "context": 3, "style": 2}] * 5
    cfg, run, _, _ = _plan(make_config, write_resolved, classes, per_class, top_up_to=12, shard_size=5)
    first = run.plan.read_bytes()
    build_plan(cfg, run)
    assert run.plan.read_bytes() == first


def test_global_cap_is_fair_and_exact(make_config, write_resolved):
    per_class = [{"base": 1}, {"base": 1}, {"base": 1}]
    cfg = make_config(plan={"top_up_to": 10, "max_images": 11})
    run = write_resolved(cfg.run_dir, [("a", "a", 9), ("b", "b", 0), ("c", "c", 2)])
    write_prompts(run, per_class)
    summary = build_plan(cfg, run)
    table = pq.read_table(run.plan)
    assert Counter(table.column("class").to_pylist()) == {0: 1, 1: 5, 2: 5}
    assert summary["capped"] is True


def test_budget_zero_writes_an_empty_plan(make_config, write_resolved):
    _, _, summary, table = _plan(make_config, write_resolved, [("a", "a", 5)], [{"base": 1}], images_per_class=0)
    assert table.num_rows == 0 and table.schema.equals(PLAN_SCHEMA) and summary["shards"] == 0


def test_class_with_budget_but_no_prompts_is_an_input_error(make_config, write_resolved):
    with pytest.raises(InputError, match="'b'.*no prompts"):
        _plan(make_config, write_resolved, [("a", "a", 1), ("b", "b", 1)], [{"base": 1}, {}], images_per_class=2)


def test_bad_resolved_file_names_the_line(make_config, write_resolved):
    cfg = make_config()
    run = write_resolved(cfg.run_dir, [("a", "a", 1)])
    run.resolved.write_text(run.resolved.read_text() + '{"index": 1, "name": "b", "wnid": null, "definition": null, '
                            '"real_images": -3, "real_dir": null, "description": "b"}\n')
    write_prompts(run, [{"base": 1}])
    with pytest.raises(InputError, match=r"classes\.resolved\.jsonl:2: expected a non-negative integer real_images"):
        build_plan(cfg, run)


def test_two_budget_kinds_are_a_config_error(make_config):
    with pytest.raises(ConfigError, match="set only one"):
        make_config(plan={"images_per_class": 3, "top_up_to": 4})


def test_plan_through_the_engine_is_a_noop_the_second_time(make_config, write_resolved):
    from synthdiv.engine.runner import run_stage

    cfg = make_config(plan={"images_per_class": 3})
    run = write_resolved(cfg.run_dir, [("a", "a", 1)])
    write_prompts(run, [{"base": 1, "context": 2}])
    assert run_stage(cfg, "plan")["images"] == 3
    assert run_stage(cfg, "plan")["skipped"] is True


def _real_set(per_class: list[int]):
    from synthdiv.data.sources import SampleSet

    return SampleSet.from_rows([(f"c{c}/{i}.png", -1, -1, c, f"c{c}/{i}") for c, n in enumerate(per_class)
                                for i in range(n)])


def test_top_up_counts_the_long_tail_real_set_training_sees(make_config, write_resolved):
    """Issue 10: with a long-tail profile, planned synthetic + long-tail real = top_up_to for every class."""
    from synthdiv.data.protocols import long_tail

    real = [1300, 1300, 1300, 1300, 1300]
    cfg = make_config(plan={"top_up_to": 1300},
                      train={"long_tail": True, "long_tail_max": 1280, "long_tail_min": 5, "long_tail_alpha": 6.0})
    run = write_resolved(cfg.run_dir, [(f"k{i}", f"k{i}", n) for i, n in enumerate(real)])
    write_prompts(run, [{"base": 2, "context": 3}] * 5)
    build_plan(cfg, run)
    planned = np.bincount(pq.read_table(run.plan).column("class").to_numpy(), minlength=5)
    lt_real = long_tail(_real_set(real), 5, 6.0, cfg.seed, 1280, 5).class_counts(5)
    assert (lt_real < 1280).any()  # the profile really subsamples
    assert (planned + lt_real).tolist() == [1300] * 5


@pytest.mark.parametrize("protocol", [
    {"long_tail": True, "long_tail_max": 40, "long_tail_min": 2, "long_tail_alpha": 3.0},
    {"low_data": 0.3},
    {"low_data": 7},
    {"low_data": 0.5, "long_tail": True, "long_tail_min": 1},
])
def test_plan_and_train_agree_on_the_real_counts(make_config, write_resolved, tmp_path, monkeypatch, protocol):
    """The plan's top-up and train's real set (its own prepare_data, on real files) come from one function."""
    from synthdiv.data.sources import SampleSet
    from synthdiv.stages.classes.reader import read_classes
    from synthdiv.stages.train.stage import prepare_data

    real = [40, 33, 40, 12, 25, 0]
    root = tmp_path / "real"
    for c, n in enumerate(real):
        (root / f"k{c}").mkdir(parents=True)
        for i in range(n):
            (root / f"k{c}" / f"{i}.png").write_bytes(b"")
    variants = {"real": {"synthetic_fraction": 0, "aux_norm": "none"}, "real+syn": {}}
    cfg = make_config(plan={"top_up_to": 50}, train={**protocol, "real_root": str(root), "variants": variants})
    run = write_resolved(cfg.run_dir, [(f"k{i}", f"k{i}", n) for i, n in enumerate(real)])
    run.classes.write_text(run.resolved.read_text())
    write_prompts(run, [{"base": 1, "style": 2}] * len(real))
    build_plan(cfg, run)
    planned = np.bincount(pq.read_table(run.plan).column("class").to_numpy(), minlength=len(real))
    monkeypatch.setattr("synthdiv.stages.train.stage.synthetic_samples", lambda *a, **k: SampleSet.empty())
    monkeypatch.setattr("synthdiv.stages.train.stage.require_complete", lambda *a: None)  # nothing generated here
    train_real, _ = prepare_data(cfg, cfg.train.variant("real+syn"), run, read_classes(run.classes))
    seen = train_real.class_counts(len(real))
    assert seen.sum() < sum(real)  # the protocol really subsamples
    assert (planned + seen).tolist() == [50] * len(real)


def test_variants_with_different_protocols_have_no_single_top_up(make_config, write_resolved):
    variants = {"lt": {"long_tail": True}, "low": {"low_data": 0.5}, "real": {"synthetic_fraction": 0}}
    cfg = make_config(plan={"top_up_to": 10}, train={"variants": variants})
    run = write_resolved(cfg.run_dir, [("a", "a", 20), ("b", "b", 5)])
    write_prompts(run, [{"base": 1}] * 2)
    with pytest.raises(ConfigError, match="'lt' and 'low'.*different real-set protocols"):
        build_plan(cfg, run)
    # a real-only variant's protocol does not matter to the plan, nor does a fixed budget care
    build_plan(make_config(plan={"images_per_class": 2}, train={"variants": variants}), run)
    same = {"lt": {"long_tail": True}, "real": {"synthetic_fraction": 0, "low_data": 0.5}}
    build_plan(make_config(plan={"top_up_to": 10}, train={"variants": same}), run)


def test_a_changed_protocol_makes_the_plan_stale(make_config):
    from synthdiv.core.pipeline import get_spec
    from synthdiv.core.status import fingerprint

    spec = get_spec("plan")
    base = fingerprint(make_config(plan={"top_up_to": 10}), spec)
    assert fingerprint(make_config(plan={"top_up_to": 10}, train={"long_tail": True}), spec) != base
    assert fingerprint(make_config(plan={"top_up_to": 10}, train={"long_tail_min": 3}), spec) != base
    assert fingerprint(make_config(plan={"top_up_to": 10}, train={"lr": 0.5, "epochs": 3}), spec) == base
