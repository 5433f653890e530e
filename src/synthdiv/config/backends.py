"""Backend names and options checked when the config loads, not when the model is built.

Each ``models.<role>`` entry names a registered backend whose class carries a pydantic ``Options`` model with
``extra="forbid"``. Validating ``options`` against it here makes a typo (``--set models.generator.options.stpes=25``)
a one-line :class:`~synthdiv.errors.ConfigError` before any stage runs, like an unknown key of the config itself.
The registries import a backend's module only (pydantic, numpy): no model is loaded and torch is not imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from synthdiv.errors import ConfigError, UnknownBackendError

if TYPE_CHECKING:
    from synthdiv._registry import Registry
    from synthdiv.config.root import RunConfig

__all__ = ["ROLES", "registry", "backend_options", "check_backends"]

ROLES = ("llm", "clip", "generator")


def registry(role: str) -> Registry[Any]:
    """The registry of backends for ``models.<role>``."""
    if role == "llm":
        from synthdiv.llm import LLM_BACKENDS

        return LLM_BACKENDS
    if role == "clip":
        from synthdiv.clip import SCORERS

        return SCORERS
    from synthdiv.generate.registry import GENERATORS

    return GENERATORS


def backend_options(cfg: RunConfig, role: str) -> Any:
    """The validated ``Options`` of ``models.<role>`` (None for a backend without an ``Options`` model).

    Raises:
        ConfigError: the backend is not registered, or an option is unknown or of the wrong type; the message
            names ``models.<role>.backend`` or ``models.<role>.options.<key>``.
    """
    spec = getattr(cfg.models, role)
    try:
        cls = registry(role).get(spec.backend)
    except UnknownBackendError as exc:
        raise ConfigError(f"models.{role}.backend: {exc.args[0] if exc.args else exc}") from None
    options_model = getattr(cls, "Options", None)
    if options_model is None:
        return None
    try:
        return options_model.model_validate(spec.options)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, role, options_model)) from None


def check_backends(cfg: RunConfig) -> None:
    """Validate every ``models.<role>`` backend name and its options (see :func:`backend_options`)."""
    for role in ROLES:
        backend_options(cfg, role)


def _explain(exc: ValidationError, role: str, options_model: Any) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = ".".join(["models", role, "options", *(str(p) for p in first["loc"])])
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(options_model.model_fields))
        return f"{loc}: unknown key; expected one of: {allowed}{more}"
    shown = repr(first.get("input"))
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"{loc}: {first['msg'][:1].lower()}{first['msg'][1:]}, got {shown}{more}"
