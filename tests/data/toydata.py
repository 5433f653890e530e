"""A toy run directory for the data / train / evaluate tests: classes.jsonl, real class folders, synthetic
WebDataset shards with their manifest parts (the generate stage's ShardWriter), and a test ImageFolder.

Class ``c`` is a solid colour pattern plus noise, so a tiny model learns it in a few steps; synthetic images are a
brighter rendition of the same pattern, so the two domains have different statistics.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

PALETTE = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30], [30, 200, 200], [200, 30, 200]])


def toy_image(label: int, rng: np.random.Generator, size: int = 16, synthetic: bool = False) -> Image.Image:
    base = PALETTE[label % len(PALETTE)].astype(np.float32)
    img = np.tile(base, (size, size, 1))
    img[: size // 2] *= 0.5 + 0.1 * label
    img += rng.normal(0, 20, img.shape)
    if synthetic:
        img = img * 0.6 + 100
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def write_classes(run_root: Path, real_root: Path | None, num_classes: int) -> list[dict]:
    rows = []
    for c in range(num_classes):
        folder = real_root / f"class{c}" if real_root else None
        n = len(list(folder.glob("*.png"))) if folder and folder.exists() else 0
        rows.append({"index": c, "name": f"class{c}", "wnid": f"n{c:08d}", "definition": None,
                     "real_images": n, "real_dir": str(folder) if n else None})
    run_root.mkdir(parents=True, exist_ok=True)
    (run_root / "classes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def write_folder(root: Path, num_classes: int, per_class: int | list[int], seed: int, size: int = 16) -> Path:
    rng = np.random.default_rng(seed)
    counts = per_class if isinstance(per_class, list) else [per_class] * num_classes
    for c in range(num_classes):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(counts[c]):
            toy_image(c, rng, size).save(root / f"class{c}" / f"{i:04d}.png")
    return root


def write_shards(run_root: Path, num_classes: int, per_class: int, shard_size: int = 10, seed: int = 1,
                 size: int = 16) -> int:
    """Synthetic shards and manifest parts, written by the generate stage's ShardWriter; returns the image count."""
    import pyarrow as pa

    from synthdiv.core.rundir import RunDir
    from synthdiv.stages.generate.shards import MANIFEST_COLUMNS, ShardWriter

    run = RunDir(run_root)
    rng = np.random.default_rng(seed)
    items = [(c, i) for i in range(per_class) for c in range(num_classes)]
    for s in range(0, len(items), shard_size):
        shard = s // shard_size
        writer = ShardWriter(run, shard).open()
        rows = []
        for c, i in items[s : s + shard_size]:
            image_id = f"img{c:02d}x{i:04d}"
            buf = io.BytesIO()
            toy_image(c, rng, size, synthetic=True).save(buf, format="JPEG", quality=90)
            writer.add(image_id, "jpg", buf.getvalue(), {"class": c, "image_id": image_id})
            rows.append({"image_id": image_id, "class": c, "prompt_id": "p", "seed": i, "shard": shard,
                         "retries": 0, "width": size, "height": size, "generator_id": "toy",
                         "tar": run.shard_tar(shard).name, "ext": "jpg", "degenerate": False})
        writer.commit(pa.Table.from_pylist(rows, schema=MANIFEST_COLUMNS))
    return len(items)


def make_toy_run(tmp: Path, num_classes: int = 4, real_per_class: int | list[int] = 12, syn_per_class: int = 8,
                 test_per_class: int = 5, size: int = 16) -> dict[str, Path]:
    """A run dir with classes, real images, synthetic shards + manifest, and a test folder."""
    real = write_folder(tmp / "real", num_classes, real_per_class, seed=0, size=size)
    test = write_folder(tmp / "test", num_classes, test_per_class, seed=99, size=size)
    run_root = tmp / "run"
    write_classes(run_root, real, num_classes)
    if syn_per_class:
        write_shards(run_root, num_classes, syn_per_class, size=size)
    return {"run": run_root, "real": real, "test": test}
