"""The report over damaged artifacts: each file it reads, garbage or cut short, is one line naming the file (an
InputError) or a documented skip with a warning, never a traceback (``report`` on a garbage ``scores.parquet`` was
``ArrowInvalid``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from synthdiv.core.rundir import RunDir
from synthdiv.errors import InputError
from synthdiv.stages.report.stage import render_report
from tests.data.toydata import make_toy_run
from tests.report.test_report import _fill_run

# artifact (relative to the run) -> what the report does with it damaged: "error" (one line naming it) or "skip"
ARTIFACTS = {
    "scores.parquet": "error",
    "prompts.parquet": "error",
    "manifest.parquet/shard-000000.parquet": "skip",  # a damaged part makes its shard incomplete (generate redoes it)
    "classes.jsonl": "error",
    "classes.resolved.jsonl": "error",
    "train/real/metrics.jsonl": "error",
    "quality.json": "skip",
    "eval/real/test.json": "skip",
    "eval/real/test.npz": "skip",
    "shards/shard-000000.tar": "skip",  # its images are left out of the grid; `verify` names the shard
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("damage")
    paths = make_toy_run(root / "toy", num_classes=3, syn_per_class=4)
    _fill_run(paths["run"])
    return root


def _config(make_config, root: Path):
    return make_config(run_dir=str(root / "toy" / "run"), classes={"source": str(root / "toy" / "real")},
                       train={"variants": {"real": {"synthetic_fraction": 0},
                                           "real+syn": {"filters": ["clip-top1"]}}},
                       report={"samples_per_class": 2, "bootstrap": 100})


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "garbage":
        path.write_bytes(b"\x00garbage\xff\n" * 40)
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:  # "flipped": a run of bytes in the middle overwritten
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(b ^ 0x5A for b in data[mid : mid + 64]) + data[mid + 64 :])


@pytest.mark.parametrize("how", ["garbage", "truncated", "flipped"])
@pytest.mark.parametrize("name", list(ARTIFACTS))
def test_a_damaged_artifact_is_one_line_or_a_documented_skip(finished, tmp_path, make_config, caplog, name, how):
    shutil.copytree(finished / "toy", tmp_path / "toy", symlinks=True)
    run = RunDir(tmp_path / "toy" / "run")
    _damage(run.root / name, how)
    cfg = _config(make_config, tmp_path)
    try:
        html, _ = render_report(cfg, run)
    except InputError as exc:
        message = str(exc)
        assert "\n" not in message and str(run.root / name) in message, message
        return
    # not an error: the damage was either harmless (a flipped byte the format shrugs off) or a documented skip
    assert "<html" in html
    if ARTIFACTS[name] == "error" and how == "garbage":
        pytest.fail(f"garbage {name} gave no error")


def test_garbage_scores_parquet_names_the_file_and_the_stage_to_redo(finished, tmp_path, make_config):
    shutil.copytree(finished / "toy", tmp_path / "toy", symlinks=True)
    run = RunDir(tmp_path / "toy" / "run")
    run.scores.write_bytes(b"this is not parquet" * 100)
    with pytest.raises(InputError, match=r"scores.parquet: .*run `synthdiv score --redo`"):
        render_report(_config(make_config, tmp_path), run)


def test_a_cut_short_last_metrics_line_is_left_out(finished, tmp_path, make_config, caplog):
    shutil.copytree(finished / "toy", tmp_path / "toy", symlinks=True)
    run = RunDir(tmp_path / "toy" / "run")
    path = run.train / "real" / "metrics.jsonl"
    path.write_text(path.read_text() + '{"step": 11, "lo')
    _, context = render_report(_config(make_config, tmp_path), run)
    assert len(context["train_plots"]) == 3 and "last line is cut short" in caplog.text
