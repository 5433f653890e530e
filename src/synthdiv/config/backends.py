"""Backend names and options checked when the config loads, not when the model is built.

Each ``models.<role>`` entry names a registered backend whose class carries a pydantic ``Options`` model with
``extra="forbid"``. Validating ``options`` against it here makes a typo (``--set models.generator.options.stpes=25``)
a one-line :class:`~synthdiv.errors.ConfigError` before any stage runs, like an unknown key of the config itself.
The registries import a backend's module only (pydantic, numpy): no model is loaded and torch is not imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synthdiv.errors import ConfigError, UnknownBackendError
from synthdiv.registry import BACKENDS, Registry

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig

__all__ = ["ROLES", "registry", "backend_options", "check_backends"]

ROLES = ("llm", "clip", "generator", "captioner")


def registry(role: str) -> Registry[Any]:
    """The registry of backends for ``models.<role>``."""
    return BACKENDS[role]


def backend_options(cfg: RunConfig, role: str) -> Any:
    """The validated ``Options`` of ``models.<role>`` (None for a backend without an ``Options`` model).

    Raises:
        ConfigError: the backend is not registered, or an option is unknown or of the wrong type; the message
            names ``models.<role>.backend`` or ``models.<role>.options.<key>``.
    """
    try:
        return registry(role).options(getattr(cfg.models, role), role)
    except UnknownBackendError as exc:
        raise ConfigError(exc.args[0] if exc.args else str(exc)) from None


def check_backends(cfg: RunConfig) -> None:
    """Validate every ``models.<role>`` backend name and its options (see :func:`backend_options`), and those of each
    ``models.mixture`` entry (named ``models.mixture[i]``)."""
    for role in ROLES:
        backend_options(cfg, role)
    for i, entry in enumerate(cfg.models.mixture):
        try:
            registry("generator").options(entry, f"mixture[{i}]")
        except UnknownBackendError as exc:
            raise ConfigError(exc.args[0] if exc.args else str(exc)) from None
