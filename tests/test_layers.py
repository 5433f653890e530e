"""The package layout is checked, not hoped for: the import-linter contracts of pyproject.toml hold, a deliberately
added upward import breaks them, no import cycle exists counting every import (top, inside functions, under
TYPE_CHECKING), and imports inside functions are only those that keep a heavy library off a light path."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synthdiv.core.pipeline import STAGES

ROOT = Path(__file__).resolve().parents[1]
_LINT = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(no_cache=True, no_logo=True))"


def _graph_tool():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", _LINT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.timeout(900)
def test_the_import_contracts_hold_and_an_upward_import_breaks_them(tmp_path):
    kept = _lint(ROOT / "src")
    assert kept.returncode == 0, kept.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken." in kept.stdout

    shutil.copytree(ROOT / "src" / "synthdiv", tmp_path / "synthdiv", ignore=shutil.ignore_patterns("__pycache__"))
    io = tmp_path / "synthdiv" / "utils" / "io.py"
    io.write_text(io.read_text() + "\n\ndef _upward():\n    from synthdiv.stages.report import stage  # noqa: F401\n")
    broken = _lint(tmp_path)
    assert broken.returncode != 0
    assert "synthdiv.utils is not allowed to import synthdiv.stages" in broken.stdout
    assert "synthdiv.utils.io -> synthdiv.stages.report.stage" in broken.stdout


def test_there_is_no_import_cycle_counting_deferred_and_type_checking_imports():
    tool = _graph_tool()
    modules, edges = tool.collect()
    assert {kind for _, _, kind, _ in edges} == {"top", "deferred", "typing"}  # every kind is counted
    assert tool.cycles(modules, edges) == []


def test_the_graph_tool_finds_a_cycle_through_a_deferred_import(tmp_path):
    shutil.copytree(ROOT / "src" / "synthdiv", tmp_path / "synthdiv", ignore=shutil.ignore_patterns("__pycache__"))
    names = tmp_path / "synthdiv" / "utils" / "names.py"
    names.write_text(names.read_text() + "\n\ndef _back():\n    from synthdiv.utils import logs  # noqa: F401\n")
    tool = _graph_tool()
    modules, edges = tool.collect(tmp_path)
    assert ["synthdiv.utils.logs", "synthdiv.utils.names"] in tool.cycles(modules, edges)


# where a synthdiv module may import another inside a function, and why
_LIGHT_PATHS = {
    "synthdiv.cli.": "a command imports what it runs in its body: `synthdiv --help` takes 0.09 s, not 0.6-0.9 s",
    "synthdiv._moved": "`import synthdiv` installs the old-path finder; the API is imported only when called",
}


def test_imports_inside_functions_only_keep_heavy_libraries_off_light_paths():
    """A synthdiv module imports another inside a function only when the other imports torch (or another heavy
    library) when imported and the importer does not, or to keep `import synthdiv` and `synthdiv --help` light
    (:data:`_LIGHT_PATHS`): anything else is imported at the top, where a reader and import-linter see it."""
    tool = _graph_tool()
    _, edges = tool.collect()
    heavy = tool.heavy_modules()
    assert "synthdiv.stages.train.loop" in heavy  # the training loop imports torch at its top
    deferred = [(a, b, line) for a, b, kind, line in edges if kind == "deferred"]
    misplaced = [(a, b, line) for a, b, line in deferred
                 if not (b in heavy and a not in heavy) and not a.startswith(tuple(_LIGHT_PATHS))]
    assert misplaced == []


def test_every_stage_names_functions_that_exist_without_importing_them_first():
    for spec in STAGES:
        for hook in (spec.impl, spec.external, spec.progress, spec.complete, spec.check, spec.input_digests,
                     spec.headline):
            if hook is None:
                continue
            module, _, attr = hook.ref.partition(":")
            assert module == f"synthdiv.stages.{spec.name}.stage", hook.ref
            assert callable(getattr(importlib.import_module(module), attr)), hook.ref


def test_a_stage_reads_another_stage_through_its_reader_only():
    """Each stage package has one ``reader.py``: what later stages, the report, ``status`` and the API read of its
    artifacts. A stage that imports another stage's writer (or its stage module) to learn a file name or a format
    is the coupling this layout removes."""
    tool = _graph_tool()
    _, edges = tool.collect()
    stages = {spec.name for spec in STAGES}
    for name in stages:
        assert (ROOT / "src" / "synthdiv" / "stages" / name / "reader.py").exists() or name == "report", name
    crossing = sorted({(a, b) for a, b, _, _ in edges
                       if a.startswith("synthdiv.stages.") and b.startswith("synthdiv.stages.")
                       and a.split(".")[2] != b.split(".")[2] and not b.endswith(".reader")})
    assert crossing == []
