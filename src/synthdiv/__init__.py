"""synthdiv: diversify, don't fine-tune.

The public API (see ``docs/api.md``): :func:`open_run` gives a :class:`Run` (its artifacts as Arrow tables, its
synthetic images as a dataset, the mixed real+synthetic loader), :func:`run` runs the stages, and the auxiliary norm
functions put synthdiv's per-domain norms into any timm model. Names are resolved on first use, so ``import synthdiv``
(and ``synthdiv --help``) never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from synthdiv import _moved

__version__ = "0.1.0"

_moved.install()  # the import paths of 0.1 keep working for one release, with a warning

if TYPE_CHECKING:
    from synthdiv.api import ManifestView, Run, SyntheticImages, open_run, run
    from synthdiv.config.loader import load_config
    from synthdiv.config.root import RunConfig
    from synthdiv.errors import SynthdivError
    from synthdiv.stages.train.auxnorm import AuxNorm, aux_layers, convert_aux_norm, route, strip_aux_norm

_LAZY = {
    "open_run": "synthdiv.api",
    "run": "synthdiv.api",
    "Run": "synthdiv.api",
    "SyntheticImages": "synthdiv.api",
    "ManifestView": "synthdiv.api",
    "load_config": "synthdiv.config",
    "RunConfig": "synthdiv.config",
    "SynthdivError": "synthdiv.errors",
    "AuxNorm": "synthdiv.stages.train.auxnorm",
    "convert_aux_norm": "synthdiv.stages.train.auxnorm",
    "aux_layers": "synthdiv.stages.train.auxnorm",
    "route": "synthdiv.stages.train.auxnorm",
    "strip_aux_norm": "synthdiv.stages.train.auxnorm",
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'synthdiv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
