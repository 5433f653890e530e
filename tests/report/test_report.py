"""The report stage: a self-contained page over every artifact, rendered by headless Chromium with all images loaded."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from synthdiv.run import RunDir, write_parquet_atomic
from synthdiv.schemas import PROMPTS_SCHEMA, SCORES_SCHEMA
from synthdiv.stages import run_stage
from tests.data.toydata import make_toy_run


def _fill_run(root: Path) -> None:
    """Artifacts of every stage before report, in their contract formats (small, hand-made)."""
    run = RunDir(root)
    classes = [json.loads(line) for line in run.classes.read_text().splitlines()]
    resolved = []
    for c in classes:
        desc = f"{c['name']} <object>"
        resolved.append({**c, "description": desc, "status": "ok", "llm_id": "fake", "template_id": "t.v1",
                         "candidates": [{"text": desc, "source": "llm", "score": 0.3},
                                        {"text": c["name"], "source": "name", "score": 0.1}],
                         "ambiguity": {"kinds": ["polysemy"], "reasons": ["2 noun senses in WordNet"]},
                         "chosen_by": "clip (signal)", "runner_up": c["name"], "margin": 0.2, "bare": False})
    run.resolved.write_text("".join(json.dumps(r) + "\n" for r in resolved))
    rows = [
        {"prompt_id": f"{c['index']}-{kind}", "class": c["index"], "class_name": c["name"], "kind": kind,
         "text": f"a {kind} photo of {c['name']}", "negative": "", "context": None, "style": None,
         "template_id": "t", "llm_id": "fake"}
        for c in classes for kind in ("base", "context", "style")
    ]
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=PROMPTS_SCHEMA), run.prompts)
    from synthdiv.generate.shards import read_manifest

    ids = read_manifest(run).column("image_id").to_pylist()
    scores = [{"image_id": i, "similarity": 0.2 + 0.001 * n, "class_rank": n % 3, "margin": 0.01 * (n % 5 - 2)}
              for n, i in enumerate(ids)]
    write_parquet_atomic(pa.Table.from_pylist(scores, schema=SCORES_SCHEMA), run.scores)
    for variant, acc in (("real", 0.61), ("real+syn", 0.64)):
        (run.train / variant).mkdir(parents=True)
        (run.train / variant / "metrics.jsonl").write_text(
            "".join(json.dumps({"step": s, "loss": 2.0 / s}) + "\n" for s in range(1, 6)))
        (run.eval / variant).mkdir(parents=True)
        for name, shift in (("test", 0.0), ("test-edges", 0.2)):
            (run.eval / variant / f"{name}.json").write_text(json.dumps({"top1": acc - shift, "top5": 0.9}))
    (run.eval / "<script>.json").write_text("not json")


@pytest.fixture
def report_cfg(tmp_path: Path, make_config):
    paths = make_toy_run(tmp_path / "toy", num_classes=3, syn_per_class=4)
    _fill_run(paths["run"])
    return make_config(run_dir=str(paths["run"]), classes={"source": str(paths["real"])},
                       report={"samples_per_class": 4})


def test_report_holds_every_section(report_cfg):
    summary = run_stage(report_cfg, "report")
    html = Path(summary["path"]).read_text()
    for section in ("summary", "disambiguation", "prompts", "samples", "scores", "training", "accuracy", "config"):
        assert f'id="{section}"' in html
    assert "randomly initialised generator and clip models" in html
    assert "class0 &lt;object&gt;" in html and "<object>" not in html  # escaped
    assert "3 of 3 classes ambiguous (polysemy 3); settled by clip (signal) 3; 0 left bare" in html
    assert "<td class=\"muted\">2 noun senses in WordNet</td>" in html and "<td>clip (signal)</td>" in html
    assert re.search(r"<td>real\+syn</td><td class=\"num\">64\.0</td><td class=\"num\">44\.0</td>", html)
    assert html.count('src="data:image/png;base64,') == summary["sample_sheets"] + summary["plots"] == 4
    assert "http://" not in html and "https://" not in html  # opens from disk, nothing fetched
    assert (RunDir(report_cfg.run_dir).report / "samples.png").exists()


def test_report_without_later_stages(make_config, tmp_path: Path):
    paths = make_toy_run(tmp_path / "toy", num_classes=2, syn_per_class=0)
    cfg = make_config(run_dir=str(paths["run"]), classes={"source": str(paths["real"])})
    html = Path(run_stage(cfg, "report")["path"]).read_text()
    assert "The evaluate stage has not run." in html and "No images have been generated yet." in html


def test_control_characters_never_reach_the_report_raw(make_config, tmp_path: Path):
    paths = make_toy_run(tmp_path / "toy", num_classes=2, syn_per_class=0)
    run = RunDir(paths["run"])
    rows = [json.loads(line) for line in run.classes.read_text().splitlines()]
    rows[0]["name"] = "gold\x1b[31mfish\u202e<b>"  # a hand-edited classes.jsonl: the report is its last guard
    resolved = [{**r, "description": r["name"], "status": "ok", "llm_id": "fake", "template_id": "t",
                 "candidates": []} for r in rows]
    run.classes.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run.resolved.write_text("".join(json.dumps(r) + "\n" for r in resolved))
    cfg = make_config(run_dir=str(paths["run"]), classes={"source": str(paths["real"])})
    html = Path(run_stage(cfg, "report")["path"]).read_text()
    assert "\x1b" not in html and "\u202e" not in html
    assert "gold\\x1b[31mfish\\u202e&lt;b&gt;" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_renders_in_chromium_with_every_image_loaded(report_cfg, tmp_path: Path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make system-deps` installs Debian's chromium for this test")
        pytest.skip("chromium not installed (make system-deps installs it)")
    page = Path(run_stage(report_cfg, "report")["path"])
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert loaded, "the page's load script did not run"
    assert loaded.group(1) == loaded.group(2) == "4"
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, "--window-size=1200,900", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1200, 900) and len(img.convert("L").getcolors(256)) > 10
