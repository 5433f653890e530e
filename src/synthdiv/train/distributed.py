"""Process group and device set-up for training under ``torchrun`` (NCCL on GPU, gloo on CPU) or alone.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with ``WORLD_SIZE > 1`` the process group is
initialised once per process and each rank uses ``cuda:LOCAL_RANK`` (or the CPU).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from synthdiv.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["DistInfo", "setup_distributed", "resolve_device"]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU; other values as given."""
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"train.device: {spec!r} is not a device; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {spec!r} asked for, but CUDA is not available")
    return device


def setup_distributed(device_spec: str) -> DistInfo:
    """Join the ``torchrun`` process group if there is one; returns this process's rank, world size and device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec, local_rank)
    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        logger.info("distributed training: rank %d of %d on %s", rank, world, device)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)
