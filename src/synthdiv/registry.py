"""Registries of named backends (timm-style): one :class:`Registry` per extension point.

A backend registers under ``name`` with :meth:`Registry.register`; an unknown name raises
:class:`~synthdiv.errors.UnknownBackendError` that lists the valid names. Registering the same name twice warns and
replaces.

A model backend (``models.<role>``: llm, clip, generator, captioner) is a class ``cls(spec, options, **extra)`` with
a pydantic ``Options`` model (``extra="forbid"``) for ``models.<role>.options``. :meth:`Registry.build` makes one
from its config spec, and :meth:`Registry.options` validates the options with :func:`parse_options`, the one
validator, used when the config loads and when the backend is built, so a bad option reads the same for every role:
``models.<role>.options.<key>: ...``. :meth:`Registry.create` builds a plain factory from keyword arguments.

The four tables of model backends live here, as names -> ``"module:Class"``: the config validates a backend's name
and options by importing this leaf (and the one backend module it names), never a model package or a stage.
"""

from __future__ import annotations

import fnmatch
import importlib
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from synthdiv.errors import ConfigError, UnknownBackendError

logger = logging.getLogger(__name__)

__all__ = ["Registry", "parse_options", "LLM_BACKENDS", "SCORERS", "CAPTIONERS", "GENERATORS", "BACKENDS"]

T = TypeVar("T")
OptionsT = TypeVar("OptionsT")


def parse_options(model: type[OptionsT], options: dict[str, Any] | None, where: str) -> OptionsT:
    """``options`` validated by a backend's pydantic ``Options`` ``model``.

    Args:
        model: The backend's options model.
        options: The raw ``models.<role>.options`` mapping.
        where: The config path of the mapping ("models.clip.options").

    Raises:
        ConfigError: One line: ``<where>.<key>: unknown key; expected one of: ...`` or ``<where>.<key>: <what is
            wrong>, got <value>`` (and how many more problems there are).
    """
    from pydantic import ValidationError

    try:
        return model.model_validate(options or {})  # type: ignore[attr-defined]
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        loc = ".".join([where, *(str(p) for p in first["loc"])])
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        if first["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(model.model_fields))  # type: ignore[attr-defined]
            raise ConfigError(f"{loc}: unknown key; expected one of: {allowed}{more}") from None
        shown = repr(first.get("input"))
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ConfigError(f"{loc}: {first['msg'][:1].lower()}{first['msg'][1:]}, got {shown}{more}") from None


class Registry(Generic[T]):
    """A name -> factory map for one extension point (``llm``, ``clip``, ``generator``, ``runner``...).

    Args:
        kind: What the registry holds, used in messages ("LLM backend").
        builtins: ``name -> "module:attr"`` of built-in backends, imported only when first asked for, so that
            listing or validating names never imports torch.
    """

    def __init__(self, kind: str, builtins: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}
        self._lazy: dict[str, str] = dict(builtins or {})

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering a factory (usually a class) under ``name``."""

        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries and self._entries[name] is not fn:
                logger.warning("%s %r registered twice; the later one replaces the earlier", self.kind, name)
            self._entries[name] = fn
            return fn

        return deco

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by a shell-style wildcard."""
        names = sorted(set(self._entries) | set(self._lazy))
        return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._lazy

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``; imports a lazy built-in on first use."""
        if name not in self._entries and name in self._lazy:
            module, _, attr = self._lazy[name].partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._entries.setdefault(name, obj)
        if name not in self._entries:
            raise UnknownBackendError(f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}")
        return self._entries[name]

    def backend(self, spec: Any, role: str) -> Callable[..., T]:
        """The class of ``spec.backend``; an unknown name raises naming ``models.<role>.backend``."""
        try:
            return self.get(spec.backend)
        except UnknownBackendError as exc:
            raise UnknownBackendError(f"models.{role}.backend: {exc}") from None

    def options(self, spec: Any, role: str) -> Any:
        """``spec.options`` validated by the backend's ``Options`` model (None for a backend without one)."""
        model = getattr(self.backend(spec, role), "Options", None)
        return None if model is None else parse_options(model, spec.options, f"models.{role}.options")

    def build(self, spec: Any, role: str, **extra: Any) -> T:
        """The backend of config spec ``models.<role>``: ``cls(spec, options, **extra)``, its options validated."""
        return self.backend(spec, role)(spec, self.options(spec, role), **extra)

    def create(self, name: str, **kwargs: Any) -> T:
        """Build the backend ``name`` from ``kwargs``; ``None`` values are dropped so defaults apply."""
        return self.get(name)(**{k: v for k, v in kwargs.items() if v is not None})


# -- the model backends, by role (models.<role>.backend) ---------------------------------------------------------------

LLM_BACKENDS: Registry[Any] = Registry("LLM backend", {
    "transformers": "synthdiv.models.llm.transformers_backend:TransformersLLM",
    "openai": "synthdiv.models.llm.openai_backend:OpenAILLM",
})
SCORERS: Registry[Any] = Registry("CLIP backend", {
    "open_clip": "synthdiv.models.clip.openclip:OpenCLIPScorer",
    "transformers": "synthdiv.models.clip.hf:HFScorer",
})
CAPTIONERS: Registry[Any] = Registry("captioner backend", {
    "transformers": "synthdiv.models.captions.hf:HFCaptioner",
    "openai": "synthdiv.models.captions.openai_backend:OpenAICaptioner",
})
GENERATORS: Registry[Any] = Registry("generator backend", {
    "diffusers": "synthdiv.models.generators.diffusers:DiffusersGenerator",
})
BACKENDS: dict[str, Registry[Any]] = {
    "llm": LLM_BACKENDS, "clip": SCORERS, "captioner": CAPTIONERS, "generator": GENERATORS,
}
