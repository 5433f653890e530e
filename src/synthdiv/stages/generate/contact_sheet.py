"""``synthdiv show samples``: a contact sheet PNG of generated images, one row per class."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from synthdiv.core.rundir import RunDir
from synthdiv.errors import InputError
from synthdiv.stages.generate.reader import iter_shard_images, read_manifest
from synthdiv.utils.io import atomic_write_bytes, read_jsonl

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig

logger = logging.getLogger(__name__)

__all__ = ["contact_sheet"]

_CELL = 96
_LABEL = 160


def _classes(run: RunDir) -> list[dict]:
    for path in (run.resolved, run.classes):
        if path.exists():
            return sorted(read_jsonl(path), key=lambda r: r["index"])
    raise InputError(f"{run.classes}: not found; the contact sheet names classes from it")


def _pick(classes: list[dict], class_name: str | None) -> list[dict]:
    if class_name is None:
        return classes
    hits = [c for c in classes if class_name in (c.get("name"), c.get("wnid"), str(c["index"]))]
    if not hits:
        raise InputError(f"--class {class_name!r}: no such class; expected a name, wnid or index from classes.jsonl")
    return hits


def contact_sheet(cfg: RunConfig, class_name: str | None = None, out: Path | str | None = None) -> Path:
    """Write a grid of the first ``report.samples_per_class`` images of each class (or of ``class_name``).

    Returns:
        The PNG's path (default ``<run>/samples/<class or all>.png``).
    """
    from PIL import Image, ImageDraw

    run = RunDir(cfg.run_dir)
    manifest = read_manifest(run)
    if manifest.num_rows == 0:
        raise InputError(f"{run.manifest}: no generated images yet; run `synthdiv generate` first")
    chosen = _pick(_classes(run), class_name)
    per_class = cfg.report.samples_per_class or 8
    labels = manifest.column("class").to_numpy()
    sheet = Image.new("RGB", (_LABEL + per_class * _CELL, len(chosen) * _CELL), "white")
    draw = ImageDraw.Draw(sheet)
    for row, cls in enumerate(chosen):
        draw.text((4, row * _CELL + _CELL // 2 - 6), str(cls.get("description") or cls["name"])[:24], fill="black")
        picked = manifest.filter(labels == cls["index"]).slice(0, per_class)
        col = 0
        for shard in sorted(set(picked.column("shard").to_pylist())):
            sub = picked.filter(picked.column("shard").to_numpy() == shard)
            for img in iter_shard_images(run, sub):
                img.thumbnail((_CELL - 4, _CELL - 4))
                sheet.paste(img, (_LABEL + col * _CELL + 2, row * _CELL + 2))
                col += 1
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", class_name) if class_name else "all"
    path = Path(out) if out is not None else run.root / "samples" / f"{slug}.png"
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    logger.info("wrote %s (%d classes x up to %d images)", path, len(chosen), per_class)
    return path
