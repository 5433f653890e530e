"""Nothing private leaves the machine: absolute paths of the machine and secrets are taken out of every text that a
published folder holds (the recipe, the metadata, the shards' JSON sidecars, the card).

A :class:`Scrubber` knows the machine's paths (the run directory, the home folder, the current folder, and every
absolute path the config names: a local model folder, the real images) and writes each as a neutral label:
``run/...`` for a path inside the run, ``~/...`` inside the home folder, ``<local>/<name>`` for any other. Config
keys that name a secret (an API key, a token, a password) have their values replaced by ``<redacted>``; the name of
an environment variable that holds one (``api_key_env``) is kept, since it is not the secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["Scrubber", "REDACTED", "is_secret_key"]

REDACTED = "<redacted>"
_SECRET = re.compile(r"(^|[_-])(api[_-]?key|token|secret|password|passwd|credentials?|authorization)($|[_-])",
                     re.IGNORECASE)
_URL_USER = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """A config key whose value is a secret (``api_key``, ``hf_token``); ``..._env`` names a variable, not a secret."""
    return bool(_SECRET.search(key)) and not key.lower().endswith("_env")


class Scrubber:
    """Rewrites the machine's absolute paths in text as neutral labels (see the module docstring).

    Args:
        run_root: The run directory (its paths become ``run/...``).
        extra: More absolute paths to hide (each becomes ``<local>/<its name>``).
    """

    def __init__(self, run_root: Path, extra: Iterable[str | Path] = ()) -> None:
        labels: dict[str, str] = {}
        for path in extra:
            text = os.path.normpath(str(path))
            if os.path.isabs(text) and text != "/":
                labels[text] = f"<local>/{Path(text).name}"
        labels[os.path.normpath(str(Path.cwd()))] = "<local>"
        home = os.path.expanduser("~")
        if home not in ("/", "~"):
            labels[os.path.normpath(home)] = "~"
        for root in {run_root, run_root.resolve()}:
            labels[os.path.normpath(str(root))] = "run"
        labels.pop("/", None)
        self._labels = dict(sorted(labels.items(), key=lambda kv: -len(kv[0])))
        alternatives = "|".join(re.escape(p) for p in self._labels)
        self._pattern = re.compile(f"({alternatives})(?=/|$|[^A-Za-z0-9_.-])") if alternatives else None

    @property
    def paths(self) -> list[str]:
        """The machine paths this scrubber hides, longest first."""
        return list(self._labels)

    def text(self, value: str) -> str:
        """``value`` with every known machine path replaced by its label, and user:password@ taken out of URLs."""
        if self._pattern is not None:
            value = self._pattern.sub(lambda m: self._labels[m.group(1)], value)
        return _URL_USER.sub(r"\g<scheme>", value)

    def tree(self, value: Any, key: str = "") -> Any:
        """A JSON-like ``value`` (dicts, lists, strings) with paths scrubbed and secret keys' values redacted."""
        if isinstance(value, dict):
            return {k: (REDACTED if is_secret_key(str(k)) and v not in (None, "") else self.tree(v, str(k)))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.tree(v, key) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def absolute_paths(value: Any) -> list[str]:
    """Every string in a JSON-like ``value`` that is an absolute path (what the config names on this machine)."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in absolute_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in absolute_paths(v)]
    return [value] if isinstance(value, str) and os.path.isabs(value) else []
