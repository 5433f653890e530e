#!/usr/bin/env python
"""Build the Fashion-MNIST smoke subset kept in the repository (``data/fashion-mnist-smoke``).

Reads the IDX files of Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist/*.gz``),
picks a fixed-seed sample of N train and M test images per class (100 and 50 by default), and writes them as PNG
ImageFolders ``train/<class>/`` and ``test/<class>/`` with an ``index.csv`` (split, class, file, source index), a
``README.md`` and the MIT ``LICENSE`` of Fashion-MNIST. The folder is built under a temporary name and renamed
into place, so a reader never sees half of it. Uses numpy and Pillow only.

Usage::

    python scripts/make_smoke_data.py                       # -> data/fashion-mnist-smoke
    python scripts/make_smoke_data.py --train-per-class 20 --test-per-class 10 --out /tmp/fm
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger("make_smoke_data")

__all__ = ["CLASSES", "read_idx", "select", "build", "main"]

SOURCE = Path("/usr/share/datasets/fashion-mnist")
OUT = Path(__file__).resolve().parents[1] / "data" / "fashion-mnist-smoke"
SEED = 0

# Canonical Fashion-MNIST label order (label i is CLASSES[i]), as folder names.
CLASSES = (
    "t-shirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)
SPLITS = {"train": "train", "test": "t10k"}  # our split name -> IDX file prefix

LICENSE = """The MIT License (MIT)

Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

README = """# Fashion-MNIST smoke subset

A small, fixed subset of [Fashion-MNIST](https://github.com/zalandoresearch/fashion-mnist) (Zalando Research):
{train} training and {test} test images per class, 10 classes, 28x28 grayscale PNGs. It is the real-image set of
synthdiv's smoke run (`examples/quickstart.yaml`): small enough to keep in the repository and to train on a CPU
in seconds.

## Layout

- `train/<class>/` and `test/<class>/`: ImageFolders, one folder per class, in the canonical Fashion-MNIST label
  order: {classes}.
- `index.csv`: one row per image: `split`, `class`, `label`, `file`, `source_index` (the image's index in the
  original IDX file of its split, so every image can be traced back).

## How it was made

`python scripts/make_smoke_data.py` (seed {seed}) read the IDX files of Debian's `dataset-fashion-mnist` package
(`/usr/share/datasets/fashion-mnist/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte.gz`, the original release),
drew {train} training images per class from the 60,000-image training split and {test} test images per class from
the 10,000-image test split without replacement (numpy `default_rng([seed, split, label])`), and wrote them
unchanged as PNG files named `<split>-<source index>.png`. Rerunning the script gives byte-identical files.

## Licence

Fashion-MNIST is Copyright (c) 2017 Zalando SE and is released under the MIT licence; the full text is in
`LICENSE` next to this file. This subset is redistributed under the same licence.
"""


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes into an array of its declared shape.

    Raises:
        ValueError: The file is not an IDX file of unsigned bytes, or is shorter than its header says.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (magic {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape))
    if len(data) - header != count:
        raise ValueError(f"{path}: header says {shape} ({count} bytes) but the file holds {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def select(labels: np.ndarray, per_class: int, seed: int, split_id: int) -> dict[int, np.ndarray]:
    """Pick ``per_class`` indices of each label without replacement, sorted; the same inputs give the same picks.

    Raises:
        ValueError: A class has fewer than ``per_class`` images.
    """
    picks = {}
    for label in range(len(CLASSES)):
        pool = np.flatnonzero(labels == label)
        if len(pool) < per_class:
            raise ValueError(f"class {CLASSES[label]} has {len(pool)} images, fewer than the {per_class} asked for")
        rng = np.random.default_rng([seed, split_id, label])
        picks[label] = np.sort(rng.choice(pool, size=per_class, replace=False))
    return picks


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def build(source: Path, out: Path, train_per_class: int, test_per_class: int, seed: int = SEED) -> int:
    """Write the subset to ``out`` (replacing it) and return the number of images written."""
    counts = {"train": train_per_class, "test": test_per_class}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    rows = []
    try:
        for split_id, (split, prefix) in enumerate(SPLITS.items()):
            images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
            labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")
            if len(images) != len(labels):
                raise ValueError(f"{source}: {len(images)} {split} images but {len(labels)} labels")
            for label, indices in select(labels, counts[split], seed, split_id).items():
                folder = tmp / split / CLASSES[label]
                folder.mkdir(parents=True)
                for index in indices:
                    name = f"{split}-{int(index):05d}.png"
                    (folder / name).write_bytes(_png(images[index]))
                    rows.append((split, CLASSES[label], label, f"{split}/{CLASSES[label]}/{name}", int(index)))
            logger.info("%s: %d images per class", split, counts[split])
        with open(tmp / "index.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["split", "class", "label", "file", "source_index"])
            writer.writerows(rows)
        (tmp / "LICENSE").write_text(LICENSE, encoding="utf-8")
        readme = README.format(
            train=train_per_class, test=test_per_class, seed=seed, classes=", ".join(f"`{c}`" for c in CLASSES)
        )
        (tmp / "README.md").write_text(readme, encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="folder of the Fashion-MNIST IDX .gz files")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (replaced)")
    parser.add_argument("--train-per-class", type=int, default=100)
    parser.add_argument("--test-per-class", type=int, default=50)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    missing = [p for p in SPLITS.values() if not (args.source / f"{p}-images-idx3-ubyte.gz").is_file()]
    if missing:
        parser.exit(2, f"{args.source}: no Fashion-MNIST IDX files; install Debian's dataset-fashion-mnist\n")
    try:
        n = build(args.source, args.out, args.train_per_class, args.test_per_class, args.seed)
    except ValueError as exc:
        parser.exit(2, f"{exc}\n")
    logger.info("wrote %d images to %s", n, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
