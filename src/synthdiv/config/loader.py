"""Loading a run config: YAML file + ``--set key.path=value`` overrides + ``--run-dir``, validated by pydantic.

Every problem becomes a one-line :class:`~synthdiv.errors.ConfigError` naming the file, the key path and what was
expected; nothing is written anywhere before the config is valid. The file and every ``--set`` value are read by
:func:`synthdiv.config._yaml.parse_yaml`: a file over :data:`MAX_CONFIG_BYTES` is refused before it is read, and a
duplicate key, deep nesting or an alias bomb before anything is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from synthdiv.config._yaml import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_CONFIG_VALUES, YAMLRefused, parse_yaml
from synthdiv.config.backends import check_backends
from synthdiv.config.root import RunConfig
from synthdiv.errors import ConfigError

__all__ = [
    "load_config", "config_from_dict", "apply_override", "dump_config", "MAX_CONFIG_BYTES", "MAX_CONFIG_VALUES",
    "MAX_CONFIG_DEPTH",
]


def load_config(
    path: Path | str, overrides: Sequence[str] = (), run_dir: Path | str | None = None
) -> RunConfig:
    """Read, override and validate the run config at ``path``.

    Args:
        path: The YAML file.
        overrides: ``"section.key=value"`` strings; the value is parsed as YAML (``true``, ``3``, ``[a, b]``).
        run_dir: Replaces ``run_dir`` (relative to the current directory, as typed on a command line); an empty
            string is refused (``"."`` is the current directory).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    if isinstance(run_dir, str) and not run_dir.strip():
        raise ConfigError("run_dir: empty; expected a folder path ('.' for the current folder)")
    try:
        data = parse_yaml(_read_bounded(path))
    except YAMLRefused as exc:
        where = "" if exc.line is None else f" line {exc.line}:"
        raise ConfigError(f"{path}:{where} {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    for item in overrides:
        apply_override(data, item, source=str(path))
    if run_dir is not None:
        data["run_dir"] = str(Path(run_dir).resolve())
    return config_from_dict(data, base_dir=path.resolve().parent, source=str(path))


def _read_bounded(path: Path) -> str:
    """The text of the config file, refused before it is read when it is over :data:`MAX_CONFIG_BYTES`."""
    try:
        size = path.stat().st_size
        if size <= MAX_CONFIG_BYTES:
            with path.open("rb") as f:
                raw = f.read(MAX_CONFIG_BYTES + 1)  # the file may have grown since it was measured
            size = len(raw)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes; a config file is at most {MAX_CONFIG_BYTES:,} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None


def config_from_dict(data: dict[str, Any], base_dir: Path | None = None, source: str = "<config>") -> RunConfig:
    """Validate a config mapping; relative paths are resolved against ``base_dir``."""
    try:
        cfg = RunConfig.model_validate(data, context={"base_dir": base_dir or Path.cwd()})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source)) from None
    try:
        check_backends(cfg)  # backend options are refused like unknown keys, before any stage runs
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return cfg


def apply_override(data: dict[str, Any], item: str, source: str = "--set") -> None:
    """Apply one ``a.b.c=value`` override to ``data`` in place."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    try:
        value = parse_yaml(raw) if raw.strip() else ""
    except YAMLRefused as exc:
        raise ConfigError(f"--set {item!r}: {exc.problem}") from None
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item!r}: {'.'.join(parts[: depth + 1])} is not a section in {source}")
        node = child
    node[parts[-1]] = value


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML (paths absolute, defaults filled in), as written into the run directory."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _one_line(exc: ValidationError, source: str) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = _explain(first)
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{source}: {loc}: {msg}{more}"


def _explain(error: dict[str, Any]) -> str:
    kind, msg, value = error["type"], error["msg"], error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    if isinstance(value, dict | list) and kind.endswith("_type"):
        shown = type(value).__name__
    return f"{msg[0].lower()}{msg[1:]}, got {shown}" if msg else f"invalid value {shown}"
