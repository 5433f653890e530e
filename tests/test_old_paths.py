"""The import paths of synthdiv 0.1 keep working for one release (synthdiv._moved): each warns, and its names are
the objects that live at the new paths. Each case runs in a fresh interpreter: importing the old ``synthdiv.run``
puts a stand-in where the function was, which must not leak into other tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from synthdiv._moved import MOVED


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)


def test_every_old_module_imports_and_warns_naming_its_new_home():
    code = """
        import importlib, warnings
        from synthdiv._moved import MOVED
        for old, new in MOVED.items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                importlib.import_module(old)
            targets = (new,) if isinstance(new, str) else new
            assert any(t in str(w.message) for w in caught for t in targets), (old, [str(w.message) for w in caught])
        print(len(MOVED))
    """
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(MOVED) > 100


@pytest.mark.parametrize(("statement", "new"), [
    ("from synthdiv.run import RunDir", "from synthdiv.core.rundir import RunDir"),
    ("from synthdiv.run import atomic_write_json", "from synthdiv.utils.io import atomic_write_json"),
    ("from synthdiv.run import file_digest", "from synthdiv.utils.hashing import file_digest"),
    ("from synthdiv.generate.engine import generate_images", "from synthdiv.stages.generate.stage import build"),
    ("from synthdiv.generate import GENERATORS", "from synthdiv.registry import GENERATORS"),
    ("from synthdiv.catalog import build_classes", "from synthdiv.stages.classes.stage import build"),
    ("from synthdiv.catalog.reader import read_classes", "from synthdiv.stages.classes.reader import read_classes"),
    ("from synthdiv.progress import llm_progress", "from synthdiv.models.llm.progress import llm_progress"),
    ("from synthdiv.generate.img2img import fit_image", "from synthdiv.models.generators.image_fit import fit_image"),
])
def test_an_old_name_is_the_object_at_its_new_path(statement, new):
    name = statement.split()[-1]
    new_name = new.split()[-1]
    done = _python(f"""
        import warnings
        warnings.simplefilter("ignore", DeprecationWarning)
        {statement} as old
        {new} as current
        assert old is current, (old, current)
    """.replace(f"import {name} as old", f"import {name} as old").replace(f"import {new_name} as current",
                                                                         f"import {new_name} as current"))
    assert done.returncode == 0, done.stderr


def test_the_old_path_warns_and_a_new_path_does_not():
    assert _python("from synthdiv.run import RunDir").returncode != 0  # -W error: the DeprecationWarning raises
    assert _python("from synthdiv.core.rundir import RunDir").returncode == 0


def test_run_stays_a_function_that_runs_even_after_the_old_module_is_imported(tmp_path):
    done = _python("""
        import types, warnings
        import synthdiv
        assert isinstance(synthdiv.run, types.FunctionType)
        warnings.simplefilter("ignore", DeprecationWarning)
        import synthdiv.run
        assert callable(synthdiv.run)
        try:
            synthdiv.run("no-such-config.yaml")
        except synthdiv.SynthdivError as exc:
            print("refused:", exc)
    """)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "no-such-config.yaml" in done.stdout


def test_the_stage_runner_names_read_from_the_old_module_name_with_a_warning():
    done = _python("""
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from synthdiv.stages import run_stage
        from synthdiv.engine.runner import run_stage as current
        assert run_stage is current
        assert "synthdiv.engine.runner" in str(caught[0].message)
    """)
    assert done.returncode == 0, done.stderr
