"""Train one variant of a toy run in a fresh process (for the resume-after-SIGKILL and DDP tests).

Usage: python train_script.py CONFIG_JSON VARIANT   (also under torchrun: rank and world size from the env).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import torch

from synthdiv.config.loader import config_from_dict
from synthdiv.core.rundir import RunDir
from synthdiv.stages.train.stage import train_variant

if __name__ == "__main__":
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = config_from_dict(json.loads(Path(sys.argv[1]).read_text()))
    train_variant(cfg, RunDir(cfg.run_dir), sys.argv[2])
