"""The card's tables hold any class name, and publishing a run again gives the same card and Croissant document
(its ``datePublished`` is the day the run's images were made, not the day of the publish)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from synthdiv.core.rundir import RunDir, StageState
from synthdiv.publish import build
from synthdiv.publish.card import table_cell
from synthdiv.publish.croissant import published_date
from synthdiv.publish.layout import PublishedDir
from tests.data.toydata import make_toy_run


def _toy(tmp_path, make_config, name: str = "class0"):
    paths = make_toy_run(tmp_path / "toy", num_classes=2, syn_per_class=2)
    run = RunDir(paths["run"])
    rows = [json.loads(line) for line in run.classes.read_text().splitlines()]
    rows[0]["name"] = name
    run.classes.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return make_config(run_dir=str(paths["run"])), run


def test_a_table_cell_escapes_the_pipe_and_joins_lines():
    assert table_cell("a|b") == "a\\|b"
    assert table_cell("one\ntwo\r\nthree") == "one two three"
    assert table_cell(3) == "3"


def test_a_pipe_in_a_class_name_stays_inside_its_cell(tmp_path, make_config):
    cfg, _ = _toy(tmp_path, make_config, name="cat | dog")
    body = PublishedDir(build.publish(cfg, tmp_path / "set", mark=False).path).card.read_text()
    row = next(line for line in body.splitlines() if line.startswith("| 0 | cat"))
    assert row.startswith("| 0 | cat \\| dog | n00000000 |")
    header = next(line for line in body.splitlines() if line.startswith("| index | name |"))
    assert row.replace("\\|", "").count("|") == header.count("|")
    kinds = next(line for line in body.splitlines() if line.startswith("| cat \\| dog |"))
    assert kinds.replace("\\|", "").count("|") == 3  # one prompt kind: the name and its count


def test_publishing_twice_gives_the_same_card_and_croissant(tmp_path, make_config):
    cfg, run = _toy(tmp_path, make_config)
    made = datetime(2024, 2, 29, 23, 30, tzinfo=UTC).timestamp()
    run.write_state(StageState(stage="generate", status="done", fingerprint="fp", started_at=made - 60,
                               finished_at=made, summary={}))
    for parent in ("one", "two"):
        (tmp_path / parent).mkdir()
    first = PublishedDir(build.publish(cfg, tmp_path / "one" / "set", mark=False).path)
    second = PublishedDir(build.publish(cfg, tmp_path / "two" / "set", mark=False).path)
    assert json.loads(first.croissant.read_text())["datePublished"] == "2024-02-29"
    assert first.croissant.read_bytes() == second.croissant.read_bytes()
    assert first.card.read_bytes() == second.card.read_bytes()


def test_the_date_falls_back_to_today_without_a_recorded_generate_stage():
    assert published_date(None) == datetime.now().date().isoformat()
    assert published_date(0.0) == "1970-01-01"
