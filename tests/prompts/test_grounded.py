"""Grounded diversification in the prompts stage: caption-context (scenes from captions of a class's real images) and
target-style (styles summarised from captions of target-domain images), with the embedded tiny random captioner
(gibberish captions) and a scripted LLM behind the real cache; then the plan splits its budget over the new kinds."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from synthdiv.core.rundir import RunDir
from synthdiv.errors import InputError
from synthdiv.stages.plan.stage import build_plan
from synthdiv.stages.prompts.stage import build_prompts, external_inputs
from synthdiv.utils.io import atomic_write_jsonl
from tests.conftest import SMOKE_DATA


def _resolved(run: RunDir, real_dir) -> None:
    atomic_write_jsonl(run.resolved, [
        {"index": 0, "name": "bag", "wnid": None, "definition": None, "real_images": 3, "real_dir": str(real_dir),
         "description": "handbag", "candidates": [], "status": "ok", "llm_id": None, "template_id": None},
        {"index": 1, "name": "coat", "wnid": None, "definition": None, "real_images": 0, "real_dir": None,
         "description": "coat", "candidates": [], "status": "ok", "llm_id": None, "template_id": None},
    ])


@pytest.fixture
def grounded_run(make_config, tmp_path):
    def make(**prompts):
        real, target = tmp_path / "real" / "bag", tmp_path / "target"
        for folder, cls in ((real, "bag"), (target, "sandal")):
            folder.mkdir(parents=True, exist_ok=True)
            for f in sorted((SMOKE_DATA / "train" / cls).iterdir())[:3]:
                shutil.copy(f, folder / f.name)
        base = {"proportions": {"base": 1, "caption-context": 1, "target-style": 1}, "styles": 0,
                "caption_contexts_per_class": 2, "target_styles": 2, "batch_size": 2, "max_retries": 0,
                "max_requests": 1, "clip_dedup": False, "target_images": str(target)}
        cfg = make_config(prompts={**base, **prompts}, plan={"images_per_class": 6},
                          models={"captioner": {"model": "embedded", "device": "cpu",
                                                "options": {"max_new_tokens": 5}}})
        run = RunDir(cfg.run_dir)
        run.root.mkdir(parents=True, exist_ok=True)
        _resolved(run, real)
        return cfg, run

    return make


def test_caption_contexts_and_target_styles_become_prompts(grounded_run, scripted_llm):
    cfg, run = grounded_run()
    scripted_llm.enqueue('["on a shelf in a shop", "On a white background."]', '["Pencil sketch", "charcoal drawing"]')
    summary = build_prompts(cfg, run)
    assert not scripted_llm.queue and len(scripted_llm.calls) == 2  # no real images for "coat": no request
    users = [c["messages"][-1]["content"] for c in scripted_llm.calls]
    assert "Captions of real photos of this object:\n- " in users[0] and "Object: handbag" in users[0]
    assert users[1].startswith("Captions of images from one visual domain:\n- ")
    rows = pq.read_table(run.prompts).to_pylist()
    texts = {(r["class"], r["kind"]): [] for r in rows}
    for r in rows:
        texts[(r["class"], r["kind"])].append(r["text"])
    assert texts[(0, "caption-context")] == ["a photo of a handbag on a shelf in a shop",
                                            "a photo of a handbag on a white background"]
    assert (1, "caption-context") not in texts
    assert texts[(1, "target-style")] == ["a pencil sketch of a coat", "a charcoal drawing of a coat"]
    cc = next(r for r in rows if r["kind"] == "caption-context")
    assert cc["template_id"].startswith("caption_contexts.v1+caption-context:")
    assert cc["negative"] == cfg.prompts.negative["context"] and cc["llm_id"] == "fake:scripted"
    assert summary["by_kind"] == {"base": 2, "context": 0, "style": 0, "caption-context": 2, "target-style": 4}
    assert summary["captioner_id"] == "transformers:embedded@main"
    assert len(list((run.cache / "captions").rglob("*.json"))) == 6  # 3 real + 3 target images, cached
    styles = json.loads(run.styles.read_text())
    assert styles["target_styles"]["styles"] == ["pencil sketch", "charcoal drawing"]
    assert cfg.prompts.target_images in external_inputs(cfg)

    plan = build_plan(cfg, run)  # the new kinds flow through the plan's split
    # bag: 6 images over 3 kinds; coat (no captions): 6 over base and target-style
    assert plan["by_kind"] == {"base": 5, "context": 0, "style": 0, "caption-context": 2, "target-style": 5}


def test_target_style_without_a_folder_is_refused(grounded_run, scripted_llm):
    cfg, run = grounded_run(target_images=None)
    with pytest.raises(InputError, match="prompts.target_images: the target-style kind has a share"):
        build_prompts(cfg, run)
