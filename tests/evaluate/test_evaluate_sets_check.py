"""The evaluate stage checks its sets up front, with ``synthdiv check``'s one line, before it reads or writes anything:
``evaluate --redo --set evaluate.test_root=/nonexistent`` (or a file) is refused as ``check`` and ``run`` refuse it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthdiv.cli.app import main
from synthdiv.core.rundir import RunDir
from synthdiv.data.eval_sets import check_sets
from synthdiv.engine.preflight import check_run
from synthdiv.errors import InputError
from tests.data.toydata import write_classes


def _finished_eval(tmp_path: Path) -> tuple[Path, RunDir]:
    """A run whose classes, train and eval outputs exist (the inputs evaluate needs and an earlier result)."""
    run = RunDir(tmp_path / "run")
    write_classes(run.root, None, 2)
    (run.train).mkdir(parents=True)
    (run.eval / "real").mkdir(parents=True)
    (run.eval / "real" / "test.json").write_text(json.dumps({"top1": 0.5}))
    (tmp_path / "c.txt").write_text("class0\nclass1\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: {run.root}\nclasses:\n  source: c.txt\n")
    return cfg, run


def _probe(tmp_path: Path, capsys, kind: str) -> tuple[int, str, Path, RunDir, list[Path]]:
    """``synthdiv evaluate -c c.yaml --redo --set evaluate.test_root=<bad>``: (rc, stderr, bad, run, files before)."""
    cfg_file, run = _finished_eval(tmp_path)
    bad = tmp_path / "nonexistent" if kind == "missing" else cfg_file
    before = sorted(p.relative_to(run.root) for p in run.root.rglob("*"))
    rc = main(["evaluate", "-c", str(cfg_file), "--redo", "--set", f"evaluate.test_root={bad}"])
    return rc, capsys.readouterr().err.strip(), bad, run, before


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_evaluate_refuses_a_bad_test_root_in_one_line(tmp_path, capsys, make_config, kind):
    rc, err, bad, run, _ = _probe(tmp_path, capsys, kind)
    words = "does not exist" if kind == "missing" else "is not a directory"
    assert rc == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == f"synthdiv: error: evaluate.test_root: {bad} {words}"
    # the same words as `synthdiv check` (and `run`'s preflight)
    cfg = make_config(run_dir=str(run.root), evaluate={"test_root": str(bad)})
    assert str(check_run(cfg, ["evaluate"]).errors[0]) == f"evaluate.test_root: {bad} {words}"
    # nothing lost: the earlier result is back in place, and no state says evaluate started
    assert json.loads((run.eval / "real" / "test.json").read_text()) == {"top1": 0.5}
    assert run.read_state("evaluate") is None and not run.config.exists()


def test_evaluate_refuses_a_bad_test_root_before_the_engine_writes(tmp_path, capsys):
    rc, err, _, run, before = _probe(tmp_path, capsys, "missing")
    assert rc == 2 and err.count("\n") == 0
    assert sorted(p.relative_to(run.root) for p in run.root.rglob("*")) == before


def test_check_sets_names_each_key(tmp_path, make_config):
    (tmp_path / "f").write_text("x")
    cases = [
        ({"ood": [{"name": "sketch", "root": str(tmp_path / "gone")}]}, r"evaluate.ood\[0\].root \(sketch\): .*gone"),
        ({"ood": [{"name": "sketch", "root": str(tmp_path / "f")}]}, "is not a directory"),
        ({"shifts": ["edges"], "ood": [{"name": "s", "root": str(tmp_path)}]}, "evaluate.shifts: shifted copies need"),
        ({}, "evaluate: no evaluation sets"),
    ]
    for section, message in cases:
        with pytest.raises(InputError, match=message):
            check_sets(make_config(evaluate=section).evaluate)
    check_sets(make_config(evaluate={"test_root": str(tmp_path)}).evaluate)  # a folder passes
