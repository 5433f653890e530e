"""Grounded diversification: contexts and styles the LLM writes from captions of real images (issue 14).

* **caption-context**: up to ``prompts.captions_per_class`` of a class's real images (a seeded sample) are captioned
  (``models.captioner``, cached by model and image bytes under ``cache/captions``) and the LLM turns the captions into
  ``prompts.caption_contexts_per_class`` scenes (template ``caption_contexts``), cleaned, made to name the class and
  de-duplicated exactly as the free LLM contexts are (:func:`~synthdiv.stages.prompts.contexts.context_processor`).
  Classes without real images get none (the plan gives their share to the other kinds).
* **target-style**: up to ``prompts.target_captions`` images of ``prompts.target_images`` (unlabeled target-domain
  images: a few sketches, renditions...) are captioned and the LLM summarises them into ``prompts.target_styles``
  style phrases (template ``target_styles``), cleaned and de-duplicated as the SD styles are.

This is how ALIA and Real-Fake ground their prompts in the data, without fine-tuning anything.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdiv.errors import InputError
from synthdiv.models.captions import caption_files
from synthdiv.stages.classes.reader import class_real_files
from synthdiv.stages.prompts.contexts import context_processor
from synthdiv.stages.prompts.gather import Family, Gathered, gather_many, gather_settings
from synthdiv.stages.prompts.styles import style_processor

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["CAPTION_CONTEXTS_TEMPLATE", "TARGET_STYLES_TEMPLATE", "grounded_needs", "sample_files",
           "caption_contexts_many", "collect_target_styles"]

CAPTION_CONTEXTS_TEMPLATE = "caption_contexts.v1"
TARGET_STYLES_TEMPLATE = "target_styles.v1"


def grounded_needs(cfg: RunConfig) -> tuple[bool, bool]:
    """(caption contexts wanted, target styles wanted) by ``prompts.proportions`` and the counts."""
    p = cfg.prompts
    want_cc = p.proportions.get("caption-context", 0.0) > 0 and p.caption_contexts_per_class > 0
    want_ts = p.proportions.get("target-style", 0.0) > 0 and p.target_styles > 0
    if want_ts and p.target_images is None:
        raise InputError("prompts.target_images: the target-style kind has a share in prompts.proportions but no "
                         "folder of target-domain images is given")
    return want_cc, want_ts


def sample_files(files: Sequence[str], limit: int, seed_parts: tuple[Any, ...]) -> list[str]:
    """Up to ``limit`` of ``files`` in a seeded order (a hash per file: the same on every machine)."""
    def key(name: str) -> bytes:
        return hashlib.blake2b("\0".join(map(str, (*seed_parts, name))).encode(), digest_size=8).digest()

    return sorted(files, key=lambda f: (key(f), f))[:limit]


def _captions(cfg: RunConfig, run: RunDir, captioner: Any, root: Path, files: list[str]) -> list[str]:
    texts = caption_files(captioner, [root / f for f in files], run.cache / "captions")
    return [" ".join(t.split()) for t in texts if t.strip()]


def caption_contexts_many(
    llm: Any, captioner: Any, classes: Sequence[dict[str, Any]], cfg: RunConfig, run: RunDir, scorer: Any | None
) -> list[Gathered | None]:
    """Per resolved class, its caption-grounded contexts (None for a class with no real images or no captions)."""
    p = cfg.prompts
    families, where = [], []
    for k, row in enumerate(classes):
        files = class_real_files(row.get("real_dir"), cfg.classes.image_extensions)
        picked = sample_files(files, p.captions_per_class, ("captions", cfg.seed, row["index"]))
        captions = _captions(cfg, run, captioner, Path(row["real_dir"]), picked) if picked else []
        if not captions:
            continue
        description = row["description"].strip()
        families.append(Family(CAPTION_CONTEXTS_TEMPLATE, {"description": description, "captions": captions},
                               p.caption_contexts_per_class, context_processor(description, p),
                               ("caption-contexts", cfg.seed, row["index"])))
        where.append(k)
    out: list[Gathered | None] = [None] * len(classes)
    if families:
        for k, got in zip(where, gather_many(llm, families, **gather_settings(p, scorer), tokens_per_item=24),
                          strict=True):
            out[k] = got
    logger.info("caption contexts: %d of %d classes have real images to caption", len(families), len(classes))
    return out


def collect_target_styles(llm: Any, captioner: Any, cfg: RunConfig, run: RunDir, scorer: Any | None) -> Gathered:
    """Style phrases summarised from captions of ``prompts.target_images``."""
    p = cfg.prompts
    root = Path(p.target_images)  # type: ignore[arg-type]  # checked by grounded_needs
    if not root.is_dir():
        raise InputError(f"prompts.target_images: {root} is not a directory")
    files = sample_files(class_real_files(str(root), cfg.classes.image_extensions), p.target_captions,
                         ("target", cfg.seed))
    if not files:
        raise InputError(f"prompts.target_images: {root} holds no images ({', '.join(cfg.classes.image_extensions)})")
    captions = _captions(cfg, run, captioner, root, files)
    family = Family(TARGET_STYLES_TEMPLATE, {"captions": captions}, p.target_styles, style_processor(),
                    ("target-styles", cfg.seed))
    return gather_many(llm, [family], **gather_settings(p, scorer), tokens_per_item=8)[0]
