"""Decoding and transforming one sample: a map-style dataset over one or more :class:`SampleSet`\\ s.

A key is ``(source, index, seed)``: which set, which sample, and the seed of its random augmentation. Seeding each
sample's augmentation from its key makes a batch the same whichever worker builds it, and so makes resume exact.
A sample that cannot be read or decoded under the decoder policy (:mod:`synthdiv.utils.decode`: empty, not an image,
truncated or damaged, over the pixel bound) yields a :class:`Unreadable` record; the collate function drops it and
tallies it per class (``batch["unreadable"]``). Loading in the main process reseeds numpy's global RNG (torch's and
Python's are given back); the training loop does not use it.

Decode as little as needed: when a training transform starts with timm's random resized crop, the crop is drawn
from the JPEG's header (its size) before decoding, and the JPEG is decoded at the smallest DCT scale (1/2, 1/4,
1/8; PIL's draft mode) that still leaves the crop at least as many pixels as the output. Where no scale qualifies
(most crops of an image near the training size) the sample goes through timm's own crop, unchanged.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from synthdiv.data.sources import SampleSet
from synthdiv.utils.decode import SkipTally, decode_image, describe, open_image

if TYPE_CHECKING:
    from synthdiv.config.train import TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["decode_rgb", "ImageDataset", "Unreadable", "collate_blocks", "build_transforms"]


def decode_rgb(data: bytes, max_pixels: int | None = None, name: str | None = None) -> Any:
    """Decode image bytes to an RGB PIL image under the decoder policy (:func:`synthdiv.utils.decode.decode_image`;
    raises its one-line :class:`~synthdiv.utils.decode.UnreadableImage`)."""
    return decode_image(data, max_pixels, name)


class Unreadable(NamedTuple):
    """A sample the dataset skipped: its class, its name and what was wrong."""

    label: int
    name: str
    reason: str


class ImageDataset:
    """Map-style dataset: ``ds[(source, index, seed)] -> (image tensor, label, source, index)``, or an
    :class:`Unreadable`.

    Args:
        sources: The sample sets; ``source`` in a key indexes this list (0 = real, 1 = synthetic for training).
        transform: A callable on a PIL image (timm transforms).
        max_pixels: The decoder policy's pixel bound (None: :data:`~synthdiv.utils.decode.DEFAULT_MAX_PIXELS`; a
            stage passes :func:`~synthdiv.utils.decode.max_pixels_of` its config).
    """

    def __init__(self, sources: Sequence[SampleSet], transform: Callable[[Any], Any],
                 max_pixels: int | None = None) -> None:
        self.sources = list(sources)
        self.transform = transform
        self.max_pixels = max_pixels
        self._crop, self._rest = _split_random_crop(transform)

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[Any, int, int, int] | Unreadable:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[tuple[int, int, int]]) -> list[tuple[Any, int, int, int] | Unreadable]:
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

    def _load(self, key: tuple[int, int, int]) -> tuple[Any, int, int, int] | Unreadable:
        source, index, seed = key
        samples = self.sources[source]
        name = str(samples.keys[index])
        try:
            if self._crop is None:
                img = decode_image(samples.read(index), self.max_pixels, name)
            else:  # the header only, checked: the crop is drawn before decoding
                img = open_image(samples.read(index), self.max_pixels, name)
                self._seed(seed)
                with img:
                    img = self._crop(img)
        except Exception as exc:  # noqa: BLE001 - any unreadable sample is skipped, never fatal
            reason = describe(exc)
            logger.warning("skipping unreadable image %s: %s", name, reason)
            return Unreadable(int(samples.labels[index]), name, reason)
        if self._crop is None:
            self._seed(seed)
            return self.transform(img), int(samples.labels[index]), source, index
        return self._rest(img), int(samples.labels[index]), source, index

    @staticmethod
    def _seed(seed: int) -> None:
        import torch

        if seed >= 0:
            random.seed(seed)
            np.random.seed(seed % (1 << 32))  # numpy's global state is not restored: saving it costs 0.3 ms a sample
            torch.default_generator.manual_seed(seed)  # the CPU generator only: torch.manual_seed costs ~1 ms


class _DraftResizedCrop:
    """timm's ``RandomResizedCropAndInterpolation`` on an opened, not yet decoded image, decoding a JPEG at the
    smallest DCT scale that keeps the crop at or above the output size. It draws the same random numbers in the
    same order as the timm transform; where no reduction qualifies it calls the same torchvision function."""

    def __init__(self, crop: Any) -> None:
        self.crop = crop

    def __call__(self, img: Any) -> Any:
        from torchvision.transforms import functional as F

        crop = self.crop
        i, j, h, w = crop.get_params(img, crop.scale, crop.ratio)  # needs img.size only
        interpolation = random.choice(crop.interpolation) if isinstance(crop.interpolation, (tuple, list)) \
            else crop.interpolation
        out_h, out_w = crop.size
        reduce = 1
        while reduce < 8 and h // (2 * reduce) >= out_h and w // (2 * reduce) >= out_w:
            reduce *= 2
        if reduce > 1 and img.format == "JPEG":
            width, height = img.size
            img.draft("RGB", (-(-width // reduce), -(-height // reduce)))
            fx, fy = width / img.size[0], height / img.size[1]
            if fx > 1 or fy > 1:
                box = (j / fx, i / fy, (j + w) / fx, (i + h) / fy)
                return img.convert("RGB").resize((out_w, out_h), _pil_resample(interpolation), box=box)
        img.load()
        return F.resized_crop(img.convert("RGB"), i, j, h, w, list(crop.size), interpolation)


def _pil_resample(interpolation: Any) -> int:
    from torchvision.transforms.functional import pil_modes_mapping

    return pil_modes_mapping[interpolation]


def _split_random_crop(transform: Any) -> tuple[_DraftResizedCrop | None, Any]:
    """``(draft-aware crop, the rest)`` when ``transform`` is a Compose starting with timm's random resized crop."""
    from torchvision import transforms

    steps = getattr(transform, "transforms", None)
    if not isinstance(transform, transforms.Compose) or not steps:
        return None, transform
    try:
        from timm.data.transforms import RandomResizedCropAndInterpolation
    except ImportError:
        return None, transform
    if type(steps[0]) is not RandomResizedCropAndInterpolation:
        return None, transform
    return _DraftResizedCrop(steps[0]), transforms.Compose(list(steps[1:]))


