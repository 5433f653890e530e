"""The build cache of the embedded models: where they live, how a folder is keyed, built once and shared.

A model's folder is keyed by a hash of its name, its config, the seed, the folder format and the versions of the
libraries that build it, so a change to any of them makes a new folder. A build goes into a temporary folder that is
fsynced and renamed into place, so processes racing to build the same model cannot corrupt the cache.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthdiv.utils.hashing import canonical_hash
from synthdiv.utils.io import atomic_write_json, fsync_path

logger = logging.getLogger(__name__)

__all__ = ["EMBEDDED_SEED", "RANDOM_WEIGHTS_NOTE", "cache_root"]

EMBEDDED_SEED = 0
RANDOM_WEIGHTS_NOTE = (
    "embedded CLIP and diffusion models have RANDOM weights: their images and scores carry no class signal"
)

_MARKER = "synthdiv_embedded.json"  # written last inside the temporary folder: its presence means "complete"
_FORMAT = 2  # bump when the folder layout changes


def cache_root() -> Path:
    """The folder of built embedded models: ``$SYNTHDIV_CACHE`` if set, else ``~/.cache/synthdiv``."""
    env = os.environ.get("SYNTHDIV_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "synthdiv"


def _versions(*packages: str) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def _cached_build(name: str, config: dict[str, Any], packages: tuple[str, ...], build: Callable[[Path], None]) -> Path:
    """Return the cache folder of ``name`` for ``config``, building it with ``build(tmp_folder)`` if absent.

    The folder is built under a temporary name next to its final place, fsynced, then renamed; a process that
    loses a race to build the same folder discards its copy and uses the winner's.
    """
    versions = _versions(*packages)
    key_data = {"name": name, "config": config, "seed": EMBEDDED_SEED, "format": _FORMAT, "versions": versions}
    key = canonical_hash(key_data)[:16]
    final = cache_root() / "embedded" / f"{name}-{key}"
    if (final / _MARKER).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=final.parent))
    try:
        logger.info("building embedded model %s into %s (random weights, seed %d)", name, final, EMBEDDED_SEED)
        build(tmp)
        atomic_write_json(tmp / _MARKER, {**key_data, "key": key, "note": RANDOM_WEIGHTS_NOTE})
        _fsync_tree(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / _MARKER).is_file():
                raise
            logger.debug("another process built %s first; using its copy", final)
        else:
            fsync_path(final.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            fsync_path(Path(folder) / name)
        fsync_path(Path(folder))


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed torch's CPU generator inside the block and restore the caller's generator state afterwards."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
