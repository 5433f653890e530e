"""The one device / dtype / rank resolver: its errors name the config key they came from."""

from __future__ import annotations

import pytest
import torch

from synthdiv.devices import DistEnv, dist_env, resolve_device, resolve_dtype
from synthdiv.errors import ConfigError


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


def test_training_takes_its_ranks_from_slurm_too(monkeypatch) -> None:
    from synthdiv.train.distributed import setup_distributed

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_LOCALID", "0")
    info = setup_distributed("cpu")
    assert (info.rank, info.world_size, info.local_rank, info.device.type) == (0, 1, 0, "cpu")
