"""Mixup and CutMix applied within each domain block, so real and synthetic images are never blended together.

timm's ``Mixup`` mixes a whole batch with its flipped self; applied to a mixed batch it would pair real samples
with synthetic ones and blur the split the auxiliary norms rely on. Here each block is mixed with its own flip,
with a numpy ``Generator`` passed in (seeded per step by the loop) so that a resumed run mixes identically.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = ["soft_targets", "mix_block", "mix_within_domains"]


def soft_targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """One-hot targets with label smoothing (``smoothing / C`` off, ``1 - smoothing + smoothing / C`` on)."""
    off = smoothing / num_classes
    out = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return out.scatter_(1, labels.unsqueeze(1), 1.0 - smoothing + off)


def mix_block(
    x: torch.Tensor, y: torch.Tensor, mixup_alpha: float, cutmix_alpha: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix (chosen with equal odds when both are on) of one block with its flip; ``y`` is soft."""
    if x.shape[0] < 2 or (mixup_alpha <= 0 and cutmix_alpha <= 0):
        return x, y
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < 0.5)
    lam = float(rng.beta(cutmix_alpha, cutmix_alpha) if use_cutmix else rng.beta(mixup_alpha, mixup_alpha))
    if use_cutmix:
        h, w = x.shape[-2:]
        ratio = np.sqrt(1.0 - lam)
        ch, cw = int(h * ratio), int(w * ratio)
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        y0, y1 = max(cy - ch // 2, 0), min(cy + (ch + 1) // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + (cw + 1) // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x.flip(0)[..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
    else:
        x = x * lam + x.flip(0) * (1.0 - lam)
    return x, y * lam + y.flip(0) * (1.0 - lam)


def mix_within_domains(
    images: torch.Tensor,
    labels: torch.Tensor,
    n_real: int,
    num_classes: int,
    smoothing: float,
    mixup_alpha: float,
    cutmix_alpha: float,
    rng: np.random.Generator,
    syn_smoothing: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix the real block ``[:n_real]`` and the synthetic block ``[n_real:]`` separately; returns soft targets
    (smoothed by ``smoothing``, or the synthetic block by ``syn_smoothing`` when given)."""
    y = soft_targets(labels, num_classes, smoothing)
    if syn_smoothing is not None:
        y[n_real:] = soft_targets(labels[n_real:], num_classes, syn_smoothing)
    parts = [(images[:n_real], y[:n_real]), (images[n_real:], y[n_real:])]
    mixed = [mix_block(xb, yb, mixup_alpha, cutmix_alpha, rng) for xb, yb in parts]
    return torch.cat([m[0] for m in mixed]), torch.cat([m[1] for m in mixed])
