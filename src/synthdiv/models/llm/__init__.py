"""The LLM layer: the protocol, backends registered by name, the response cache and structured output.

``create_llm(spec, cache_dir)`` builds the backend named by ``spec.backend`` ("transformers" for a local model
directory or GGUF file, "openai" for any OpenAI-compatible server), validating ``spec.options`` with the backend's
pydantic ``Options``. Backends are imported only when created, so importing this package never imports torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from synthdiv.models.llm.base import LLM, Message
from synthdiv.models.llm.cache import CachedLLM, CacheStats
from synthdiv.models.llm.structured import ListAnswer, ask_list, parse_list
from synthdiv.registry import LLM_BACKENDS

if TYPE_CHECKING:
    from synthdiv.config.models import LLMSpec

logger = logging.getLogger(__name__)

__all__ = [
    "LLM",
    "Message",
    "LLM_BACKENDS",
    "register_llm",
    "list_llms",
    "create_llm",
    "CachedLLM",
    "CacheStats",
    "ListAnswer",
    "ask_list",
    "parse_list",
]



def register_llm(name: str):
    """Decorator registering an LLM backend class: ``cls(spec, options)`` with a nested pydantic ``Options``."""
    return LLM_BACKENDS.register(name)


def list_llms(pattern: str | None = None) -> list[str]:
    """Registered LLM backend names, optionally filtered by a wildcard."""
    return LLM_BACKENDS.names(pattern)


def create_llm(spec: LLMSpec, cache_dir: Path | None = None) -> LLM:
    """Build the LLM that ``spec`` describes.

    Args:
        spec: The ``models.llm`` config section.
        cache_dir: When given, responses are cached there (see :class:`~synthdiv.models.llm.cache.CachedLLM`).

    Returns:
        The backend, wrapped in a :class:`CachedLLM` when ``cache_dir`` is given.

    Raises:
        UnknownBackendError: ``spec.backend`` is not registered.
        ConfigError: An option is unknown or has the wrong type (names ``models.llm.options.<key>``).
    """
    llm = LLM_BACKENDS.build(spec, "llm")
    if cache_dir is None:
        return llm
    return CachedLLM(llm, cache_dir, backend=spec.backend, model=_cache_model_name(spec))


def _cache_model_name(spec: LLMSpec) -> str:
    parts = [spec.model]
    if spec.revision:
        parts.append(f"@{spec.revision}")
    gguf = spec.options.get("gguf_file")
    if gguf:
        parts.append(f"#{gguf}")
    return "".join(parts)
