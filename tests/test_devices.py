"""The one device / dtype / rank resolver: its errors name the config key they came from."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from synthdiv.errors import ConfigError
from synthdiv.utils.devices import DistEnv, dist_env, resolve_device, resolve_dtype


def test_ranks_from_torchrun_or_slurm() -> None:
    assert dist_env({}) == DistEnv(0, 1, 0) and not dist_env({}).distributed
    assert dist_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == DistEnv(3, 4, 1)
    assert dist_env({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}) == DistEnv(5, 8, 1)
    with pytest.raises(ConfigError, match="expected 0 <= rank < world"):
        dist_env({"RANK": "4", "WORLD_SIZE": "4"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only answers")
def test_devices_on_a_cpu_machine_and_errors_that_name_the_key() -> None:
    assert resolve_device("auto", "train.device", local_rank=1) == "cpu"
    with pytest.raises(ConfigError, match=r"^evaluate\.device: 'cuda:1' was asked for, but no CUDA device"):
        resolve_device("cuda:1", "evaluate.device")
    with pytest.raises(ConfigError, match=r"^models\.clip\.device: 'gpu0' is not a device"):
        resolve_device("gpu0", "models.clip.device")
    assert resolve_dtype("auto", "cpu", "models.llm.dtype", cuda_default="bfloat16") is torch.float32
    assert resolve_dtype("bfloat16", "cpu", "x") is torch.bfloat16
    with pytest.raises(ConfigError, match=r"^models\.generator\.dtype: 'half' is not a dtype"):
        resolve_dtype("half", "cpu", "models.generator.dtype")


# One Slurm task of a two-task step: the ranks come from SLURM_* alone (srun sets no RANK / WORLD_SIZE).
SLURM_TASK = """
import json, torch, torch.distributed as dist
from synthdiv.stages.train.distributed import setup_distributed
info = setup_distributed("cpu")
total = torch.tensor([float(info.rank + 1)])
dist.all_reduce(total)  # the two tasks joined one process group
print(json.dumps([info.rank, info.world_size, info.local_rank, dist.get_rank(), dist.get_world_size(), total.item()]))
dist.destroy_process_group()
"""


@pytest.mark.timeout(300)
def test_training_takes_its_ranks_from_slurm_too() -> None:
    with socket.socket() as s:  # a port free a moment ago, for torch's env:// rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    base.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), SLURM_NTASKS="2", OMP_NUM_THREADS="1")
    tasks = [subprocess.Popen([sys.executable, "-c", SLURM_TASK], env={**base, "SLURM_PROCID": str(task),
                                                                       "SLURM_LOCALID": str(task)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for task in (0, 1)]
    outs = [t.communicate(timeout=240) for t in tasks]
    assert [t.returncode for t in tasks] == [0, 0], [err[-2000:] for _, err in outs]
    assert [json.loads(out) for out, _ in outs] == [[0, 2, 0, 0, 2, 3.0], [1, 2, 1, 1, 2, 3.0]]
