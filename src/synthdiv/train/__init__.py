"""Training: auxiliary norms, the loop, DDP, checkpoints and export. ``fit``, ``progress`` and ``headline`` are the
stage hooks.

Importing this package does not import torch; the loop's modules import it when a variant is trained.
"""

from synthdiv.train.stage import build_model, fit, headline, prepare_data, progress, train_variant

__all__ = ["fit", "progress", "headline", "train_variant", "prepare_data", "build_model"]
