"""Typed user errors.

Everything a user can cause (a bad config, a missing file, an unknown backend, a stage run out of order) raises a
subclass of :class:`SynthdivError`. The CLI renders it as one line on stderr and exits with code 2; library callers
can catch it. Programming errors stay ordinary exceptions with tracebacks.
"""

from __future__ import annotations

__all__ = [
    "SynthdivError",
    "ConfigError",
    "InputError",
    "UnknownBackendError",
    "MissingDependencyError",
    "StageOrderError",
    "FingerprintMismatchError",
    "TrainingDivergedError",
    "RunLockedError",
    "DiskFullError",
]


class SynthdivError(Exception):
    """An error caused by the user's input or environment; displayed to the user as one line."""

    exit_code = 2


class ConfigError(SynthdivError):
    """A run config that is malformed: names the file, the key path and what was expected."""


class InputError(SynthdivError):
    """An input file (class list, image folder, artifact) that cannot be used as it is."""


class UnknownBackendError(SynthdivError, KeyError):
    """A backend or registry name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(SynthdivError, ImportError):
    """An optional dependency is missing; the message says what to pip install."""


class StageOrderError(SynthdivError):
    """A stage was asked to run before the stages whose artifacts it reads."""


class FingerprintMismatchError(SynthdivError):
    """A finished stage was asked to run again with a different config or inputs, without ``--redo``."""


class RunLockedError(SynthdivError):
    """Another process is writing the run directory (the message names its pid and host)."""


class TrainingDivergedError(SynthdivError):
    """Training gave non-finite gradients for more consecutive steps than ``train.max_nonfinite_steps`` allows."""

    exit_code = 1  # a run that went wrong, not a malformed input


class DiskFullError(SynthdivError):
    """The disk filled up while a stage wrote its outputs (the message names the path and the free space); what was
    complete is kept, and rerunning the stage after freeing space resumes it."""

    exit_code = 1  # a run that went wrong, not a malformed input
