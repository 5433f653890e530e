"""The nine stages, one package each, named as the CLI names them: classes, disambiguate, prompts, plan,
generate, score, train, evaluate, report.

Each has ``stage.py``, whose ``build(cfg, run)`` is the stage (the stage table, :mod:`synthdiv.core.pipeline`, names
it without importing it), and ``reader.py``, the one way later stages, the report, ``status`` and the API read its
artifacts. A stage imports the readers of earlier stages only."""

from typing import Any


def __getattr__(name: str) -> Any:
    """``synthdiv.stages`` was the stage runner in 0.1 (now :mod:`synthdiv.engine.runner`); its names still read
    from here, with a warning, for one release."""
    import importlib
    import warnings

    runner = importlib.import_module("synthdiv.engine.runner")
    if name.startswith("__") or not hasattr(runner, name):
        raise AttributeError(f"module 'synthdiv.stages' has no attribute {name!r}")
    warnings.warn(f"synthdiv.stages.{name} is now synthdiv.engine.runner.{name}; the old path goes in synthdiv 0.3",
                  DeprecationWarning, stacklevel=2)
    return getattr(runner, name)
