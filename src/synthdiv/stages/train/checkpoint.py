"""Training checkpoints: atomic ``step-NNNNNNNN.pt`` files under ``train/<variant>/checkpoints/``, newest kept.

A checkpoint holds the model (with its auxiliary norms), optimizer, scheduler, EMA, grad scaler and the number of
optimizer steps done. Nothing else is needed to resume exactly: the data order, each sample's augmentation and the
per-step random seeds are functions of (seed, step).

Run directories are shared and copied between people and clusters, so a checkpoint is data, never code: it holds
only tensors and plain types (checked when it is saved) and is read with ``torch.load(weights_only=True)``, which
refuses any other object instead of unpickling it. A file that asks for such an object, or any whole pickle that is
not torch's zip format (a plain ``pickle.dump``, which synthdiv never writes), stops the resume with an error naming
it; a damaged file (a truncated copy, a full disk) is skipped for the newest readable one before it.

A checkpoint is streamed to disk as ``torch.save`` writes it; a full disk stops the save with the ``OSError`` the
kernel gave (``ENOSPC``), not torch's own message for a failed write, so the stage says so in one line.
"""

from __future__ import annotations

import logging
import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from synthdiv.errors import InputError
from synthdiv.utils.io import atomic_write

logger = logging.getLogger(__name__)

__all__ = [
    "checkpoint_path",
    "save_checkpoint",
    "load_checkpoint",
    "load_latest_checkpoint",
    "prune_checkpoints",
    "CorruptCheckpointError",
]

_NAME = re.compile(r"^step-(\d{8})\.pt$")
_PLAIN = (torch.Tensor, int, float, bool, str, bytes, type(None))


class CorruptCheckpointError(Exception):
    """A checkpoint file that cannot be read as one (truncated, garbage, the wrong content)."""


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step-{step:08d}.pt"


def _listed(folder: Path) -> list[tuple[int, Path]]:
    if not Path(folder).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(folder).iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def _check_plain(obj: Any, where: str = "state") -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            _check_plain(key, f"{where} key")
            _check_plain(value, f"{where}[{key!r}]")
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"checkpoint {where}: {type(obj).__name__} is not a tensor or a plain type")


def save_checkpoint(folder: Path, step: int, state: dict[str, Any]) -> Path:
    """Write ``state`` (with ``step``) atomically as ``step-NNNNNNNN.pt``.

    Raises:
        TypeError: ``state`` holds something other than tensors, numbers, strings, None, dicts, lists and tuples
            (it could not be loaded with ``weights_only=True``).
    """
    state = {**state, "step": step}
    _check_plain(state)
    path = checkpoint_path(folder, step)
    with atomic_write(path, "wb") as fh:
        sink = _Sink(fh)
        try:
            torch.save(state, sink)
        except RuntimeError:
            if sink.error is not None:  # torch reports a failed write as its own RuntimeError: give the real one
                raise sink.error from None
            raise
    logger.info("checkpoint at step %d: %s", step, path)
    return path


class _Sink:
    """The file torch.save writes to, remembering the OSError of a failed write (a full disk)."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.fh.flush()


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint without running any code from it.

    Raises:
        InputError: The file is refused, not unpickled: it asks to build a Python object other than tensors and
            plain types (a crafted or foreign file), or it is a whole pickle outside torch's zip format (synthdiv
            never writes one: a plain ``pickle.dump`` is a foreign file, whatever it holds).
        CorruptCheckpointError: The file is not a readable checkpoint (truncated, garbage, empty).
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        _refuse_pickle(path, _read_head(path))
        raise CorruptCheckpointError("not a checkpoint file (not torch's zip format)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = re.search(r"[Uu]nsupported (?:global: )?GLOBAL (\S+)", str(exc))
        if unsafe:
            raise _refused(path, f"it asks to load {unsafe.group(1).rstrip('.,')}") from None
        _refuse_pickle(path, _zipped_pickle(path))  # a whole pickle with what the safe loader does not know
        raise CorruptCheckpointError(_first_line(exc)) from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, zipfile.BadZipFile) as exc:
        # a damaged pickle inside the zip: torch's weights-only unpickler indexes past its memo or stack
        raise CorruptCheckpointError(_first_line(exc)) from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CorruptCheckpointError("not a synthdiv checkpoint (no step number)")
    return state


def _refused(path: Path, why: str) -> InputError:
    return InputError(f"{path}: refused: {why}, not only tensors and plain types; a checkpoint is never unpickled "
                      "(delete the file if you did not make it)")


# a plain pickle larger than this is not read whole to be recognised (it is refused by its first opcode, PROTO)
_PICKLE_SCAN_LIMIT = 64 << 20


def _read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(_PICKLE_SCAN_LIMIT)
    except OSError:
        return b""


def _zipped_pickle(path: Path) -> bytes:
    """The pickle inside a torch zip checkpoint (``<name>/data.pkl``), or b"" when it cannot be read."""
    try:
        with zipfile.ZipFile(path) as zf:
            name = next((n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            return zf.read(name)[:_PICKLE_SCAN_LIMIT] if name else b""
    except (OSError, zipfile.BadZipFile, ValueError):
        return b""


def _refuse_pickle(path: Path, data: bytes) -> None:
    """Raise the refusal when ``data`` is a pickle: a stream that begins with the PROTO opcode (protocol 2 and
    later), or one that parses whole to its STOP opcode (protocols 0 and 1). It is read with :mod:`pickletools`,
    which lists opcodes and never builds an object. Damage (zeros, a truncated zip, text) is no pickle and returns."""
    if not data or data.startswith(b"PK\x03\x04"):  # nothing, or a zip cut short: damage, not a pickle
        return
    imports: list[str] = []
    strings: list[str] = []
    whole = False
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                imports.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                imports.append(".".join(strings[-2:]))
            elif isinstance(arg, str):
                strings.append(arg)
            if op.name == "STOP":
                whole = True
                break
    except Exception:  # noqa: BLE001 - any parse failure: not a whole pickle (its first opcode may still say so)
        pass
    if not whole and not (len(data) > 1 and data[0] == 0x80 and 2 <= data[1] <= 5):
        return
    asks = f"it is a pickle asking to load {imports[0]}" if imports else "it is a plain pickle"
    raise _refused(path, asks)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def load_latest_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The newest readable checkpoint in ``folder`` (None when there is none).

    A damaged newer checkpoint is skipped with a warning that names it and says why; it is left in place, to be
    replaced when training reaches its step again.
    """
    skipped = False
    for step, path in reversed(_listed(folder)):
        try:
            state = load_checkpoint(path)
        except CorruptCheckpointError as exc:
            logger.warning("checkpoint %s is unreadable (%s): trying the one before it", path.name, exc)
            skipped = True
            continue
        if state["step"] != step:
            logger.warning("checkpoint %s holds step %d: trying the one before it", path.name, state["step"])
            skipped = True
            continue
        if skipped:
            logger.warning("resuming from %s, the newest readable checkpoint", path.name)
        return state
    if skipped:
        logger.warning("no readable checkpoint in %s: training starts again from step 0", folder)
    return None


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for _, path in _listed(folder)[:-keep]:
        path.unlink(missing_ok=True)
