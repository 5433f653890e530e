"""docs/api.md's first example runs as it is copied (issue 24: it stopped with ``NameError: transform``).

The block is taken from the page verbatim and run in a folder laid out like the repository: ``examples/quickstart.yaml``
there is a stand-in with the quickstart's layout (``run_dir: ../runs/quickstart``, an ImageFolder of real images) that
needs no LLM, so the stages the block runs take seconds instead of the quickstart's minutes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

API_MD = Path(__file__).resolve().parents[1] / "docs" / "api.md"

STAND_IN = """\
run_dir: ../runs/quickstart
classes:
  source: ../data/train
disambiguate:
  enabled: false
prompts:
  contexts_per_class: 0
  styles: 0
  clip_dedup: false
  proportions: {base: 1.0}
plan:
  images_per_class: 2
  shard_size: 2
models:
  generator:
    options: {steps: 1}
"""


def first_example(text: str) -> str:
    """The first ```python block of the page's "The Python API" section."""
    section = text[text.index("## The Python API"):]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match, "no python block under '## The Python API'"
    return match[1]


def test_the_first_api_example_defines_every_name_before_it_uses_it():
    """A quick check of the same promise, without running anything: each name the block reads is imported,
    assigned by an earlier statement, or a builtin."""
    import ast
    import builtins

    known = set(dir(builtins))
    for statement in ast.parse(first_example(API_MD.read_text(encoding="utf-8"))).body:
        nodes = list(ast.walk(statement))
        read = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        assert read <= known, f"line {statement.lineno}: {sorted(read - known)} used before it is defined"
        known |= {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        known |= {(a.asname or a.name).split(".")[0] for n in nodes if isinstance(n, ast.Import | ast.ImportFrom)
                  for a in n.names}


def test_the_first_api_example_runs_as_copied(tmp_path: Path, monkeypatch):
    rng = np.random.default_rng(0)
    for c in ("goldfish", "crane"):  # 64 real images each: the example's batch holds a real block of 128
        folder = tmp_path / "data" / "train" / c
        folder.mkdir(parents=True)
        for i in range(64):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "quickstart.yaml").write_text(STAND_IN)
    monkeypatch.chdir(tmp_path)

    namespace: dict = {"__name__": "__docs__"}
    exec(compile(first_example(API_MD.read_text(encoding="utf-8")), "docs/api.md", "exec"), namespace)  # noqa: S102

    assert (tmp_path / "runs" / "quickstart" / "scores.parquet").exists()
    image, label = namespace["ds"][0]
    assert tuple(image.shape) == (3, 32, 32) and label in (0, 1)
    batch = next(iter(namespace["loader"]))
    assert batch["images"].shape[0] == 256 and int(batch["n_real"]) == 128
