"""Image-to-image inputs of the generate stage: reading a plan row's source real image.

A plan with image-to-image rows (:mod:`synthdiv.stages.plan.img2img`) names each row's source relative to its class's
``real_dir`` (``classes.jsonl``). :class:`SourceImages` resolves and opens them, refusing a path that leaves the
class folder or a file that is gone or unreadable, with one line naming the plan row's image, the file and the fix.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdiv.errors import InputError
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.disambiguate.reader import read_resolved
from synthdiv.utils.decode import UnreadableImage, decode_image
from synthdiv.utils.names import is_within

if TYPE_CHECKING:
    from PIL import Image

    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["SourceImages"]


class SourceImages:
    """Opens the source real images of img2img plan rows, by class and path relative to the class's ``real_dir``."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._dirs: dict[int, Path | None] | None = None

    def _real_dir(self, cls: int) -> Path | None:
        if self._dirs is None:
            if not self.run.classes.is_file() and not self.run.resolved.is_file():
                raise InputError(f"{self.run.classes}: not found; img2img rows of the plan need each class's real_dir")
            rows = read_resolved(self.run.resolved) if self.run.resolved.is_file() else read_classes(self.run.classes)
            self._dirs = {int(r["index"]): Path(r["real_dir"]) if r.get("real_dir") else None for r in rows}
        return self._dirs.get(int(cls))

    def open(self, cls: int, source: str, image_id: str) -> Image.Image:
        """The RGB source image of plan row ``image_id``."""
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
