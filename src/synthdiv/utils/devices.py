"""Devices, dtypes and this process's place among the workers: the one place that resolves them.

Every model (LLM, CLIP, captioner, generator, classifier), the generation ranks, training and evaluation resolve their
config's ``device`` / ``dtype`` here, and every error names the config key it came from ("evaluate.device: ...").
The distributed environment comes from torchrun (``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``) or Slurm
(``SLURM_PROCID`` / ``SLURM_NTASKS`` / ``SLURM_LOCALID``), for generation and training alike; Ray actors are single
workers that get their GPU from Ray. torch is imported only inside the functions that need it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from synthdiv.errors import ConfigError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

__all__ = ["DistEnv", "dist_env", "resolve_device", "resolve_dtype", "device_name", "DTYPES"]

DTYPES = ("float32", "float16", "bfloat16")
_LAUNCHERS = (("RANK", "WORLD_SIZE", "LOCAL_RANK"), ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"))


@dataclass(frozen=True)
class DistEnv:
    """This process's place among the workers of one launch."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_env(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Rank and world size from torchrun or Slurm (torchrun's variables win); a single worker when neither is set.

    Raises:
        ConfigError: The variables are not integers, or the rank is not in ``0..world_size-1``.
    """
    env = os.environ if environ is None else environ
    for rank_key, world_key, local_key in _LAUNCHERS:
        if rank_key in env or world_key in env:
            try:
                rank, world = int(env.get(rank_key, "0")), int(env.get(world_key, "1"))
                local = int(env.get(local_key, "0"))
            except ValueError:
                raise ConfigError(
                    f"environment: {rank_key}={env.get(rank_key)!r} / {world_key}={env.get(world_key)!r}: "
                    "expected integers"
                ) from None
            if world < 1 or not 0 <= rank < world:
                raise ConfigError(f"environment: {rank_key}={rank} {world_key}={world}: expected 0 <= rank < world")
            return DistEnv(rank, world, local)
    return DistEnv()


def resolve_device(spec: str, key: str, local_rank: int | None = None) -> str:
    """The device a config's ``spec`` names: ``auto`` is CUDA when present (``cuda:LOCAL_RANK`` when a local rank
    is given), else the CPU; anything else must be a device torch knows, and CUDA must be there when asked for.

    Args:
        spec: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``...
        key: The config key it came from, for the error ("models.clip.device").
        local_rank: This process's GPU on its node under torchrun / Slurm.

    Raises:
        ConfigError: Not a device, or CUDA asked for where there is none.
    """
    import torch

    if spec == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        return f"cuda:{local_rank}" if local_rank is not None else "cuda"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"{key}: {spec!r} is not a device; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}: {spec!r} was asked for, but no CUDA device is available")
    return spec


def resolve_dtype(spec: str, device: str, key: str, cuda_default: str = "float16") -> torch.dtype:
    """The torch dtype a config's ``spec`` names; ``auto`` is ``cuda_default`` on CUDA (bfloat16 falls back to
    float16 on a card without it) and float32 elsewhere.

    Raises:
        ConfigError: Not one of :data:`DTYPES`.
    """
    import torch

    if spec == "auto":
        if not str(device).startswith("cuda"):
            return torch.float32
        if cuda_default == "bfloat16" and not torch.cuda.is_bf16_supported():
            return torch.float16
        spec = cuda_default
    if spec not in DTYPES:
        raise ConfigError(f"{key}: {spec!r} is not a dtype; expected auto or one of {', '.join(DTYPES)}")
    return getattr(torch, spec)


def device_name(device: object) -> str:
    """A resolved device as a measured rate records it: ``"cpu"``, ``"cuda:0 (NVIDIA H200)"``, ``"mps"``.

    ``synthdiv estimate`` reads it back to say where a rate was measured (a CPU rate is never a GPU's).
    """
    text = str(device)
    if not text.startswith("cuda"):
        return text
    import torch

    try:
        return f"{text} ({torch.cuda.get_device_name(torch.device(text))})"
    except (RuntimeError, AssertionError, ValueError):  # no CUDA here after all, or an index it does not have
        return text
