"""Column schemas of the run's Parquet artifacts and the fields of its JSON-lines artifacts: the contract between
stages. A stage writes exactly these columns (it may add columns after them); a reader may rely on them.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "CLASS_FIELDS",
    "CLASS_SENSE_FIELDS",
    "RESOLVED_FIELDS",
    "PROMPTS_SCHEMA",
    "PLAN_SCHEMA",
    "MANIFEST_SCHEMA",
    "SCORES_SCHEMA",
    "PROMPT_KINDS",
]

# classes.jsonl: one object per class, in class-index order.
#   index: 0..N-1, the label used by training; name: the class name as given; wnid: WordNet id or null;
#   definition: a gloss or null; real_images: number of real images found; real_dir: folder of real images or null.
CLASS_FIELDS = ("index", "name", "wnid", "definition", "real_images", "real_dir")
# Optional fields after them (older runs lack them; readers use .get): lemmas: every lemma of the WordNet synset,
# the name first, or null; hypernym: the first lemma of the synset's hypernym, or null.
CLASS_SENSE_FIELDS = ("lemmas", "hypernym")

# classes.resolved.jsonl: the CLASS_FIELDS plus
#   description: the chosen unambiguous text used by every prompt of the class;
#   candidates: [{"text", "source" ("name" | "llm"), "score", ...}] every candidate with its scores;
#   status: "ok" | "fallback" (LLM failed, name kept) | "disabled"; llm_id, template_id: provenance.
RESOLVED_FIELDS = (*CLASS_FIELDS, "description", "candidates", "status", "llm_id", "template_id")

PROMPT_KINDS = ("base", "context", "style")

PROMPTS_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.string()),  # stable hash of (class, kind, text)
        ("class", pa.int32()),  # class index
        ("class_name", pa.string()),
        ("kind", pa.string()),  # one of PROMPT_KINDS
        ("text", pa.string()),
        ("negative", pa.string()),
        ("context", pa.string()),  # the CD scene, or null
        ("style", pa.string()),  # the SD style, or null
        ("template_id", pa.string()),
        ("llm_id", pa.string()),
    ]
)

PLAN_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),  # hash of (class, prompt_id, seed, generator id)
        ("class", pa.int32()),
        ("prompt_id", pa.string()),
        ("seed", pa.int64()),
        ("shard", pa.int32()),
    ]
)

# manifest.parquet: one row per image present in a complete shard (a folder of per-shard Parquet parts is allowed).
MANIFEST_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("class", pa.int32()),
        ("prompt_id", pa.string()),
        ("seed", pa.int64()),
        ("shard", pa.int32()),
        ("retries", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("generator_id", pa.string()),
    ]
)

# scores.parquet: written by the score stage; joined to the manifest on image_id. Filters are views over it.
SCORES_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("similarity", pa.float32()),  # cosine to its class description
        ("class_rank", pa.int32()),  # rank of its own class among all classes (0 = best)
        ("margin", pa.float32()),  # similarity minus the best other class's
    ]
)
