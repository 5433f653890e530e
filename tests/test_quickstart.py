"""The smoke pipeline end to end, as `make quickstart` runs it: every stage, then a rerun that does nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ("classes", "disambiguate", "prompts", "plan", "generate", "score", "train", "evaluate", "report")


def _synthdiv(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "synthdiv", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=2700)  # minutes on two idle cores; a wide margin for a loaded machine


def _states(table: str) -> dict[str, str]:
    """stage -> state, from the rows of `synthdiv status`'s table (cells between box-drawing bars)."""
    rows = [[cell.strip() for cell in line.strip().strip("│").split("│")] for line in table.splitlines() if "│" in line]
    return {row[0]: row[1] for row in rows if len(row) >= 2 and row[0] in STAGES}


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_quickstart_runs_every_stage_then_does_nothing(tmp_path: Path):
    run = tmp_path / "quickstart"
    first = _synthdiv("run", "-c", "examples/quickstart.yaml", "--run-dir", str(run))
    assert first.returncode == 0, first.stderr[-3000:]

    classes = (run / "classes.jsonl").read_text().splitlines()
    assert len(classes) == 10 and json.loads(classes[0])["real_images"] == 100
    resolved = [json.loads(line) for line in (run / "classes.resolved.jsonl").read_text().splitlines()]
    assert len({r["description"] for r in resolved}) == 10
    prompts = pq.read_table(run / "prompts.parquet")
    assert set(prompts.column("kind").to_pylist()) <= {"base", "context", "style"}
    plan = pq.read_table(run / "plan.parquet")
    manifest = ds.dataset(run / "manifest.parquet").to_table()
    assert plan.num_rows == 80 and sorted(manifest.column("image_id").to_pylist()) == sorted(
        plan.column("image_id").to_pylist())
    assert pq.read_table(run / "scores.parquet").num_rows == 80
    for variant in ("real", "real+syn"):
        assert (run / "export" / variant / "model.safetensors").exists()
        top1 = json.loads((run / "eval" / variant / "test.json").read_text())["top1"]
        assert 0.0 <= top1 <= 1.0
    html = (run / "report" / "index.html").read_text()
    assert "carry no class signal" in html
    status = _synthdiv("status", "-c", "examples/quickstart.yaml", "--run-dir", str(run))
    assert status.returncode == 0, status.stderr[-3000:]
    assert _states(status.stdout) == dict.fromkeys(STAGES, "done"), status.stdout

    stamps = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and ".synthdiv" not in p.parts}
    second = _synthdiv("run", "-c", "examples/quickstart.yaml", "--run-dir", str(run))
    assert second.returncode == 0, second.stderr[-3000:]
    log = " ".join(second.stderr.split())
    for stage in STAGES:
        assert f"stage {stage} is done and its config and inputs are unchanged: nothing to do" in log
    assert "every stage is done and unchanged: nothing to do" in log
    changed = [p for p, t in stamps.items() if p.exists() and p.stat().st_mtime_ns != t]
    assert changed == []

    # published, the folder loads with every label, checks out, and ten of its images are made again exactly
    import datasets

    folder = tmp_path / "quickstart-synth"
    published = _synthdiv("publish", str(run), "--out", str(folder))
    assert published.returncode == 0, published.stderr[-3000:]
    loaded = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf-cache"))
    labels = dict(zip(manifest.column("image_id").to_pylist(), manifest.column("class").to_pylist(), strict=True))
    assert {row["__key__"]: int(row["cls"]) for row in loaded} == labels
    checked = _synthdiv("verify", "--dataset", str(folder))
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "2 shards, 80 images intact; no damage" in checked.stdout
    assert "made again from the recipe: 10 images, 10 exact" in checked.stdout
