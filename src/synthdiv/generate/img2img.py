"""Image-to-image inputs of the generate stage: reading a plan row's source real image and fitting it to the model.

A plan with image-to-image rows (:mod:`synthdiv.prompts.img2img`) names each row's source relative to its class's
``real_dir`` (``classes.jsonl``). :class:`SourceImages` resolves and opens them, refusing a path that leaves the
class folder or a file that is gone or unreadable, with one line naming the plan row's image, the file and the fix.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdiv.errors import InputError
from synthdiv.names import is_within

if TYPE_CHECKING:
    from PIL import Image

    from synthdiv.run import RunDir

logger = logging.getLogger(__name__)

__all__ = ["SourceImages", "fit_image", "img2img_steps"]


def fit_image(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` in RGB, centre-cropped to the aspect ratio of ``width`` x ``height`` and resized to it."""
    from PIL import ImageOps

    return ImageOps.fit(image.convert("RGB"), (int(width), int(height)), method=3)  # 3: bicubic


def img2img_steps(steps: int, strength: float) -> int:
    """Scheduler steps to ask of an img2img pipeline so that ``steps * strength`` rounds to at least one step.

    diffusers runs ``int(num_inference_steps * strength)`` steps and refuses zero; a 1-step model at strength 0.6
    would otherwise fail. The fewest steps, at least ``steps``, for which the float product ``int(n * strength)``
    diffusers computes is one or more (a strength just below ``1 / k`` needs ``k + 1``).
    """
    strength = max(float(strength), 1e-6)
    n = max(int(steps), math.floor(1.0 / strength) - 1)
    while int(n * strength) < 1:
        n += 1
    return n


class SourceImages:
    """Opens the source real images of img2img plan rows, by class and path relative to the class's ``real_dir``."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._dirs: dict[int, Path | None] | None = None

    def _real_dir(self, cls: int) -> Path | None:
        if self._dirs is None:
            from synthdiv.catalog.reader import read_classes
            from synthdiv.disambiguate.reader import read_resolved

            if not self.run.classes.is_file() and not self.run.resolved.is_file():
                raise InputError(f"{self.run.classes}: not found; img2img rows of the plan need each class's real_dir")
            rows = read_resolved(self.run.resolved) if self.run.resolved.is_file() else read_classes(self.run.classes)
            self._dirs = {int(r["index"]): Path(r["real_dir"]) if r.get("real_dir") else None for r in rows}
        return self._dirs.get(int(cls))

    def open(self, cls: int, source: str, image_id: str) -> Image.Image:
        """The RGB source image of plan row ``image_id``."""
        from synthdiv.data.decode import UnreadableImage, decode_image

        folder = self._real_dir(cls)
        if folder is None:
            raise InputError(f"{self.run.plan}: image {image_id}: class {cls} has no real_dir for its source "
                             f"{source!r}")
        path = folder / source
        if not is_within(path, folder):
            raise InputError(f"{self.run.plan}: image {image_id}: source {source!r} leaves the class folder {folder}")
        if not path.is_file():
            raise InputError(f"{path}: the source real image of plan image {image_id} is gone; restore it or redo "
                             "the plan stage")
        try:  # the one decoder policy for user images (a decompression bomb is refused, not decoded)
            return decode_image(path)
        except UnreadableImage as exc:
            raise InputError(f"{path}: cannot read the source real image of plan image {image_id}: "
                             f"{exc.reason}") from None

    def open_rows(self, classes: list[int], sources: list[str | None], ids: list[str]) -> list[Any]:
        """Per row, its source image or None (text-to-image)."""
        return [None if s is None else self.open(c, s, i) for c, s, i in zip(classes, sources, ids, strict=True)]
