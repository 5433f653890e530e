"""Validation during training: loss, top-1 and top-5 on a fixed, seeded sample of the test set at each epoch's end.

It is bounded by ``train.val_batches`` batches, so it costs little next to an epoch, and it uses the same images at
every epoch and in every variant, so the curves of the arms compare (``val`` rows of ``metrics.jsonl``). The model
is in eval mode: the main norms only, as in the evaluate stage and the exported model.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.data.eval_sets import test_samples
from synthdiv.data.images import ImageDataset, collate_blocks

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.config.train import TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["Validator", "build_validator"]


class Validator:
    """Call with ``(model, device, dtype)`` for ``{"val_loss", "val_top1", "val_top5", "val_images"}``."""

    def __init__(self, samples: Any, transform: Any, batch_size: int, max_batches: int, seed: int,
                 num_workers: int = 0) -> None:
        n = min(len(samples), batch_size * max_batches)
        picked = np.sort(np.random.default_rng([seed, 7]).choice(len(samples), n, replace=False))
        self.batches = [[(0, int(i), -1) for i in picked[j : j + batch_size]] for j in range(0, n, batch_size)]
        self.samples, self.transform, self.num_workers = samples, transform, num_workers

    def __call__(self, model: Any, device: Any, dtype: Any = None) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F
        import torch.utils.data


        loader = torch.utils.data.DataLoader(ImageDataset([self.samples], self.transform),  # type: ignore[arg-type]
                                             batch_sampler=self.batches, collate_fn=collate_blocks,
                                             num_workers=self.num_workers)
        was_training = model.training
        model.eval()
        loss = top1 = top5 = 0.0
        images = 0
        autocast = torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
        with torch.inference_mode():
            for batch in loader:
                if batch["images"] is None:
                    continue
                labels = batch["labels"].to(device)
                with autocast:
                    logits = model(batch["images"].to(device)).float()
                loss += float(F.cross_entropy(logits, labels, reduction="sum"))
                top = logits.topk(min(5, logits.shape[1]), dim=1).indices
                top1 += float((top[:, 0] == labels).sum())
                top5 += float((top == labels[:, None]).any(1).sum())
                images += len(labels)
        model.train(was_training)
        if not images:
            return {"val_loss": None, "val_top1": None, "val_top5": None, "val_images": 0}
        return {"val_loss": loss / images, "val_top1": top1 / images, "val_top5": top5 / images,
                "val_images": images}


def build_validator(
    cfg: RunConfig, tcfg: TrainConfig, classes: list[dict[str, Any]], transform: Any
) -> Validator | None:
    """The validator of a variant, or None when ``train.val_batches`` is 0 or no ``evaluate.test_root`` is set."""
    if not tcfg.val_batches or cfg.evaluate.test_root is None:
        return None

    samples = test_samples(cfg.evaluate, classes)
    logger.info("validation: up to %d test images at each epoch's end", tcfg.val_batches * tcfg.batch_size)
    return Validator(samples, transform, tcfg.batch_size, tcfg.val_batches, cfg.seed, tcfg.num_workers)
