"""The prompts and plan stages end to end with the real embedded LLM (SmolLM2-135M) and the tiny CLIP, through the
stage engine: every prompt names its class, fits CLIP's 77 tokens, the summary matches the artifacts, and a redo
from the response cache gives byte-identical prompts.parquet and plan.parquet."""

from __future__ import annotations

from collections import Counter

import pyarrow.parquet as pq
import pytest

from synthdiv.core.schemas import PLAN_SCHEMA, PROMPTS_SCHEMA
from synthdiv.stages.prompts.text import MAX_PROMPT_TOKENS, count_tokens, mentions

pytestmark = pytest.mark.slow

CLASSES = [("goldfish", "goldfish", 4), ("crane", "a crane, a tall wading bird", 0)]


def test_prompts_and_plan_with_the_embedded_llm(make_config, write_resolved):
    from synthdiv.engine.runner import run_stage

    cfg = make_config(
        prompts={"contexts_per_class": 2, "styles": 2, "batch_size": 2, "max_retries": 0, "max_requests": 2,
                 "temperature": 0.7},
        plan={"top_up_to": 6, "shard_size": 4},
    )
    run = write_resolved(cfg.run_dir, CLASSES)
    summary = run_stage(cfg, "prompts")
    table = pq.read_table(run.prompts)
    assert table.schema.equals(PROMPTS_SCHEMA)
    rows = table.to_pylist()
    kinds = Counter(r["kind"] for r in rows)
    assert summary["by_kind"] == {k: kinds.get(k, 0) for k in ("base", "context", "style")}
    assert kinds["base"] == 2 and kinds["context"] + kinds["style"] > 0  # the real model gave usable items
    for r in rows:
        assert mentions(r["text"], CLASSES[r["class"]][1]), r["text"]
        assert count_tokens(r["text"]) <= MAX_PROMPT_TOKENS
        if r["template_id"].startswith("styles.builtin."):  # a built-in style filling the LLM's gap: no LLM
            assert r["kind"] == "style" and r["llm_id"] is None
        elif r["kind"] != "base":
            assert r["llm_id"].startswith("transformers:embedded")
    per_class = Counter(r["class"] for r in rows if r["kind"] == "context")
    for i, (name, _, _) in enumerate(CLASSES):
        assert summary["contexts_missing"].get(name, 0) == 2 - per_class.get(i, 0)

    plan_summary = run_stage(cfg, "plan")
    plan = pq.read_table(run.plan)
    assert plan.schema.equals(PLAN_SCHEMA)
    assert Counter(plan.column("class").to_pylist()) == {0: 2, 1: 6}  # top up to 6: 6 - 4 real, 6 - 0 real
    assert plan_summary["images"] == 8 and plan_summary["shards"] == 2

    prompts_bytes, plan_bytes = run.prompts.read_bytes(), run.plan.read_bytes()
    run_stage(cfg, "prompts", redo=True)  # every LLM answer now comes from the run's cache
    run_stage(cfg, "plan", redo=True)
    assert run.prompts.read_bytes() == prompts_bytes
    assert run.plan.read_bytes() == plan_bytes
