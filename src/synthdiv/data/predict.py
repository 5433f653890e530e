"""Run a model over an evaluation set: top-k predictions per image, in eval mode (main norms only)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from synthdiv.data.eval_sets import EvalSet
from synthdiv.data.images import ImageDataset, collate_blocks
from synthdiv.utils.decode import SkipTally
from synthdiv.utils.progress import Progress

logger = logging.getLogger(__name__)

__all__ = ["predict", "eval_transform"]


def eval_transform(model: Any) -> Callable[[Any], Any]:
    """The eval transform a timm model's own config asks for (input size, crop, mean, std)."""
    from timm.data import create_transform, resolve_data_config

    return create_transform(**resolve_data_config({}, model=model), is_training=False)


class _Shifted:
    def __init__(self, shift: Callable[[Any], Any] | None, transform: Callable[[Any], Any]) -> None:
        self.shift, self.transform = shift, transform

    def __call__(self, img: Any) -> Any:
        return self.transform(self.shift(img) if self.shift else img)


def predict(
    model: Any, evalset: EvalSet, transform: Callable[[Any], Any], batch_size: int = 128, num_workers: int = 0,
    device: Any = "cpu", k: int = 5, max_pixels: int | None = None, skipped: SkipTally | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(topk indices (N, k), labels (N,), corrupt count)`` of ``model`` on ``evalset``.

    The model is put in eval mode, so auxiliary norms (if any) are not used; ``evalset.class_mask`` restricts the
    logits to a class subset (ImageNet-R / -A). Images are decoded under the decoder policy (pixel bound
    ``max_pixels``); the unreadable ones are skipped and, when ``skipped`` is given, tallied there per class.
    """
    import torch
    import torch.utils.data


    dataset = ImageDataset([evalset.samples], _Shifted(evalset.shift, transform), max_pixels)
    keys = [(0, i, -1) for i in range(len(evalset.samples))]
    batches = [keys[i : i + batch_size] for i in range(0, len(keys), batch_size)]
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=collate_blocks,  # type: ignore
                                         num_workers=num_workers)
    mask = None
    if evalset.class_mask is not None:
        mask = torch.as_tensor(~evalset.class_mask, device=device)
    model.eval().to(device)
    tops, labels, corrupt = [], [], 0
    with torch.inference_mode(), Progress(transient=True) as bar:
        task = bar.add_task(f"eval {evalset.name}", total=len(batches))
        for batch in loader:
            corrupt += batch["corrupt"]
            if skipped is not None:
                skipped.update(batch["unreadable"])
            if batch["images"] is not None:
                logits = model(batch["images"].to(device)).float()
                if mask is not None:
                    logits = logits.masked_fill(mask, float("-inf"))
                tops.append(logits.topk(min(k, logits.shape[1]), dim=1).indices.cpu().numpy())
                labels.append(batch["labels"].numpy())
            bar.advance(task)
    if not tops:
        return np.zeros((0, 1), dtype=np.int64), np.zeros(0, dtype=np.int64), corrupt
    return np.concatenate(tops), np.concatenate(labels), corrupt
