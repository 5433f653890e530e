"""The disambiguate stage: confusable classes, candidate scoring, uniqueness, the stage end to end (scripted LLM for
failure paths, the real embedded SmolLM2 in the slow test), the table, and the disabled ablation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import RESOLVED_FIELDS
from synthdiv.errors import InputError, StageOrderError
from synthdiv.lexicon.wordnet import wordnet_dir
from synthdiv.stages.disambiguate.confusable import confusable_classes, normalise_name
from synthdiv.stages.disambiguate.scoring import sample_images, score_candidates
from synthdiv.stages.disambiguate.unique import distinguishing_part, make_unique, text_key
from synthdiv.utils.io import read_jsonl
from tests.llm.fakes import FakeLLM

REPO = Path(__file__).resolve().parents[1]
SMOKE_TRAIN = REPO / "data" / "fashion-mnist-smoke" / "train"
CLIP = {"backend": "open_clip", "model": "embedded", "device": "cpu"}


# ---------------------------------------------------------------------------------------------- confusable classes


def test_same_and_near_same_names_come_first() -> None:
    names = ["crane", "tiger cat", "Crane", "tiger", "cardigan", "Cardigan", "goldfish"]
    near = confusable_classes(names, None, k=3)
    assert near[0] == [2]  # the other crane, whatever the case
    assert near[1] == [3] and near[3] == [1]  # "tiger" is in "tiger cat"
    assert near[4] == [5] and near[5] == [4]
    assert near[6] == []  # no embeddings: only names count
    assert normalise_name("T-shirt_top") == "t shirt top"


def test_then_nearest_by_text_embedding() -> None:
    names = ["crane", "crane", "heron", "bulldozer", "stork"]
    emb = np.array([[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0.2], [0, 0.95, 0.3], [0.8, 0, 0.6]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    near = confusable_classes(names, emb, k=3)
    assert near[0] == [1, 2, 4]  # same name first, then by cosine
    assert near[1] == [0, 3, 2]
    assert confusable_classes(names, emb, k=0) == [[] for _ in names]
    assert all(sorted([*n, i]) == list(range(5)) for i, n in enumerate(confusable_classes(names, emb, k=10)))


def test_a_very_common_word_does_not_make_names_near_same() -> None:
    names = ["hot dog", "dog sled", *[f"breed{i} dog" for i in range(100)], "hot dog bun"]
    near = confusable_classes(names, None, k=3)
    assert near[0] == [102]  # "hot" is rare and shared; "dog" is in 102 names and is left to CLIP
    assert near[5] == []


# ---------------------------------------------------------------------------------------------- scoring


def test_margin_prefers_the_candidate_that_excludes_the_other_class() -> None:
    own, other = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    texts = np.array([[0.7, 0.7, 0.14], [0.6, 0.1, 0.79]])  # 0: like own AND other; 1: a bit less own, not other
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    basis, plain = score_candidates(texts, own, other[None], [7], None, margin_weight=0.0)
    assert basis == "images" and plain[0].score > plain[1].score
    _, margin = score_candidates(texts, own, other[None], [7], None, margin_weight=1.0)
    assert margin[1].score > margin[0].score
    assert margin[0].other_class == 7
    assert margin[0].score == pytest.approx(margin[0].similarity - margin[0].other_similarity)


def test_without_images_rank_by_definition_or_not_at_all() -> None:
    texts = np.eye(3, dtype=np.float32)
    basis, scores = score_candidates(texts, None, None, [], np.array([0, 0, 1], dtype=np.float32), 1.0)
    assert basis == "definition" and [s.score for s in scores] == [0.0, 0.0, 1.0]
    basis, scores = score_candidates(texts, None, None, [], None, 1.0)
    assert basis == "none" and all(s.score is None for s in scores)


def test_sample_images_is_seeded_and_limited(tmp_path: Path) -> None:
    for i in range(10):
        Image.new("RGB", (4, 4)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    a = sample_images(tmp_path, [".png"], 4, "seed-a")
    assert len(a) == 4 and a == sample_images(tmp_path, [".PNG"], 4, "seed-a")
    assert sample_images(tmp_path, [".png"], 50, "x") == sorted(tmp_path.glob("*.png"))
    assert sample_images(None, [".png"], 4, "x") == [] and sample_images(tmp_path / "nope", [".png"], 4, "x") == []


# ---------------------------------------------------------------------------------------------- uniqueness


def test_a_taken_description_falls_back_to_the_next_best() -> None:
    picks = make_unique([["a crane bird", "a wading crane"], ["A crane bird.", "a lifting crane"]], [0.5, 0.2],
                        [None, None], [None, None])
    assert [p.text for p in picks] == ["a crane bird", "a lifting crane"]
    assert [p.reason for p in picks] == ["best", "next-best (unique)"]
    picks = make_unique([["x", "y"], ["x", "z"]], [0.1, 0.9], [None, None], [None, None])
    assert [p.text for p in picks] == ["y", "x"]  # the more certain class keeps it


def test_all_candidates_taken_appends_the_definition_then_wnid_then_index() -> None:
    defs = ["large long-necked wading bird", "lifts and moves heavy objects; a machine", None, None]
    picks = make_unique([["crane"], ["crane"], ["crane"], ["crane"]], [None] * 4, defs, [None, None, "n1", None])
    texts = [p.text for p in picks]
    assert texts[0] == "crane" and texts[1] == "crane, lifts and moves heavy objects"
    assert texts[2] == "crane (n1)" and texts[3] == "crane (class 3)"
    assert len({text_key(t) for t in texts}) == 4


def test_distinguishing_part() -> None:
    assert distinguishing_part("a bird; tall", ["a machine"]) == "a bird"
    assert distinguishing_part("a bird that wades", ["a bird that flies"]) == "a bird that wades"
    assert distinguishing_part("a bird that wades; tall", ["a bird that wades; short"]) == "tall"
    assert distinguishing_part(None, ["x"]) is None and distinguishing_part("same", ["same"]) is None


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(["a", "A.", "b", "c c", "C  c", "d"]), min_size=1, max_size=3), min_size=1,
             max_size=8),
    st.data(),
)
def test_picks_are_always_unique(ranked: list[list[str]], data: st.DataObject) -> None:
    n = len(ranked)
    priority = data.draw(st.lists(st.none() | st.floats(-1, 1), min_size=n, max_size=n))
    defs = data.draw(st.lists(st.none() | st.sampled_from(["a bird", "a machine", "a bird"]), min_size=n, max_size=n))
    wnids = data.draw(st.lists(st.none() | st.sampled_from(["n1", "n2"]), min_size=n, max_size=n))
    picks = make_unique(ranked, priority, defs, wnids)
    assert len({text_key(p.text) for p in picks}) == n
    for p, cands in zip(picks, ranked, strict=True):
        assert p.text == cands[p.rank] if p.rank is not None else p.text.startswith(cands[0])


# ---------------------------------------------------------------------------------------------- the stage


def _images(folder: Path, colour: tuple[int, int, int], n: int = 3) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(sum(colour))
    for i in range(n):
        noise = rng.integers(-40, 40, (32, 32, 3))
        Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _write_classes(run: RunDir, rows: list[dict[str, Any]]) -> None:
    run.root.mkdir(parents=True, exist_ok=True)
    full = [{"index": i, "wnid": None, "definition": None, "real_images": 0, "real_dir": None, **r}
            for i, r in enumerate(rows)]
    run.classes.write_text("".join(json.dumps(r) + "\n" for r in full), encoding="utf-8")


@pytest.fixture
def cranes(tmp_path: Path) -> list[dict[str, Any]]:
    """Two classes named "crane" (bird, machine) with real images, and a sweater with a definition only."""
    return [
        {"name": "crane", "wnid": "n02012849", "definition": "large long-necked wading bird",
         "real_dir": str(_images(tmp_path / "img" / "bird", (200, 200, 210))), "real_images": 3},
        {"name": "crane", "wnid": "n03126707", "definition": "lifts and moves heavy objects",
         "real_dir": str(_images(tmp_path / "img" / "machine", (230, 180, 20))), "real_images": 3},
        {"name": "cardigan", "definition": "knitted jacket that is fastened up the front with buttons"},
    ]


def _use_llm(monkeypatch: pytest.MonkeyPatch, llm: Any) -> None:
    """The stage gets ``llm`` behind the real response cache, as it gets any backend."""
    import synthdiv.stages.disambiguate.stage
    from synthdiv.models.llm.cache import CachedLLM

    def create(spec: Any, cache_dir: Path | None = None) -> Any:
        return CachedLLM(llm, cache_dir, "fake", "scripted") if cache_dir else llm

    monkeypatch.setattr(synthdiv.stages.disambiguate.stage, "create_llm", create)


@pytest.mark.wordnet  # the homonyms' senses come from WordNet
def test_stage_resolves_every_class_and_keeps_them_unique(make_config, monkeypatch, cranes) -> None:
    from synthdiv.models.clip import create_scorer
    from synthdiv.stages.disambiguate.stage import resolve_classes

    cfg = make_config(disambiguate={"candidates": 2, "confusable": 2}, models={"clip": CLIP})
    run = RunDir(cfg.run_dir)
    _write_classes(run, cranes)
    same = '["a crane", "a grey crane standing in water"]'  # both cranes get the SAME answer
    cardigan = '["a wool cardigan", "a knitted cardigan sweater"]'
    fake = FakeLLM(same, f"Sure! Here you go:\n```json\n{same}\n```", cardigan)
    _use_llm(monkeypatch, fake)
    summary = resolve_classes(cfg, run)
    rows = read_jsonl(run.resolved)
    assert [list(r)[: len(RESOLVED_FIELDS)] for r in rows] == [list(RESOLVED_FIELDS)] * 3
    assert summary["classes"] == 3 and summary["fallbacks"] == 0 and summary["llm_requests"] == 3
    assert len({text_key(r["description"]) for r in rows}) == 3  # the two cranes never share a description
    # both cranes collide (and have five WordNet senses); the plain "cardigan" has two (the sweater, the corgi)
    assert summary["ambiguous"] == 3 and summary["left_bare"] == 0 and summary["ambiguous_collision"] == 2
    assert all(r["description"] != r["name"] for r in rows)
    for row in rows:
        by_text = {c["text"]: c for c in row["candidates"]}
        assert by_text[row["name"]]["rejected"].startswith("ambiguous bare name")
        assert row["description"] in by_text and by_text[row["description"]]["rejected"] is None
        assert sorted(c["rank"] for c in row["candidates"]) == list(range(len(row["candidates"])))
        assert row["status"] == "ok" and row["llm_id"] == "fake:scripted" and row["template_id"] == "disambiguate.v3"
        assert row["ambiguity"]["reasons"] and row["runner_up"] != row["description"]
    assert "crane (wading bird)" in {c["text"] for c in rows[0]["candidates"]}
    assert "crane (lifting device)" in {c["text"] for c in rows[1]["candidates"]}
    assert [r["basis"] for r in rows] == ["images", "images", "definition"]
    assert [r["chosen_by"].split(";")[0] for r in rows[:2]] == ["clip (signal)"] * 2  # real images: CLIP chooses
    assert rows[0]["confusable"][0] == "crane" and rows[1]["confusable"][0] == "crane"
    prompt = fake.calls[0]["messages"][-1]["content"]
    assert '"crane"' in prompt and 'Other meanings of "crane" that are NOT this class' in prompt
    assert "lifting device" in prompt  # the bird is told what the machine is
    # the scores are CLIP's: recompute the image-basis winner of the first crane independently
    scorer = create_scorer(cfg.models.clip)
    means = []
    for r in rows[:2]:
        emb = scorer.embed_images([Image.open(p).convert("RGB") for p in sorted(Path(r["real_dir"]).glob("*.png"))])
        means.append(emb.mean(0) / np.linalg.norm(emb.mean(0)))
    cands = [c["text"] for c in rows[0]["candidates"]]
    t = scorer.embed_texts([f"a photo of {c}." for c in cands])
    expected = t @ means[0] - t @ means[1]
    got = {c["text"]: c["score"] for c in rows[0]["candidates"]}
    np.testing.assert_allclose([got[c] for c in cands], expected, atol=1e-4)
    valid = [k for k, c in enumerate(cands) if c != "crane"]  # the bare name may not win, however CLIP scores it
    assert rows[0]["description"] == cands[max(valid, key=lambda k: expected[k])]
    assert rows[0]["candidates"][0]["other_class"] == 1


@pytest.mark.wordnet  # the homonyms' senses come from WordNet
def test_a_failed_llm_answer_is_a_fallback_and_the_stage_goes_on(make_config, monkeypatch, cranes) -> None:
    from synthdiv.stages.disambiguate.stage import resolve_classes

    cfg = make_config(disambiguate={"candidates": 2, "max_retries": 1}, models={"clip": CLIP})
    run = RunDir(cfg.run_dir)
    _write_classes(run, cranes[1:])
    # the classes are asked together, round by round: crane, cardigan, then crane's corrective retry
    _use_llm(monkeypatch, FakeLLM('["crane", "[]"]', '["a wool cardigan", "a knitted cardigan sweater"]', ""))
    summary = resolve_classes(cfg, run)
    rows = read_jsonl(run.resolved)
    assert summary["fallbacks"] == 1 and summary["llm_requests"] == 3
    assert rows[0]["status"] == "fallback" and rows[0]["llm_error"] and rows[0]["llm_attempts"] == 2
    # no LLM candidate, but the grounded ones (WordNet hypernym, definition) still settle the ambiguous name
    assert sorted(c["source"] for c in rows[0]["candidates"]) == ["definition", "hypernym", "name"]
    assert rows[0]["description"] in ("crane (lifting device)", "crane, lifts and moves heavy objects")
    assert rows[1]["status"] == "ok"


def test_off_topic_and_placeholder_candidates_are_rejected(make_config, monkeypatch) -> None:
    from synthdiv.stages.disambiguate.stage import resolve_classes

    cfg = make_config(disambiguate={"candidates": 1, "confusable": 0, "max_retries": 1, "max_words": 6},
                      models={"clip": CLIP})
    run = RunDir(cfg.run_dir)
    _write_classes(run, [{"name": "ankle_boot"}])
    fake = FakeLLM('["[description]", "a tall grey wading bird", "ankle boot", "a boot with a very long and winding '
                   'description"]', '["Description: black leather ankle boots"]')
    _use_llm(monkeypatch, fake)
    resolve_classes(cfg, run)
    (row,) = read_jsonl(run.resolved)
    assert [c["text"] for c in row["candidates"] if c["source"] == "llm"] == ["black leather ankle boots"]
    reasons = dict(row["llm_rejected"])
    assert reasons == {"[description]": "contains a template placeholder",
                       "a tall grey wading bird": "does not name the class (ankle_boot)",
                       "ankle boot": "only repeats the class name",
                       "a boot with a very long and winding description": "longer than 6 words"}
    assert "1 different strings" in fake.calls[1]["messages"][-1]["content"]  # the corrective retry


class _Broken(FakeLLM):
    def complete(self, messages, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if "boom" in messages[-1]["content"]:
            raise ConnectionError("server went away")
        return super().complete(messages, **kwargs)


def test_backend_errors_are_recorded_unless_the_llm_never_works(make_config, monkeypatch) -> None:
    from synthdiv.stages.disambiguate.stage import resolve_classes

    cfg = make_config(disambiguate={"candidates": 1, "confusable": 0}, models={"clip": CLIP})
    run = RunDir(cfg.run_dir)
    # one-sense names (WordNet), so nothing is ambiguous and the names may stay
    _write_classes(run, [{"name": "goldfish"}, {"name": "boomslang"}, {"name": "zebra"}])
    _use_llm(monkeypatch, _Broken('["a goldfish in orange"]', '["a striped zebra"]'))
    resolve_classes(cfg, run)
    rows = read_jsonl(run.resolved)
    assert [r["status"] for r in rows] == ["ok", "fallback", "ok"]
    assert rows[1]["llm_error"] == "ConnectionError: server went away" and rows[1]["description"] == "boomslang"
    assert [r["basis"] for r in rows] == ["none"] * 3  # no images, no definitions: the name stays first
    assert [r["description"] for r in rows] == ["goldfish", "boomslang", "zebra"]
    _write_classes(run, [{"name": "boom"}, {"name": "boom box"}, {"name": "boom arm"}])
    _use_llm(monkeypatch, _Broken())
    with pytest.raises(ConnectionError):
        resolve_classes(cfg, run)


def test_disabled_loads_no_model(make_config, monkeypatch, cranes) -> None:
    import synthdiv.stages.disambiguate.stage
    from synthdiv.stages.disambiguate.stage import resolve_classes

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("no model may be loaded when disambiguation is disabled")

    monkeypatch.setattr(synthdiv.stages.disambiguate.stage, "create_scorer", refuse)
    monkeypatch.setattr("synthdiv.stages.disambiguate.stage.create_llm", refuse)
    cfg = make_config(disambiguate={"enabled": False})
    run = RunDir(cfg.run_dir)
    _write_classes(run, cranes)
    assert resolve_classes(cfg, run)["changed"] == 0
    rows = read_jsonl(run.resolved)
    assert [(r["description"], r["status"]) for r in rows] == [("crane", "disabled")] * 2 + [("cardigan", "disabled")]


def test_engine_rerun_is_free_from_the_llm_cache(make_config, monkeypatch, cranes) -> None:
    from synthdiv.engine.runner import run_stage
    from synthdiv.models.llm.cache import CachedLLM

    cfg = make_config(disambiguate={"candidates": 2}, models={"clip": CLIP})
    run = RunDir(cfg.run_dir)
    _write_classes(run, cranes)
    replies = ['["a grey crane bird", "a crane wading"]', '["a tower crane", "a crane lifting steel"]',
               '["a wool cardigan", "a knitted cardigan sweater"]']
    fake = FakeLLM(*replies)
    monkeypatch.setattr("synthdiv.stages.disambiguate.stage.create_llm",
                        lambda spec, cache_dir=None: CachedLLM(fake, cache_dir, "fake", "f"))
    first = run_stage(cfg, "disambiguate")
    assert first["llm_cache_misses"] == 3 and first["llm_cache_hits"] == 0
    before = run.resolved.read_text()
    assert run_stage(cfg, "disambiguate")["skipped"] is True
    again = run_stage(cfg, "disambiguate", redo=True)  # the fake's queue is empty: any real call would fail
    assert again["llm_cache_hits"] == 3 and again["llm_cache_misses"] == 0
    assert run.resolved.read_text() == before


@pytest.mark.wordnet  # the homonyms' senses come from WordNet
def test_table_shows_original_chosen_and_runner_up(make_config, monkeypatch, cranes) -> None:
    from rich.console import Console

    from synthdiv.stages.disambiguate.stage import resolve_classes
    from synthdiv.stages.disambiguate.table import disambiguation_table

    cfg = make_config(disambiguate={"candidates": 1}, models={"clip": CLIP})
    with pytest.raises(StageOrderError, match="run `synthdiv disambiguate` first"):
        disambiguation_table(cfg)
    run = RunDir(cfg.run_dir)
    _write_classes(run, cranes)
    _use_llm(monkeypatch, FakeLLM('["a grey crane bird"]', '["a tower crane"]', '["a wool cardigan"]'))
    resolve_classes(cfg, run)
    console = Console(record=True, width=250)
    console.print(disambiguation_table(cfg))
    text = console.export_text()
    for row in read_jsonl(run.resolved):
        assert row["description"] in text and row["runner_up"] in text
        assert f"{row['margin']:+.3f}" in text
    assert "runner-up" in text and "definition" in text and "why ambiguous" in text
    assert "same CLIP tokens as class" in text
    assert "3 of 3 classes ambiguous" in text and "0 left bare" in text


def test_bad_classes_file_names_the_line(make_config, tmp_path) -> None:
    from synthdiv.stages.classes.reader import read_classes

    path = tmp_path / "classes.jsonl"
    path.write_text('{"index": 0, "name": "a", "wnid": null, "definition": null, "real_images": 0, "real_dir": null}\n'
                    '{"index": 1, "name": "b"}\n')
    with pytest.raises(InputError, match=r"classes\.jsonl:2: missing field\(s\) wnid, definition"):
        read_classes(path)
    path.write_text("\n")
    with pytest.raises(InputError, match=r"classes\.jsonl: no classes"):
        read_classes(path)
    path.write_text("{not json\n")
    with pytest.raises(InputError, match=r"classes\.jsonl:1: not a JSON object"):
        read_classes(path)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 30 s on an idle 2-core machine; much more when the cores are shared
@pytest.mark.skipif(not SMOKE_TRAIN.is_dir(), reason="the Fashion-MNIST smoke subset is not in this checkout")
def test_real_embedded_llm_on_fashion_mnist(make_config) -> None:
    """The embedded SmolLM2 (through the transformers backend) and tiny CLIP on three real classes, then a rerun
    that is served from the LLM cache and writes the same file."""
    from synthdiv.stages.disambiguate.confusable import mentions_name
    from synthdiv.stages.disambiguate.stage import resolve_classes

    cfg = make_config(
        disambiguate={"candidates": 2, "confusable": 2, "images_per_class": 4, "max_retries": 0, "max_tokens": 64},
        models={"clip": CLIP, "llm": {"backend": "transformers", "model": "embedded", "device": "cpu"}},
    )
    run = RunDir(cfg.run_dir)
    names = ["coat", "sneaker", "bag"]
    _write_classes(run, [{"name": n, "real_dir": str(SMOKE_TRAIN / n), "real_images": 100} for n in names])
    first = resolve_classes(cfg, run)
    rows = read_jsonl(run.resolved)
    assert [r["name"] for r in rows] == names and first["classes"] == 3
    assert first["llm_cache_misses"] == first["llm_requests"] >= 3 and first["llm_cache_hits"] == 0
    assert first["fallbacks"] < 3  # the real model gave usable candidates for at least one class
    assert len({text_key(r["description"]) for r in rows}) == 3
    for row in rows:
        assert row["status"] in ("ok", "fallback") and "transformers" in row["llm_id"]
        assert row["basis"] == "images" and row["real_images_used"] == 4
        assert row["candidates"][0]["score"] >= row["candidates"][-1]["score"]
        assert any(c["text"] == row["name"] and c["source"] == "name" for c in row["candidates"])
        lemmas = set((row["sense"] or {}).get("lemmas") or [])  # a settled sense's other names ("gym shoe")
        assert all(mentions_name(c["text"], row["name"]) or c["text"] in lemmas for c in row["candidates"])
    if wordnet_dir() is not None:  # the list (clothes) settles the sneaker; the random CLIP does not overturn it
        sneaker = rows[1]["sense"]
        assert (sneaker["wnid"], sneaker["evidence"]) == ("n03472535", "list (wordnet)")
        assert "informer" not in rows[1]["description"]
    before = run.resolved.read_text()
    second = resolve_classes(cfg, run)
    assert second["llm_cache_hits"] == first["llm_cache_misses"] and second["llm_cache_misses"] == 0
    assert run.resolved.read_text() == before


def test_show_disambiguation_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from synthdiv.cli.app import main

    config = tmp_path / "run.yaml"
    config.write_text("run_dir: run\ndisambiguate:\n  enabled: false\n", encoding="utf-8")
    assert main(["show", "disambiguation", "-c", str(config)]) == 2  # nothing resolved yet: a one-line error
    assert "run `synthdiv run --until disambiguate" in capsys.readouterr().err
    _write_classes(RunDir(tmp_path / "run"), [{"name": "crane"}, {"name": "cardigan"}])
    assert main(["disambiguate", "-c", str(config)]) == 0
    assert main(["show", "disambiguation", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "crane" in out and "cardigan" in out and "disabled" in out


@pytest.mark.skipif(not SMOKE_TRAIN.is_dir(), reason="the Fashion-MNIST smoke subset is not in this checkout")
def test_after_the_real_classes_stage(make_config, monkeypatch) -> None:
    """classes.jsonl as the catalog writes it (an ImageFolder): real_dir is read, images are sampled and scored."""
    from synthdiv.engine.runner import run_stage

    cfg = make_config(
        classes={"source": str(SMOKE_TRAIN), "max_classes": 3},
        disambiguate={"candidates": 1, "max_retries": 0, "images_per_class": 5, "require_name": False},
        models={"clip": CLIP},
    )
    _use_llm(monkeypatch, FakeLLM('["a leather boot"]', '["a canvas handbag"]', '["a wool overcoat"]'))
    run_stage(cfg, "classes")
    summary = run_stage(cfg, "disambiguate")
    rows = read_jsonl(RunDir(cfg.run_dir).resolved)
    assert summary["classes"] == 3 and summary.get("basis_images") == 3
    assert all(r["real_images_used"] == 5 and r["real_images"] >= 5 for r in rows)
    assert [c["source"] for c in rows[0]["candidates"]].count("llm") == 1


def test_the_classes_are_asked_together_round_by_round(make_config, monkeypatch, cranes) -> None:
    """One batch per round (a batching backend's whole point), and the same answers as asking class by class."""
    from synthdiv.stages.disambiguate.stage import resolve_classes

    class Batching(FakeLLM):
        def __init__(self, *replies: str) -> None:
            super().__init__(*replies)
            self.batches: list[int] = []

        def complete_many(self, requests):  # noqa: ANN001, ANN201
            self.batches.append(len(requests))
            return [r.send(self) for r in requests]

    replies = ['["a grey crane bird", "a crane wading"]', '["a tower crane", "a crane lifting steel"]',
               '["a wool cardigan", "a knitted cardigan sweater"]']
    cfg = make_config(disambiguate={"candidates": 2}, models={"clip": CLIP})
    run = RunDir(cfg.run_dir)
    _write_classes(run, cranes)
    together = Batching(*replies)
    _use_llm(monkeypatch, together)
    resolve_classes(cfg, run)
    assert together.batches == [3]
    batched = run.resolved.read_text()
    _use_llm(monkeypatch, FakeLLM(*replies))
    # force class by class
    monkeypatch.setattr("synthdiv.stages.disambiguate.propose.ask_list_many", lambda llm, calls: 1 / 0)
    import shutil

    shutil.rmtree(run.cache)
    resolve_classes(cfg, run)
    assert run.resolved.read_text() == batched
