"""The ``synthdiv`` command line: the app and its entry point (:mod:`synthdiv.cli.app`), one module per group of
commands (``stages``, ``check``, ``verify``, ``show``), shared options (``_options``) and runnable hints
(``_hints``)."""

from typing import Any


def __getattr__(name: str) -> Any:
    """``synthdiv.cli.main`` (and ``app``, ``render_error``) lived here in 0.1; they read from
    :mod:`synthdiv.cli.app`, with a warning, for one release."""
    import importlib
    import warnings

    if name not in ("main", "app", "render_error", "_script"):
        raise AttributeError(f"module 'synthdiv.cli' has no attribute {name!r}")
    warnings.warn(f"synthdiv.cli.{name} is now synthdiv.cli.app.{name}; the old path goes in synthdiv 0.3",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module("synthdiv.cli.app"), name)
