"""The diversity report: its numbers, class selection, errors, and ``synthdiv show prompts``."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from synthdiv.core.ids import prompt_id
from synthdiv.core.schemas import PROMPTS_SCHEMA
from synthdiv.errors import InputError, StageOrderError
from synthdiv.stages.prompts.diversity import distinct_word_ratio, diversity_report, mean_pairwise_distance


def test_distinct_word_ratio():
    assert distinct_word_ratio(["a photo of a cat", "a photo of a cat"]) == pytest.approx(4 / 10)
    assert distinct_word_ratio(["red fox", "blue jay"]) == 1.0
    assert distinct_word_ratio([]) == 0.0


def test_mean_pairwise_distance_matches_brute_force():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(7, 5))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    brute = np.mean([1 - emb[i] @ emb[j] for i, j in itertools.combinations(range(7), 2)])
    assert mean_pairwise_distance(emb) == pytest.approx(brute)
    assert mean_pairwise_distance(np.repeat(emb[:1], 4, axis=0)) == pytest.approx(0.0, abs=1e-9)
    assert mean_pairwise_distance(emb[:1]) is None


def _write(run_dir, rows):
    table = pa.Table.from_pylist(
        [{"prompt_id": prompt_id(c, k, t), "class": c, "class_name": n, "kind": k, "text": t, "negative": "",
          "context": None, "style": None, "template_id": "t", "llm_id": None} for c, n, k, t in rows],
        schema=PROMPTS_SCHEMA,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, run_dir / "prompts.parquet")


ROWS = [
    (0, "goldfish", "base", "a photo of a goldfish"),
    (0, "goldfish", "context", "a photo of a goldfish in a pond"),
    (0, "goldfish", "context", "a photo of a goldfish on a table"),
    (0, "goldfish", "style", "an origami of a goldfish"),
    (1, "crane", "base", "a photo of a crane"),
]


def _text(renderable) -> str:
    console = Console(record=True, width=200)
    console.print(renderable)
    return console.export_text()


def test_report_with_the_embedded_clip(make_config):
    cfg = make_config()
    _write(cfg.run_dir, ROWS)
    out = _text(diversity_report(cfg))
    line = next(li for li in out.splitlines() if li.strip().startswith("│ goldfish") or "goldfish  " in li)
    cells = [c.strip() for c in line.strip("│ ").split("│")]
    assert cells[:6] == ["goldfish", "1", "2", "1", "0", "0"]  # base, context, style, caption-context, target-style
    assert float(cells[6]) == pytest.approx(distinct_word_ratio([r[3] for r in ROWS[:4]]), abs=0.005)
    assert 0 < float(cells[7]) <= 2
    assert "an origami of a goldfish" in out and "crane" in out


def test_report_for_one_class_and_unknown_class(make_config):
    cfg = make_config()
    _write(cfg.run_dir, ROWS)
    out = _text(diversity_report(cfg, "crane"))
    assert "crane" in out and "goldfish" not in out
    with pytest.raises(InputError, match="--class 'heron'"):
        diversity_report(cfg, "heron")


def test_report_before_the_prompts_stage(make_config):
    with pytest.raises(StageOrderError, match="synthdiv prompts"):
        diversity_report(make_config())


def test_show_prompts_command(tmp_path, capsys):
    from synthdiv.cli.app import main

    _write(tmp_path / "run", ROWS)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: run\n")
    assert main(["show", "prompts", "-c", str(cfg), "--class", "goldfish"]) == 0
    assert "a photo of a goldfish in a pond" in capsys.readouterr().out
    assert main(["show", "prompts", "-c", str(cfg), "--class", "nope"]) == 2


def test_show_prompts_loads_clip_only_with_the_flag(tmp_path, capsys, monkeypatch):
    """Counts, word ratios and samples need no model; ``--clip`` adds the distance column (and loads CLIP)."""
    import synthdiv.models.clip
    from synthdiv.cli.app import main

    _write(tmp_path / "run", ROWS)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: run\n")

    def no_model(*args, **kwargs):
        raise AssertionError("show prompts loaded a CLIP model without --clip")

    with monkeypatch.context() as m:
        m.setattr(synthdiv.models.clip, "create_scorer", no_model)
        assert main(["show", "prompts", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "a photo of a goldfish in a pond" in out and "CLIP distance" not in out
    assert main(["show", "prompts", "-c", str(cfg), "--clip", "--class", "goldfish"]) == 0
    assert "CLIP distance" in capsys.readouterr().out
