"""Fixtures of the generation tests: the tiny diffusion pipeline and small plans written with the artifact schemas."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import PLAN_SCHEMA, PROMPTS_SCHEMA
from synthdiv.utils.io import atomic_write_jsonl, write_parquet_atomic

CLASS_NAMES = ("goldfish", "crane", "tabby cat")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The embedded tiny diffusion pipeline folder (random weights), built once per session."""
    from synthdiv.models.embedded import tiny_diffusion_dir

    return tiny_diffusion_dir()


def image_id(cls: int, prompt_id: str, seed: int, gen_id: str) -> str:
    return hashlib.sha256(f"{cls}|{prompt_id}|{seed}|{gen_id}".encode()).hexdigest()[:24]


def write_inputs(run: RunDir, images_per_class: int, shard_size: int, gen_id: str, negative: str = "") -> None:
    """prompts.parquet (two prompts per class), classes.resolved.jsonl and plan.parquet for CLASS_NAMES."""
    prompts: dict[str, list[Any]] = {f.name: [] for f in PROMPTS_SCHEMA}
    for c, name in enumerate(CLASS_NAMES):
        for k, text in enumerate((f"a photo of a {name}", f"a sketch of a {name}")):
            row = {"prompt_id": f"p{c}-{k}", "class": c, "class_name": name, "kind": ("base", "style")[k],
                   "text": text, "negative": negative, "context": None, "style": "sketch" if k else None,
                   "template_id": "t", "llm_id": "test"}
            for key, value in row.items():
                prompts[key].append(value)
    write_parquet_atomic(pa.table(prompts, schema=PROMPTS_SCHEMA), run.prompts)
    atomic_write_jsonl(run.resolved, [
        {"index": c, "name": n, "wnid": None, "definition": None, "real_images": 0, "real_dir": None,
         "description": n, "candidates": [], "status": "disabled", "llm_id": None, "template_id": None}
        for c, n in enumerate(CLASS_NAMES)
    ])
    plan: dict[str, list[Any]] = {f.name: [] for f in PLAN_SCHEMA}
    pos = 0
    for c in range(len(CLASS_NAMES)):
        for i in range(images_per_class):
            pid, seed = f"p{c}-{i % 2}", 1000 * c + i
            for key, value in (("image_id", image_id(c, pid, seed, gen_id)), ("class", c), ("prompt_id", pid),
                               ("seed", seed), ("shard", pos // shard_size)):
                plan[key].append(value)
            pos += 1
    write_parquet_atomic(pa.table(plan, schema=PLAN_SCHEMA), run.plan)


def mixed_config(make_config, tiny_model_dir: Path, shares=(0.5, 0.5), steps: int = 1,
                 generate: dict[str, Any] | None = None, plan: dict[str, Any] | None = None):
    """A RunConfig of a two-generator mixture (the embedded pipeline and the tiny one from its folder) whose run has
    prompts and classes; the plan stage writes the plan."""
    one = {"backend": "diffusers", "device": "cpu", "options": {"steps": steps}}
    mixture = [{**one, "model": "embedded", "share": shares[0]},
               {**one, "model": str(tiny_model_dir), "share": shares[1]}]
    cfg = make_config(models={"generator": {**one, "model": str(tiny_model_dir)}, "mixture": mixture},
                      generate={"batch_size": 2, "writer_threads": 2, "torch_threads": 1, **(generate or {})},
                      plan=plan or {})
    write_inputs(RunDir(cfg.run_dir), 1, 3, "unused")
    return cfg


@pytest.fixture
def gen_config(make_config, tiny_model_dir: Path):
    """``gen_config(images_per_class=4, shard_size=4, **generate)`` -> a RunConfig whose run has prompts and plan."""

    def make(images_per_class: int = 4, shard_size: int = 4, options: dict[str, Any] | None = None, **generate: Any):
        # one torch thread: on a shared, oversubscribed CPU two spinning OpenMP threads are ~50x slower than one
        gen = {"batch_size": 2, "writer_threads": 2, "torch_threads": 1, **generate}
        model = {"backend": "diffusers", "model": str(tiny_model_dir), "device": "cpu",
                 "options": {"steps": 1, **(options or {})}}
        cfg = make_config(models={"generator": model}, generate=gen, plan={"shard_size": shard_size})
        from synthdiv.config.models import generator_id

        write_inputs(RunDir(cfg.run_dir), images_per_class, shard_size, generator_id(cfg.models.generator))
        return cfg

    return make