def collate_blocks(items: Sequence[tuple[Any, int, int, int] | Unreadable | None]) -> dict[str, Any]:
    """Stack a batch, dropping unreadable samples; the real block (source 0) stays first.

    Returns:
        ``{"images", "labels", "domain", "index", "n_real", "corrupt", "unreadable"}``: ``index`` is each sample's
        row in its source (what per-image weights are looked up by); ``n_real`` is the split point;
        ``corrupt`` counts the samples dropped, ``unreadable`` (a :class:`~synthdiv.utils.decode.SkipTally`) counts
        them per class and names the first few.
    """
    import torch

    skipped = SkipTally()
    for it in items:
        if isinstance(it, Unreadable):
            skipped.add(it.label, it.name, it.reason)
    good = [it for it in items if it is not None and not isinstance(it, Unreadable)]
    if not good:
        return {"images": None, "labels": None, "domain": None, "index": None, "n_real": 0, "corrupt": len(items),
                "unreadable": skipped}
    domain = torch.tensor([it[2] for it in good], dtype=torch.long)
    return {
        "images": torch.stack([it[0] for it in good]),
        "labels": torch.tensor([it[1] for it in good], dtype=torch.long),
        "domain": domain,
        "index": torch.tensor([it[3] for it in good], dtype=torch.long),
        "n_real": int((domain == 0).sum()),
        "corrupt": len(items) - len(good),
        "unreadable": skipped,
    }


def build_transforms(
    cfg: TrainConfig, training: bool, mean: Sequence[float], std: Sequence[float]
) -> Callable[[Any], Any]:
    """timm transforms: RandomResizedCrop + flip + RandAugment for training, resize + center crop for eval."""
    from timm.data import create_transform

    if training:
        return create_transform(
            cfg.img_size, is_training=True, auto_augment=cfg.auto_augment, hflip=cfg.hflip, scale=tuple(cfg.scale),
            color_jitter=0.0, mean=tuple(mean), std=tuple(std),
        )
    return create_transform(cfg.img_size, is_training=False, crop_pct=cfg.eval_crop_pct, mean=tuple(mean),
                            std=tuple(std))
