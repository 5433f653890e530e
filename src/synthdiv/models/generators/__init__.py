"""The generator registry: text-to-image backends by name, and :func:`create_generator` from a config spec.

Backends are imported only when created, so listing or validating names never imports torch or diffusers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from synthdiv.config.models import generator_id
from synthdiv.registry import GENERATORS

if TYPE_CHECKING:
    from synthdiv.config.models import GeneratorSpec
    from synthdiv.models.generators.base import Generator

logger = logging.getLogger(__name__)

__all__ = ["GENERATORS", "create_generator", "generator_id", "list_generators", "register_generator"]



register_generator = GENERATORS.register


def list_generators(pattern: str | None = None) -> list[str]:
    """Names of the registered generator backends, optionally filtered by a shell-style wildcard."""
    return GENERATORS.names(pattern)


def create_generator(spec: GeneratorSpec, device: str | None = None) -> Generator:
    """Build the generator named by ``spec.backend``.

    Args:
        spec: ``models.generator`` of the run config; ``spec.options`` are validated by the backend.
        device: Overrides ``spec.device`` (a torchrun rank picks its own GPU).
    """
    return GENERATORS.build(spec, "generator", device=device)
