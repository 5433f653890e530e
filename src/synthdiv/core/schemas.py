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
    "CLASSIFIER_SCORES_SCHEMA",
    "LEARNER_SCORES_SCHEMA",
    "PROMPT_KINDS",
    "PLAN_SOURCE_SCHEMA",
    "MANIFEST_SAMPLING_SCHEMA",
    "PLAN_GENERATOR_FIELD",
    "PUBLISHED_SCHEMA",
    "FORMAT_KEY",
    "FORMATS",
    "with_format",
    "written_format",
]

# Each Parquet artifact carries ``synthdiv.format = b"<kind>/<version>"`` in its schema metadata. A reader takes a file
# without it for one written before formats were recorded (synthdiv 0.1 before this key), a file of the current
# version as complete (a column it lacks is damage, not age), and refuses a newer version in one line. Bump a kind's
# version when its columns or their meaning change, and keep reading the older versions or say how to redo them.
FORMAT_KEY = b"synthdiv.format"
FORMATS: dict[str, int] = {"prompts": 1, "plan": 1, "manifest": 1, "scores": 1, "classifier_scores": 1,
                           "learner_scores": 1, "published": 1}


def with_format(schema: pa.Schema, kind: str) -> pa.Schema:
    """``schema`` with the current format of ``kind`` in its metadata (its other metadata kept)."""
    return schema.with_metadata({**(schema.metadata or {}), FORMAT_KEY: f"{kind}/{FORMATS[kind]}".encode()})


def written_format(metadata: dict[bytes, bytes] | None, kind: str) -> int | None:
    """The format version a file of ``kind`` was written in, from its schema ``metadata``; None when it carries none
    (written before formats were recorded) or names another kind."""
    value = (metadata or {}).get(FORMAT_KEY, b"").decode("utf-8", "replace")
    name, _, version = value.partition("/")
    return int(version) if name == kind and version.isdigit() else None

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

# caption-context: scenes the LLM wrote from captions of the class's real images; target-style: styles it summarised
# from captions of unlabeled target-domain images (prompts.target_images).
PROMPT_KINDS = ("base", "context", "style", "caption-context", "target-style")

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

# Optional plan columns after PLAN_SCHEMA, written only by a plan with image-to-image rows (plan.img2img.share > 0):
#   source: the real image a row starts from, relative to its class's real_dir (POSIX), null for text-to-image;
#   strength: how much of it is noised away (diffusers' img2img ``strength``), null for text-to-image.
PLAN_SOURCE_SCHEMA = pa.schema([("source", pa.string()), ("strength", pa.float32())])
# A manifest part's last columns, each present only when set: an image's guidance scale and guidance interval
# (generate.sampling) and its negative prompt (prompts.negative_confusable, where it differs by class).
MANIFEST_SAMPLING_SCHEMA = pa.schema([("guidance", pa.float32()), ("guidance_interval", pa.list_(pa.float32())),
                                      ("negative_prompt", pa.string())])

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

# The last column of a plan made by a mixture of generators (``models.mixture``): the id (``backend:model@revision``)
# of the generator that makes the row's image, one per shard. Absent from a plan of one generator.
PLAN_GENERATOR_FIELD = pa.field("generator", pa.string())
# A manifest part ends with PLAN_SOURCE_SCHEMA's columns (after the writer's own ones): each image's source real image
# and strength as provenance, null for text-to-image (and absent from parts written before image-to-image existed).

# scores.parquet: written by the score stage; joined to the manifest on image_id. Filters are views over it.
SCORES_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("similarity", pa.float32()),  # cosine to its class description
        ("class_rank", pa.int32()),  # rank of its own class among all classes (0 = best)
        ("margin", pa.float32()),  # similarity minus the best other class's
        # softmax over all class texts of logit_scale * cosine / score.temperature: the own class's probability
        ("prob", pa.float32()),
        ("best_other", pa.int32()),  # the most similar other class (-1 with one class)
        # near-duplicates in CLIP image space, within the class (see synthdiv.metrics.near_duplicates)
        ("nn_id", pa.string()),  # the nearest other synthetic image of the class, or null
        ("nn_cosine", pa.float32()),
        ("dup_of", pa.string()),  # representative of its group of images >= score.duplicates.threshold (or itself)
        ("real_nn", pa.string()),  # the nearest embedded real image of the class (its key), or null
        ("real_nn_cosine", pa.float32()),
        ("memorized", pa.bool_()),  # real_nn_cosine >= score.duplicates.real_threshold
    ]
)

# classifier_scores.parquet: a classifier trained on real data only, on every synthetic image (score.classifier).
CLASSIFIER_SCORES_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("p_own", pa.float32()),  # the classifier's probability of the image's own class
        ("top_class", pa.int32()),  # its most probable other class
        ("p_other", pa.float32()),  # and that class's probability
        ("mislabeled", pa.bool_()),  # p_other >= mislabeled_p_other and p_own <= mislabeled_p_own
        ("easy", pa.bool_()),  # p_own >= easy_p_own
    ]
)

# learner_scores.parquet: the images of the adaptive rounds that over-generate a pool (adapt.pool_factor > 1), scored
# by the model the round was planned from; the train view keeps the ``kept`` ones (score stage, learner selection).
LEARNER_SCORES_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("round", pa.int32()),  # the adaptive round the image was planned in (1, 2, ...)
        ("class", pa.int32()),
        ("informativeness", pa.float32()),  # the round's measure (entropy, margin or loss): higher is more informative
        ("kept", pa.bool_()),  # among the round's most informative images of its class
    ]
)

# metadata/shard-NNNNNN.parquet of a published dataset folder (``synthdiv publish``; docs/publishing.md): one row per
# image of the published tar of the same name. After these columns come the score columns (SCORES_SCHEMA without
# image_id, null where an image has no score) and one ``keep_<filter>`` boolean per filter flag of the run.
PUBLISHED_SCHEMA = pa.schema(
    [
        ("key", pa.string()),  # the image's WebDataset key (its image_id)
        ("shard", pa.int32()),
        ("file", pa.string()),  # the image's member name in data/shard-NNNNNN.tar
        ("label", pa.int32()),  # the class index (the .cls member)
        ("class_name", pa.string()),
        ("wnid", pa.string()),
        ("description", pa.string()),  # the unambiguous description every prompt of the class used
        ("prompt_id", pa.string()),
        ("prompt", pa.string()),
        ("negative_prompt", pa.string()),
        ("prompt_kind", pa.string()),  # one of PROMPT_KINDS
        ("context", pa.string()),
        ("style", pa.string()),
        ("seed", pa.int64()),
        ("generator_id", pa.string()),  # backend:model@revision (a local model folder as <local>/<name>)
        ("generator_revision", pa.string()),
        ("guidance", pa.float32()),  # as the image's sidecar recorded it (its own with generate.sampling), or null
        ("guidance_interval", pa.list_(pa.float32())),  # [start, end] of the guided steps (generate.sampling), or null
        ("steps", pa.int32()),
        ("scheduler", pa.string()),
        ("source", pa.string()),  # image-to-image: the real image it started from (relative to its class folder)
        ("strength", pa.float32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("retries", pa.int32()),
        ("degenerate", pa.bool_()),
        ("in_train_view", pa.bool_()),  # among the images the run's root train config trains on
        ("sha256", pa.string()),  # of the image member's bytes as published (after marking)
        ("offset", pa.int64()),  # byte offset of the image member's data in its published tar
        ("size", pa.int64()),
        ("marked", pa.bool_()),  # the JPEG carries the synthetic-media XMP marking
    ]
)
