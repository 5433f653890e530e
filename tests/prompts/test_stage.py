"""The prompts stage driven by a scripted LLM (behind the real response cache): repair, rejection, dedup,
shortfalls, styles reuse and byte-identical reruns. The real embedded LLM runs in test_end_to_end.py."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from synthdiv.core.ids import prompt_id
from synthdiv.core.schemas import FORMATS, PROMPTS_SCHEMA, written_format
from synthdiv.errors import InputError
from synthdiv.stages.prompts.stage import build_prompts
from synthdiv.stages.prompts.text import MAX_PROMPT_TOKENS, count_tokens, mentions

CLASSES = [("goldfish", "goldfish", 3), ("crane", "a crane, a tall wading bird", 0)]
LONG = "a crane in a marsh " + " ".join(["with very tall reeds"] * 8)  # < 300 characters, > 20 tokens


def _config(make_config, **prompts):
    base = {"contexts_per_class": 3, "styles": 2, "batch_size": 3, "max_retries": 0, "max_requests": 2,
            "clip_dedup": False, "max_context_tokens": 20, "max_context_words": 60}
    return make_config(prompts={**base, **prompts})


def _script(fake):
    fake.enqueue('["pencil sketch", "\\"An Oil Painting.\\" - paint on canvas"]')  # styles.v2, k=2
    # the classes' context requests go out together, round by round: goldfish 1, crane 1, then goldfish 2
    fake.enqueue('["on a wooden kitchen table", "a goldfish in a pond at night", "On a wooden kitchen table."]')
    fake.enqueue(f'["a crane standing in a marsh", "{LONG}", "under the sea"]')
    fake.enqueue('```json\n["A goldfish in a pond at night", "swimming among reeds"]\n```')


def test_stage_composes_repairs_and_reports_shortfalls(make_config, write_resolved, scripted_llm):
    cfg = _config(make_config)
    run = write_resolved(cfg.run_dir, CLASSES)
    _script(scripted_llm)
    summary = build_prompts(cfg, run)
    assert not scripted_llm.queue and len(scripted_llm.calls) == 4

    table = pq.read_table(run.prompts)
    assert table.schema.equals(PROMPTS_SCHEMA)
    assert written_format(table.schema.metadata, "prompts") == FORMATS["prompts"]
    rows = table.to_pylist()
    by = {(r["class"], r["kind"]): [] for r in rows}
    for r in rows:
        by[(r["class"], r["kind"])].append(r)
    assert [r["text"] for r in by[(0, "context")]] == [
        "a photo of a goldfish on a wooden kitchen table",
        "a photo of a goldfish in a pond at night",
        "a photo of a goldfish swimming among reeds",
    ]
    assert [r["text"] for r in by[(0, "style")]] == ["a pencil sketch of a goldfish", "an oil painting of a goldfish"]
    assert [r["text"] for r in by[(0, "base")]] == ["a photo of a goldfish"]
    crane = [r["context"] for r in by[(1, "context")]]
    assert crane[0] == "a crane, a tall wading bird standing in a marsh"
    assert crane[2] == "a crane, a tall wading bird under the sea"
    assert count_tokens(crane[1]) <= 20 and crane[1].startswith("a crane, a tall wading bird in a marsh")
    for r in rows:
        desc = CLASSES[r["class"]][1]
        assert mentions(r["text"], desc), r["text"]
        assert count_tokens(r["text"]) <= MAX_PROMPT_TOKENS
        assert r["prompt_id"] == prompt_id(r["class"], r["kind"], r["text"])
        assert r["negative"] == cfg.prompts.negative[r["kind"]]
        assert (r["llm_id"] is None) == (r["kind"] == "base")
    assert by[(0, "context")][0]["template_id"].startswith("contexts.v1+context:")
    assert by[(0, "context")][0]["llm_id"] == "fake:scripted"

    assert summary["contexts_missing"] == {} and summary["classes_short"] == 0
    assert summary["by_kind"] == {"base": 2, "context": 6, "style": 4}
    assert summary["dropped"] == {"duplicate": 1}
    assert summary["fixed"] == {"repaired": 5}
    assert summary["llm_requests"] == 4
    styles = json.loads(run.styles.read_text())
    assert styles["styles"] == ["pencil sketch", "oil painting"] and styles["template_id"] == "styles.v2"


def test_shortfall_is_reported_per_class(make_config, write_resolved, scripted_llm):
    cfg = _config(make_config, contexts_per_class=4, styles=0, proportions={"base": 1, "context": 1})
    run = write_resolved(cfg.run_dir, CLASSES[:1])
    scripted_llm.enqueue('["in a pond", "in a bowl", "on a table"]', "Sorry, I cannot help with that.")
    summary = build_prompts(cfg, run)
    assert summary["contexts_missing"] == {"goldfish": 1}
    assert summary["dropped"] == {"not an item (model chatter)": 1}
    assert summary["classes_short"] == 1
    assert summary["by_kind"] == {"base": 1, "context": 3, "style": 0}


def test_rerun_from_cache_is_byte_identical(make_config, write_resolved, scripted_llm):
    cfg = _config(make_config)
    run = write_resolved(cfg.run_dir, CLASSES)
    _script(scripted_llm)
    build_prompts(cfg, run)
    first_prompts, first_styles = run.prompts.read_bytes(), run.styles.read_bytes()
    run.prompts.unlink()
    run.styles.unlink()
    build_prompts(cfg, run)  # the queue is empty: every answer must come from the cache
    assert run.prompts.read_bytes() == first_prompts and run.styles.read_bytes() == first_styles


def test_reject_policies(make_config, write_resolved, scripted_llm):
    cfg = _config(make_config, styles=0, proportions={"context": 1}, missing_class="reject", too_long="reject",
                  max_requests=1)
    run = write_resolved(cfg.run_dir, CLASSES[1:])
    too_long = "a crane, a tall wading bird " + " ".join(["with very tall reeds"] * 8)
    scripted_llm.enqueue(f'["a crane, a tall wading bird in a marsh", "under the sea", "{too_long}"]')
    summary = build_prompts(cfg, run)
    texts = pq.read_table(run.prompts).column("context").to_pylist()
    assert texts == ["a crane, a tall wading bird in a marsh"]
    assert summary["dropped"] == {"does not name the class": 1, "over 20 CLIP tokens": 1}
    assert summary["contexts_missing"] == {"crane": 2}


def test_styles_file_is_reused_without_asking(make_config, write_resolved, scripted_llm, tmp_path):
    path = tmp_path / "old_styles.json"
    path.write_text(json.dumps({"styles": ["origami", "embroidery", "video game render"], "llm_id": "old:llm",
                                "template_id": "styles.v1"}))
    cfg = _config(make_config, contexts_per_class=0, styles=2, styles_file=str(path))
    run = write_resolved(cfg.run_dir, CLASSES[:1])
    summary = build_prompts(cfg, run)
    assert not scripted_llm.calls
    assert json.loads(run.styles.read_text())["styles"] == ["origami", "embroidery"]
    rows = pq.read_table(run.prompts).to_pylist()
    assert [r["text"] for r in rows if r["kind"] == "style"] == ["an origami of a goldfish",
                                                                 "an embroidery of a goldfish"]
    assert {r["llm_id"] for r in rows if r["kind"] == "style"} == {"old:llm"}
    assert summary["styles_reused_from"] == str(path)


def test_bad_styles_file_names_the_field(make_config, write_resolved, scripted_llm, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"styles": ["ok", 3]}))
    cfg = _config(make_config, contexts_per_class=0, styles_file=str(path))
    run = write_resolved(cfg.run_dir, CLASSES[:1])
    with pytest.raises(InputError, match="bad.json: styles: expected a list of non-empty strings"):
        build_prompts(cfg, run)


def test_styles_with_contexts(make_config, write_resolved, scripted_llm):
    cfg = _config(make_config, contexts_per_class=2, style_contexts=1, max_requests=1)
    run = write_resolved(cfg.run_dir, CLASSES[:1])
    scripted_llm.enqueue('["pencil sketch", "watercolor"]', '["in a pond", "on a table"]')
    build_prompts(cfg, run)
    rows = [r for r in pq.read_table(run.prompts).to_pylist() if r["kind"] == "style"]
    assert [r["text"] for r in rows] == ["a pencil sketch of a goldfish in a pond",
                                         "a watercolor of a goldfish on a table"]
    assert rows[0]["template_id"].startswith("styles.v2+contexts.v1+style:")


def test_clip_near_duplicates_are_dropped(make_config, write_resolved, scripted_llm):
    cfg = _config(make_config, styles=0, proportions={"context": 1}, clip_dedup=True, dedup_threshold=0.2,
                  max_requests=1)
    run = write_resolved(cfg.run_dir, CLASSES[:1])
    scripted_llm.enqueue('["in a pond", "on a table at dusk", "held by a child at a fair"]')
    summary = build_prompts(cfg, run)
    assert summary["dropped"]["near duplicate"] >= 1
    assert summary["by_kind"]["context"] == 3 - summary["dropped"]["near duplicate"]


def test_resolved_without_description_is_an_input_error(make_config, write_resolved):
    cfg = _config(make_config)
    run = write_resolved(cfg.run_dir, [("a", "", 0)])
    with pytest.raises(InputError, match=r"classes\.resolved\.jsonl:1: expected a non-empty string 'description'"):
        build_prompts(cfg, run)


def test_editing_a_reused_styles_file_changes_the_fingerprint(make_config, tmp_path):
    from synthdiv.core.pipeline import get_spec
    from synthdiv.core.status import fingerprint

    path = tmp_path / "s.json"
    path.write_text('{"styles": ["origami"]}')
    cfg = _config(make_config, styles_file=str(path))
    before = fingerprint(cfg, get_spec("prompts"))
    path.write_text('{"styles": ["embroidery"]}')
    assert fingerprint(cfg, get_spec("prompts")) != before


def test_per_class_styles_carry_their_own_template(make_config, write_resolved, scripted_llm):
    cfg = _config(make_config, contexts_per_class=0, styles=2, styles_per_class=1, max_requests=1)
    run = write_resolved(cfg.run_dir, CLASSES[:1])
    scripted_llm.enqueue('["pencil sketch", "origami"]', '["goldfish-scale mosaic", "origami"]')
    summary = build_prompts(cfg, run)
    rows = [r for r in pq.read_table(run.prompts).to_pylist() if r["kind"] == "style"]
    assert [r["style"] for r in rows] == ["pencil sketch", "origami", "goldfish-scale mosaic"]
    assert rows[0]["template_id"].startswith("styles.v2+") and rows[2]["template_id"].startswith("styles.class.v1+")
    doc = json.loads(run.styles.read_text())
    assert doc["styles"] == ["pencil sketch", "origami"]
    assert doc["per_class"]["goldfish"]["styles"] == ["goldfish-scale mosaic"]
    assert summary["llm_requests"] == 2
