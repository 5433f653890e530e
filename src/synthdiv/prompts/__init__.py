"""Prompt diversification (CD + SD), composition and the plan stage.

``build_prompts(cfg, run)`` is the prompts stage (:mod:`synthdiv.prompts.stage`); the plan stage is
:func:`synthdiv.prompts.plan.build_plan`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from synthdiv.config import RunConfig
    from synthdiv.run import RunDir

logger = logging.getLogger(__name__)

__all__ = ["build_prompts", "external_inputs"]


def build_prompts(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """The prompts stage: contexts (CD) and styles (SD) from the LLM, composed into ``prompts.parquet``."""
    from synthdiv.prompts.stage import run_prompts_stage

    return run_prompts_stage(cfg, run)


def external_inputs(cfg: RunConfig) -> list[Path]:
    """Files outside the run that the prompts stage reads (a reused ``prompts.styles_file``): their bytes enter
    the stage's fingerprint, so an edited styles file makes the stage stale."""
    paths = [cfg.prompts.styles_file] if cfg.prompts.styles_file is not None else []
    if cfg.prompts.target_images is not None:  # a folder: its listing (names, sizes, mtimes) enters the fingerprint
        paths.append(cfg.prompts.target_images)
    return paths
