"""Decoding and transforming one sample: a map-style dataset over one or more :class:`SampleSet`\\ s.

A key is ``(source, index, seed)``: which set, which sample, and the seed of its random augmentation. Seeding each
sample's augmentation from its key makes a batch the same whichever worker builds it, and so makes resume exact.
A sample that cannot be read or decoded yields ``None`` (the collate function drops and counts it). Loading in the
main process reseeds numpy's global RNG (torch's and Python's are given back); the training loop does not use it.
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from synthdiv.data.sources import SampleSet

logger = logging.getLogger(__name__)

__all__ = ["decode_rgb", "ImageDataset", "collate_blocks", "build_transforms"]


def decode_rgb(data: bytes) -> Any:
    """Decode image bytes to an RGB PIL image (grayscale and palette images are converted)."""
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("RGB")


class ImageDataset:
    """Map-style dataset: ``ds[(source, index, seed)] -> (image tensor, label, source)`` or ``None`` if corrupt.

    Args:
        sources: The sample sets; ``source`` in a key indexes this list (0 = real, 1 = synthetic for training).
        transform: A callable on a PIL image (timm transforms).
    """

    def __init__(self, sources: Sequence[SampleSet], transform: Callable[[Any], Any]) -> None:
        self.sources = list(sources)
        self.transform = transform

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[Any, int, int] | None:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[tuple[int, int, int]]) -> list[tuple[Any, int, int] | None]:
        """A batch of samples (the DataLoader's batched fetch).

        In the main process the caller's Python and torch random states are saved before the batch and restored after
        it (once per batch: the round trip costs ~15 µs, a tenth of decoding a small image).
        """
        import torch
        import torch.utils.data

        if torch.utils.data.get_worker_info() is not None:
            return [self._load(k) for k in keys]
        saved = random.getstate(), torch.default_generator.get_state()
        try:
            return [self._load(k) for k in keys]
        finally:
            random.setstate(saved[0])
            torch.default_generator.set_state(saved[1])

    def _load(self, key: tuple[int, int, int]) -> tuple[Any, int, int] | None:
        source, index, seed = key
        samples = self.sources[source]
        try:
            img = decode_rgb(samples.read(index))
        except Exception as exc:  # noqa: BLE001 - any unreadable sample is skipped, never fatal
            logger.warning("skipping unreadable image %s: %s", samples.keys[index], exc)
            return None
        return self._transform(img, seed), int(samples.labels[index]), source

    def _transform(self, img: Any, seed: int) -> Any:
        import torch

        if seed >= 0:
            random.seed(seed)
            np.random.seed(seed % (1 << 32))  # numpy's global state is not restored: saving it costs 0.3 ms a sample
            torch.default_generator.manual_seed(seed)  # the CPU generator only: torch.manual_seed costs ~1 ms
        return self.transform(img)


def collate_blocks(items: Sequence[tuple[Any, int, int] | None]) -> dict[str, Any]:
    """Stack a batch, dropping corrupt samples; the real block (source 0) stays first.

    Returns:
        ``{"images", "labels", "domain", "n_real", "corrupt"}``: ``n_real`` is the split point.
    """
    import torch

    good = [it for it in items if it is not None]
    if not good:
        return {"images": None, "labels": None, "domain": None, "n_real": 0, "corrupt": len(items)}
    domain = torch.tensor([it[2] for it in good], dtype=torch.long)
    return {
        "images": torch.stack([it[0] for it in good]),
        "labels": torch.tensor([it[1] for it in good], dtype=torch.long),
        "domain": domain,
        "n_real": int((domain == 0).sum()),
        "corrupt": len(items) - len(good),
    }


def build_transforms(cfg: Any, training: bool, mean: Sequence[float], std: Sequence[float]) -> Callable[[Any], Any]:
    """timm transforms: RandomResizedCrop + flip + RandAugment for training, resize + center crop for eval."""
    from timm.data import create_transform

    if training:
        return create_transform(
            cfg.img_size, is_training=True, auto_augment=cfg.auto_augment, hflip=cfg.hflip, scale=tuple(cfg.scale),
            color_jitter=0.0, mean=tuple(mean), std=tuple(std),
        )
    return create_transform(cfg.img_size, is_training=False, crop_pct=cfg.eval_crop_pct, mean=tuple(mean),
                            std=tuple(std))
