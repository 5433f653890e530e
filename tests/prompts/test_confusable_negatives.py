"""Negative prompts built from each class's confusable classes (``prompts.negative_confusable``): the first k names the
disambiguate stage recorded, without those that share a word with the class, and the images' manifest then records
each image's negative prompt."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from synthdiv.core.rundir import RunDir
from synthdiv.stages.disambiguate.reader import confusable_names
from synthdiv.stages.prompts.stage import build_prompts
from synthdiv.utils.io import atomic_write_jsonl, read_jsonl
from tests.prompts.conftest import resolved_rows

CLASSES = [("tabby cat", "tabby cat", 0), ("crane", "crane, a tall wading bird", 0), ("heron", "heron", 0)]
CONFUSABLE = [["tiger cat", "lynx", "Egyptian cat", "heron"], ["heron", "stork", "tower crane"], []]


def test_confusable_names_skip_those_that_share_a_word_with_the_class():
    row = {"name": "tabby cat", "description": "tabby cat", "confusable": CONFUSABLE[0]}
    assert confusable_names(row, 5) == ["lynx", "heron"]
    assert confusable_names(row, 1) == ["lynx"]
    crane = {"name": "crane", "description": "crane, a tall wading bird", "confusable": CONFUSABLE[1]}
    assert confusable_names(crane, 5) == ["heron", "stork"]  # "tower crane" names the class's own word
    assert confusable_names({"name": "x", "description": "x"}, 3) == []  # a run resolved without the list


def _write(make_config, sections=None, **prompts):
    cfg = make_config(prompts={"proportions": {"base": 1}, "styles": 0, "contexts_per_class": 0,
                               "clip_dedup": False, **prompts}, **(sections or {}))
    run = RunDir(cfg.run_dir)
    rows = [{**r, "confusable": c} for r, c in zip(resolved_rows(CLASSES), CONFUSABLE, strict=True)]
    atomic_write_jsonl(run.resolved, rows)
    return cfg, run


def test_each_class_negative_prompt_names_its_confusable_classes(make_config):
    cfg, run = _write(make_config, negative_confusable=2)
    build_prompts(cfg, run)
    negatives = {r["class_name"]: r["negative"] for r in pq.read_table(run.prompts).to_pylist()}
    base = cfg.prompts.negative["base"]
    assert negatives == {"tabby cat": f"{base}, lynx, heron", "crane": f"{base}, heron, stork", "heron": base}

    cfg0, run0 = _write(make_config)  # off by default: today's prompts
    build_prompts(cfg0, run0)
    assert {r["negative"] for r in pq.read_table(run0.prompts).to_pylist()} == {base}


def test_negative_confusable_enters_the_fingerprint_only_when_set(make_config):
    from synthdiv.core.pipeline import get_spec
    from synthdiv.core.status import fingerprint

    cfg, _ = _write(make_config)
    spec = get_spec("prompts")
    assert fingerprint(cfg, spec) == fingerprint(make_config(prompts={
        "proportions": {"base": 1}, "styles": 0, "contexts_per_class": 0, "clip_dedup": False}), spec)
    on = cfg.model_copy(update={"prompts": cfg.prompts.model_copy(update={"negative_confusable": 2})})
    assert fingerprint(on, spec) != fingerprint(cfg, spec)


@pytest.mark.timeout(600)
def test_a_run_with_confusable_negatives_records_each_images_negative_prompt(make_config):
    from synthdiv.engine.runner import run_stage
    from synthdiv.stages.generate.reader import read_manifest

    model = {"backend": "diffusers", "model": "embedded", "device": "cpu", "options": {"steps": 1}}
    cfg, run = _write(make_config, {"models": {"generator": model}, "plan": {"images_per_class": 2, "shard_size": 3},
                                    "generate": {"batch_size": 2, "torch_threads": 1}}, negative_confusable=2)
    for stage in ("prompts", "plan", "generate"):
        run_stage(cfg, stage)
    manifest = read_manifest(run)
    names = [r["name"] for r in read_jsonl(run.resolved)]
    base = cfg.prompts.negative["base"]
    want = {"tabby cat": f"{base}, lynx, heron", "crane": f"{base}, heron, stork", "heron": base}
    assert manifest.column("negative_prompt").to_pylist() == [want[names[c]] for c in manifest.column("class")
                                                                   .to_pylist()]
