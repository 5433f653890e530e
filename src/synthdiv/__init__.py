"""synthdiv: diversify, don't fine-tune.

The public API (see ``docs/api.md``): :func:`open_run` gives a :class:`Run` (its artifacts as Arrow tables, its
synthetic images as a dataset, the mixed real+synthetic loader), :func:`run` runs the stages, and the auxiliary norm
functions put synthdiv's per-domain norms into any timm model. Names are resolved on first use, so ``import synthdiv``
(and ``synthdiv --help``) never imports torch.
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from synthdiv.api import ManifestView, Run, SyntheticImages, open_run, run
    from synthdiv.config import RunConfig, load_config
    from synthdiv.errors import SynthdivError
    from synthdiv.train.auxnorm import AuxNorm, aux_layers, convert_aux_norm, route, strip_aux_norm

_LAZY = {
    "open_run": "synthdiv.api",
    "Run": "synthdiv.api",
    "SyntheticImages": "synthdiv.api",
    "ManifestView": "synthdiv.api",
    "load_config": "synthdiv.config",
    "RunConfig": "synthdiv.config",
    "SynthdivError": "synthdiv.errors",
    "AuxNorm": "synthdiv.train.auxnorm",
    "convert_aux_norm": "synthdiv.train.auxnorm",
    "aux_layers": "synthdiv.train.auxnorm",
    "route": "synthdiv.train.auxnorm",
    "strip_aux_norm": "synthdiv.train.auxnorm",
}

__all__ = [
    "__version__",
    "open_run",
    "run",
    "Run",
    "SyntheticImages",
    "ManifestView",
    "load_config",
    "RunConfig",
    "SynthdivError",
    "AuxNorm",
    "convert_aux_norm",
    "aux_layers",
    "route",
    "strip_aux_norm",
]


class _RunModule(types.ModuleType):
    """``synthdiv.run`` is the module of the run directory's layout (``synthdiv.run.RunDir``) and, called, runs the
    stages (:func:`synthdiv.api.run`). A plain function of that name would be replaced by the module the first time
    anything imports ``synthdiv.run``, so the module itself is made callable."""

    def __call__(self, config: Any, until: str | None = None, redo: Any = ()) -> dict[str, dict[str, Any]]:
        from synthdiv.api import run

        return run(config, until=until, redo=redo)


if not TYPE_CHECKING:
    from synthdiv import run  # stdlib imports only

    run.__class__ = _RunModule


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'synthdiv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
