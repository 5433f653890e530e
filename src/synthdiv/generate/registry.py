"""The generator registry: text-to-image backends by name, and :func:`create_generator` from a config spec.

Backends are imported only when created, so listing or validating names never imports torch or diffusers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from synthdiv._registry import Registry

if TYPE_CHECKING:
    from synthdiv.config import GeneratorSpec
    from synthdiv.generate.base import Generator

logger = logging.getLogger(__name__)

__all__ = ["GENERATORS", "create_generator", "generator_id"]

GENERATORS: Registry[Generator] = Registry(
    "generator backend", {"diffusers": "synthdiv.generate.diffusers_backend:DiffusersGenerator"}
)


def generator_id(spec: GeneratorSpec) -> str:
    """The id every image_id of the plan is hashed with: ``backend:model@revision``.

    The plan stage owns the format (:func:`synthdiv.prompts.plan.generator_id`); this is the same string, so the
    generator never disagrees with the plan that named its images.
    """
    try:
        from synthdiv.prompts.plan import generator_id as plan_generator_id
    except ImportError:
        return f"{spec.backend}:{spec.model}@{spec.revision or 'main'}"
    return plan_generator_id(spec)


def create_generator(spec: GeneratorSpec, device: str | None = None) -> Generator:
    """Build the generator named by ``spec.backend``.

    Args:
        spec: ``models.generator`` of the run config; ``spec.options`` are validated by the backend.
        device: Overrides ``spec.device`` (a torchrun rank picks its own GPU).
    """
    factory = GENERATORS.get(spec.backend)
    return factory(spec, device=device)
