"""The real images of a run, published only when asked (``publish --include-real``): one WebDataset tar per class,
``real/class-NNNN.tar``, each image as ``<key>.<ext>`` (its bytes as they are) and ``<key>.cls``. Real images are
someone's data: they stay out of a published folder unless the user states they may go with it."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

from synthdiv.publish.layout import PublishedDir
from synthdiv.stages.classes.reader import class_real_files

__all__ = ["write_real"]


def write_real(out: PublishedDir, classes: list[dict[str, Any]], extensions: list[str]) -> int:
    """Write the real images of every class into ``out``; returns how many were written."""
    out.real.mkdir(parents=True, exist_ok=True)
    total = 0
    for row in classes:
        files = class_real_files(row.get("real_dir"), extensions)
        if not files:
            continue
        with tarfile.open(out.real_tar(row["index"]), mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for i, name in enumerate(files):
                key = f"real-{int(row['index']):04d}-{i:06d}"
                data = (Path(row["real_dir"]) / name).read_bytes()
                for member, payload in ((f"{key}{Path(name).suffix.lower()}", data),
                                        (f"{key}.cls", str(row["index"]).encode())):
                    info = tarfile.TarInfo(member)
                    info.size, info.mtime, info.mode, info.uid, info.gid = len(payload), 0, 0o644, 0, 0
                    tar.addfile(info, io.BytesIO(payload))
                total += 1
    return total
