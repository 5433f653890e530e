"""The recipe of a published folder: what re-creates its images (``recipe/``).

The resolved config (machine paths and secrets taken out: :mod:`synthdiv.publish.privacy`), the resolved classes
with how each ambiguous name was settled, every prompt and the style vocabulary, and the plan (every image's class,
prompt, seed and shard). The plan is copied batch by batch, so a 7.7M-row plan is never held at once.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from synthdiv.core.schemas import PLAN_SCHEMA
from synthdiv.publish.layout import PublishedDir
from synthdiv.publish.privacy import Scrubber
from synthdiv.stages.plan.reader import BATCH_ROWS, open_checked
from synthdiv.stages.prompts.reader import read_prompts
from synthdiv.stages.prompts.styles import load_styles

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

__all__ = ["write_recipe", "public_config"]


def public_config(cfg: RunConfig, scrubber: Scrubber) -> dict[str, Any]:
    """The resolved config as data, with the machine's paths as labels and secrets redacted."""
    data = scrubber.tree(cfg.model_dump(mode="json"))
    data["run_dir"] = "run"
    return data


def _scrub_strings(table: pa.Table, scrubber: Scrubber) -> pa.Table:
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) and field.name in ("source", "generator"):
            encoded = pc.dictionary_encode(table.column(i)).combine_chunks()
            words = pa.array([None if v is None else scrubber.text(v) for v in encoded.dictionary.to_pylist()],
                             pa.string())
            table = table.set_column(i, field, pc.take(words, encoded.indices))
    return table


def write_recipe(cfg: RunConfig, run: RunDir, out: PublishedDir, classes: list[dict[str, Any]],
                 scrubber: Scrubber) -> list[str]:
    """Write ``recipe/`` into ``out``; returns the names of the files written."""
    out.recipe.mkdir(parents=True, exist_ok=True)
    written = ["config.yaml", "classes.jsonl"]
    text = yaml.safe_dump(public_config(cfg, scrubber), sort_keys=False, allow_unicode=True)
    out.recipe_file("config.yaml").write_text(text, encoding="utf-8")
    lines = [json.dumps(scrubber.tree(row), ensure_ascii=False, sort_keys=True) for row in classes]
    out.recipe_file("classes.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if run.prompts.exists():
        pq.write_table(read_prompts(run).replace_schema_metadata(pq.read_schema(run.prompts).metadata),
                       out.recipe_file("prompts.parquet"))
        written.append("prompts.parquet")
    if run.styles.exists():
        styles = scrubber.tree(load_styles(run.styles))
        out.recipe_file("styles.json").write_text(json.dumps(styles, indent=1, ensure_ascii=False), encoding="utf-8")
        written.append("styles.json")
    if run.plan.exists():
        pf = open_checked(run.plan, PLAN_SCHEMA, "plan")
        with pq.ParquetWriter(out.recipe_file("plan.parquet"), pf.schema_arrow) as writer:
            for batch in pf.iter_batches(batch_size=BATCH_ROWS):
                writer.write_table(_scrub_strings(pa.Table.from_batches([batch], pf.schema_arrow), scrubber))
        written.append("plan.parquet")
    return written
