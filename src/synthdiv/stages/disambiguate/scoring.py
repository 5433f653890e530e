"""Scoring candidate descriptions with CLIP.

With real images, a candidate's score is its cosine to the class's mean image embedding minus ``margin_weight``
times its best cosine to another class's mean image embedding: a description must match its own images and not
the others'. With no real images, it is the cosine to the class's definition (text to text); with neither, there
is nothing to score and the candidates keep their order (the name first).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdiv.utils.decode import UnreadableImage, decode_image

if TYPE_CHECKING:
    import numpy as np

    from synthdiv.models.clip.base import ImageTextScorer
    from synthdiv.utils.decode import SkipTally

logger = logging.getLogger(__name__)

__all__ = ["ClassImages", "sample_images", "mean_image_embedding", "CandidateScore", "score_candidates"]


@dataclass
class ClassImages:
    """The real images of one class that were embedded: their files and normalised mean embedding."""

    files: list[Path]
    mean: np.ndarray | None  # (dim,), L2-normalised; None without usable images


def sample_images(folder: Path | str | None, extensions: Sequence[str], limit: int, seed: str) -> list[Path]:
    """Up to ``limit`` image files of ``folder`` (recursively), chosen with a seed that names the class.

    The same folder, limit and seed always give the same files, whatever the file system's listing order.
    """
    if not folder:
        return []
    folder = Path(folder)
    if not folder.is_dir():
        logger.warning("real image folder %s does not exist; scoring this class without images", folder)
        return []
    exts = {e.lower() for e in extensions}
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in exts and p.is_file())
    if len(files) > limit:
        files = sorted(random.Random(seed).sample(files, limit))
    return files


def mean_image_embedding(scorer: ImageTextScorer, files: Sequence[Path], max_pixels: int | None = None,
                         skipped: SkipTally | None = None, label: int = -1) -> ClassImages:
    """Embed ``files`` and average them, decoded under the decoder policy (:mod:`synthdiv.utils.decode`).

    Unreadable files (empty, not an image, truncated or damaged, over ``max_pixels``) are skipped with a warning and
    added to ``skipped`` under class ``label`` when a tally is given.
    """
    import numpy as np


    images, used = [], []
    for path in files:
        try:
            images.append(decode_image(path, max_pixels))
        except UnreadableImage as exc:
            logger.warning("skipping %s", exc)
            if skipped is not None:
                skipped.add(label, str(path), exc.reason)
            continue
        used.append(path)
    if not images:
        return ClassImages(used, None)
    mean = scorer.embed_images(images).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return ClassImages(used, (mean / norm).astype(np.float32) if norm > 0 else None)


@dataclass
class CandidateScore:
    """The scores of one candidate. ``score`` is what candidates are ranked by (higher is better)."""

    score: float | None
    similarity: float | None = None  # cosine to the own images, or to the definition
    other_similarity: float | None = None  # best cosine to another class's images
    other_class: int | None = None  # which class that was

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def score_candidates(
    texts: np.ndarray,
    own: np.ndarray | None,
    others: np.ndarray | None,
    other_ids: Sequence[int],
    definition: np.ndarray | None,
    margin_weight: float,
) -> tuple[str, list[CandidateScore]]:
    """Score the embedded candidates of one class.

    Args:
        texts: ``(n, dim)`` L2-normalised candidate embeddings.
        own: The class's mean image embedding, or None.
        others: ``(m, dim)`` mean image embeddings of the other classes that have images, or None.
        other_ids: The class indices of the rows of ``others``.
        definition: The embedded definition of the class, or None.
        margin_weight: Weight of the best similarity to another class's images.

    Returns:
        ``(basis, scores)``: basis is "images", "definition" or "none".
    """
    if own is not None:
        sims = texts @ own
        if others is not None and len(other_ids):
            cross = texts @ others.T  # (n, m)
            best = cross.argmax(axis=1)
            return "images", [
                CandidateScore(
                    float(s - margin_weight * cross[c, b]), float(s), float(cross[c, b]), int(other_ids[b])
                )
                for c, (s, b) in enumerate(zip(sims, best, strict=True))
            ]
        return "images", [CandidateScore(float(s), float(s)) for s in sims]
    if definition is not None:
        return "definition", [CandidateScore(float(s), float(s)) for s in texts @ definition]
    return "none", [CandidateScore(None) for _ in range(len(texts))]
