"""Process group and device set-up for training under ``torchrun`` or Slurm (NCCL on GPU, gloo on CPU), or alone.

The ranks come from :func:`synthdiv.utils.devices.dist_env` (torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``, or
Slurm's ``SLURM_PROCID`` / ``SLURM_NTASKS`` / ``SLURM_LOCALID``, as for generation); with more than one the process
group is initialised once per process and each rank uses ``cuda:LOCAL_RANK`` (or the CPU). Under Slurm, export
``MASTER_ADDR`` (the first node) and ``MASTER_PORT`` before ``srun``, as torch's env:// rendezvous needs them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from synthdiv.utils.devices import DistEnv, dist_env, resolve_device

logger = logging.getLogger(__name__)

__all__ = ["DistInfo", "setup_distributed"]


@dataclass(frozen=True)
class DistInfo(DistEnv):
    """This process's place among the training ranks, and its device."""

    device: torch.device = torch.device("cpu")


def setup_distributed(device_spec: str) -> DistInfo:
    """Join the ``torchrun`` process group if there is one; returns this process's rank, world size and device."""
    env = dist_env()
    world, rank, local_rank = env.world_size, env.rank, env.local_rank
    device = torch.device(resolve_device(device_spec, "train.device", local_rank))
    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():  # rank and size given: Slurm's srun sets no RANK / WORLD_SIZE
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
        logger.info("distributed training: rank %d of %d on %s", rank, world, device)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)
