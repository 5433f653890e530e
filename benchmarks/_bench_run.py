"""The inputs of the generation benchmarks: prompts.parquet and plan.parquet for a few classes, in the schemas."""

from __future__ import annotations

import hashlib
from typing import Any

CLASSES = ("goldfish", "crane", "tabby cat", "school bus")


def write_bench_run(run: Any, images: int, shard_size: int, gen_id: str) -> list[tuple[str, int]]:
    """Write one base prompt per class and a plan cycling the classes; returns (prompt, seed) in plan order."""
    import pyarrow as pa

    from synthdiv.core.schemas import PLAN_SCHEMA, PROMPTS_SCHEMA
    from synthdiv.utils.io import write_parquet_atomic

    prompts: dict[str, list[Any]] = {f.name: [] for f in PROMPTS_SCHEMA}
    for c, name in enumerate(CLASSES):
        for key, value in (("prompt_id", f"p{c}"), ("class", c), ("class_name", name), ("kind", "base"),
                           ("text", f"a photo of a {name}"), ("negative", ""), ("context", None), ("style", None),
                           ("template_id", "bench"), ("llm_id", "bench")):
            prompts[key].append(value)
    write_parquet_atomic(pa.table(prompts, schema=PROMPTS_SCHEMA), run.prompts)
    plan: dict[str, list[Any]] = {f.name: [] for f in PLAN_SCHEMA}
    work = []
    for i in range(images):
        c = i % len(CLASSES)
        image_id = hashlib.sha256(f"{c}|p{c}|{i}|{gen_id}".encode()).hexdigest()[:24]
        for key, value in (("image_id", image_id), ("class", c), ("prompt_id", f"p{c}"), ("seed", i),
                           ("shard", i // shard_size)):
            plan[key].append(value)
        work.append((f"a photo of a {CLASSES[c]}", i))
    write_parquet_atomic(pa.table(plan, schema=PLAN_SCHEMA), run.plan)
    return work
