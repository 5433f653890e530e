"""Image generation (step 4 of the method): generator backends, WebDataset shards + manifest, runners, scoring.

Importing this package is light (pyarrow, numpy); torch, diffusers and ray are imported by the backends and runners
when they are used.
"""

import logging

from synthdiv.generate.base import Generator
from synthdiv.generate.engine import (
    generate_images,
    incomplete_shards,
    is_complete,
    pending_shards,
    progress,
    require_complete,
)
from synthdiv.generate.registry import GENERATORS, create_generator, generator_id
from synthdiv.generate.shards import read_manifest

logger = logging.getLogger(__name__)

__all__ = [
    "Generator",
    "GENERATORS",
    "create_generator",
    "generator_id",
    "generate_images",
    "progress",
    "is_complete",
    "pending_shards",
    "incomplete_shards",
    "require_complete",
    "read_manifest",
]
