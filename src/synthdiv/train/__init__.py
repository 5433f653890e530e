"""Training: auxiliary norms, the loop, DDP, checkpoints and export. ``fit`` and ``progress`` are the stage hooks.

Importing this package does not import torch; the loop's modules import it when a variant is trained.
"""

from synthdiv.train.stage import build_model, fit, prepare_data, progress, train_variant

__all__ = ["fit", "progress", "train_variant", "prepare_data", "build_model"]
