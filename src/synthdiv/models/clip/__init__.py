"""Image-text scorers (CLIP, SigLIP): a registry of backends and :func:`create_scorer`.

The built-in backends ``open_clip`` and ``transformers`` are imported only when first created, so importing this
package never imports torch. Every scorer returns L2-normalised float32 embeddings: a dot product is a cosine.

Example:
    >>> scorer = create_scorer(CLIPSpec(backend="open_clip", model="embedded"))
    >>> scorer.embed_texts(["a photo of a crane (the bird)"]).shape
    (1, 64)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from synthdiv.models.clip.base import ImageTextScorer
from synthdiv.registry import SCORERS

if TYPE_CHECKING:
    from synthdiv.config.models import CLIPSpec

logger = logging.getLogger(__name__)

__all__ = ["ImageTextScorer", "SCORERS", "create_scorer", "list_scorers", "register_scorer"]


register_scorer = SCORERS.register
_SHARED: dict[str, ImageTextScorer] = {}


def list_scorers(pattern: str | None = None) -> list[str]:
    """Names of the registered CLIP backends, optionally filtered by a shell-style wildcard."""
    return SCORERS.names(pattern)


def create_scorer(spec: CLIPSpec, shared: bool = True) -> ImageTextScorer:
    """Build the scorer named by ``spec.backend`` (``models.clip`` of the run config).

    Args:
        spec: The ``models.clip`` section.
        shared: Reuse the scorer already built for an identical spec in this process (stages run one after
            another load the model once); False always builds a new one.

    Raises:
        UnknownBackendError: ``spec.backend`` is not registered (the message lists the valid names).
        ConfigError: a bad option, an unknown model, or a device that is not there.
    """
    key = spec.model_dump_json()
    if shared and key in _SHARED:
        return _SHARED[key]
    scorer = SCORERS.build(spec, "clip")
    if shared:
        _SHARED[key] = scorer
    return scorer
