"""The report stage: a self-contained page over every artifact, rendered by headless Chromium with all images loaded."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import PROMPTS_SCHEMA, SCORES_SCHEMA
from synthdiv.engine.runner import run_stage
from synthdiv.utils.io import write_parquet_atomic
from tests.data.toydata import make_toy_run

KINDS = ("base", "context", "style")


def _eval_result(run: RunDir, variant: str, name: str, labels: np.ndarray, hits: np.ndarray, names: list[str],
                 keep_predictions: bool = True) -> None:
    """``eval/<variant>/<name>.json`` (and ``.npz``) as the evaluate stage writes them, for the given hits."""
    from synthdiv.metrics.accuracy import accuracy_report, long_tail_splits, named_confused_pairs

    topk = np.stack([np.where(hits, labels, (labels + 1) % 3), (labels + 2) % 3], 1)
    report = {"variant": variant, "set": name, **accuracy_report(topk, labels, names), "corrupt": 0,
              "long_tail": long_tail_splits(hits, labels, [150, 50, 5]),
              "confused": named_confused_pairs(topk[:, 0], labels, names, 20)}
    (run.eval / variant).mkdir(parents=True, exist_ok=True)
    (run.eval / variant / f"{name}.json").write_text(json.dumps(report))
    if keep_predictions:
        np.savez(run.eval / variant / f"{name}.npz", labels=labels.astype(np.int32), topk=topk.astype(np.int32))


def _fill_run(root: Path) -> None:
    """Artifacts of every stage before report, in their contract formats (small, hand-made)."""
    import pyarrow.parquet as pq

    from synthdiv.stages.generate.reader import read_manifest
    from synthdiv.stages.generate.shards import complete_shards

    run = RunDir(root)
    classes = [json.loads(line) for line in run.classes.read_text().splitlines()]
    names = [c["name"] for c in classes]
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
        for c in classes for kind in KINDS
    ]
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=PROMPTS_SCHEMA), run.prompts)
    for shard in complete_shards(run):  # give each image a prompt of its class, the kinds in turn
        part = pq.read_table(run.manifest_part(shard))
        seeds, cls = part.column("seed").to_pylist(), part.column("class").to_pylist()
        ids = pa.array([f"{c}-{KINDS[s % 3]}" for c, s in zip(cls, seeds, strict=True)])
        column = part.column_names.index("prompt_id")
        pq.write_table(part.set_column(column, "prompt_id", ids), run.manifest_part(shard))
    ids = read_manifest(run).column("image_id").to_pylist()
    scores = [{"image_id": i, "similarity": 0.2 + 0.001 * n, "class_rank": n % 3, "margin": 0.01 * (n % 5 - 2),
               "prob": 0.2 + 0.05 * (n % 4), "best_other": 0, "dup_of": i, "memorized": False}
              for n, i in enumerate(ids)]
    write_parquet_atomic(pa.Table.from_pylist(scores, schema=SCORES_SCHEMA), run.scores)
    group = {"images": 4, "mean_distance": 0.31, "vendi": 2.5, "real_images": 5, "frechet": 0.7, "kid": 0.01,
             "precision": 0.5, "recall": 0.25}
    (run.root / "quality.json").write_text(json.dumps({"model": "embedded", "classes": {
        str(c): {"duplicates": c, "memorized": 0, "all": {**group, "vendi": 2.0 + c}, "base": group}
        for c in range(len(classes))}}))
    labels = np.arange(300) % 3
    for variant, right, spe in (("real", (100, 40, 43), 5), ("real+syn", (100, 53, 39), 3)):  # 61.0 %, 64.0 %
        (run.train / variant).mkdir(parents=True)
        (run.train / variant / "data.json").write_text(json.dumps({"steps_per_epoch": spe}))
        train_rows = [{"step": s, "loss": 2.0 / s, "epoch": s / spe} for s in range(1, 2 * spe + 1)]
        val_rows = [{"step": e * spe, "epoch": e, "split": "val", "val_loss": 1.5 / e, "val_top1": 0.3 * e,
                     "val_top5": 0.9, "val_images": 20} for e in (1, 2)]
        (run.train / variant / "metrics.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in sorted(train_rows + val_rows, key=lambda r: r["step"])))
        hits = np.zeros(300, dtype=bool)  # the first `right[c]` images of class c are right
        for c, n in enumerate(right):
            hits[np.flatnonzero(labels == c)[:n]] = True
        _eval_result(run, variant, "test", labels, hits, names)
        _eval_result(run, variant, "test-edges", labels, hits & (labels != 1), names, keep_predictions=False)
    (run.eval / "<script>.json").write_text("not json")


@pytest.fixture
def report_cfg(tmp_path: Path, make_config):
    paths = make_toy_run(tmp_path / "toy", num_classes=3, syn_per_class=4)
    _fill_run(paths["run"])
    return make_config(run_dir=str(paths["run"]), classes={"source": str(paths["real"])},
                       train={"variants": {"real": {"synthetic_fraction": 0}, "real+syn": {"filters": ["clip-top1"]}}},
                       report={"samples_per_class": 4, "bootstrap": 1000})


def _rows(html: str, table_class: str) -> list[list[str]]:
    """The cell texts of each row of the first table with ``table_class``."""
    table = html.split(f'<table class="{table_class}">', 1)[1].split("</table>", 1)[0]
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)]


def test_report_holds_every_section(report_cfg):
    summary = run_stage(report_cfg, "report")
    html = Path(summary["path"]).read_text()
    for section in ("summary", "disambiguation", "prompts", "samples", "scores", "quality", "training", "accuracy",
                    "config"):
        assert f'id="{section}"' in html
    assert "randomly initialised generator and clip models" in html
    assert "class0 &lt;object&gt;" in html and "<object>" not in html  # escaped
    assert "3 of 3 classes ambiguous (polysemy 3); settled by clip (signal) 3; 0 left bare" in html
    assert '<th class="num">caption-context</th>' in html and '<th class="num">of them img2img</th>' in html
    assert "<td class=\"muted\">2 noun senses in WordNet</td>" in html and "<td>clip (signal)</td>" in html
    results = _rows(html, "results")
    assert results[1][:3] == ["test", "real (baseline)", "61.0"] and results[1][5] == ""
    test_syn, edges_syn = results[2], results[4]
    assert test_syn[1:3] == ["real+syn", "64.0"] and test_syn[5] == "+3.0"
    lo, hi = (float(v) for v in test_syn[6].split(" to "))
    assert 0 < lo < 3.0 < hi < 6  # 13 images more right, 4 fewer, of 300: a paired interval of +3.0 +- 2.7
    assert re.fullmatch(r"\d+\.\d to \d+\.\d", test_syn[3])
    assert results[3][:3] == ["test-edges", "real (baseline)", "47.7"]
    assert edges_syn[1:3] == ["real+syn", "46.3"] and edges_syn[5] == "-1.3"
    assert edges_syn[6] == ""  # no predictions kept: no interval
    assert _rows(html, "gains")[1:] == [["class1", "40.0", "53.0", "+13.0", "100"]]
    assert _rows(html, "losses")[1:] == [["class2", "43.0", "39.0", "-4.0", "100"]]
    confused = _rows(html, "confused")  # real: class1's misses are predicted as class2, class2's as class0
    assert confused[2:4] == [["class1", "class2", "60", "60.0"], ["class2", "class0", "57", "57.0"]]
    assert summary["sample_images"] == 3 * 4 and html.count('<figure class="sample">') == 12
    assert html.count("a context photo of class1") >= 1 and '<span class="cls">class1</span>' in html
    assert "kept by clip-top1" in html and "lowest mean CLIP probability first; showing 3 of 3 classes" in html
    assert "lowest Vendi score (least diverse) first" in html
    # 2 score histograms and 3 training plots (loss, validation top-1, validation loss by epoch)
    assert summary["plots"] == 5 and html.count('src="data:image/png;base64,') == 5
    assert html.count('src="data:image/jpeg;base64,') == 12
    assert "http://" not in html and "https://" not in html  # opens from disk, nothing fetched


def test_per_class_tables_are_cut_for_many_classes(report_cfg):
    cfg = report_cfg.model_copy(update={"report": report_cfg.report.model_copy(update={"max_rows": 2,
                                                                                       "grid_classes": 1})})
    html = Path(run_stage(cfg, "report")["path"]).read_text()
    assert "showing 2 of 3 classes (the rest are in scores.parquet and quality.json)" in html
    assert len(_rows(html, "perclass")) == 3  # the header and two classes
    assert html.count('class="classgrid"') == 1 and "1 of 3 classes: those that gained and lost most first" in html
    assert "<h3>class1</h3>" in html  # the largest gain comes first


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
    assert loaded.group(1) == loaded.group(2) == "17"  # 5 plots and 12 sample images
    assert dom.count('<figure class="sample">') == 12 and dom.count("<figcaption>") == 12
    assert re.search(r'<td class="num ok">\+3\.0</td>', dom)  # the delta's interval is above zero
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, "--window-size=1200,900", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1200, 900) and len(img.convert("L").getcolors(256)) > 10
