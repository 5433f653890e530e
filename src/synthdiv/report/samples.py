"""Sample grids for the report: per class and prompt kind, images at a legible size with the class name and the
prompt under each one.

Images are read straight from the shards by their manifest byte range, shrunk to ``report.thumb_size`` and inlined
as JPEG data URIs. Only ``report.grid_classes`` classes get a grid (those that gained and lost most first, then a
seeded sample), so the page stays small at 1,000 classes.
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.report.quality import kind_order
from synthdiv.run import read_jsonl

if TYPE_CHECKING:
    from synthdiv.config import RunConfig
    from synthdiv.run import RunDir

logger = logging.getLogger(__name__)

__all__ = ["sample_grids", "pick_classes"]

_PROMPT_CHARS = 160


def pick_classes(first: list[int], candidates: list[int], count: int, seed: int) -> list[int]:
    """``first`` (in order, those among ``candidates``), then a seeded sample of the other candidates, ``count`` in
    all; the sample is sorted by class index."""
    allowed = set(candidates)
    chosen = list(dict.fromkeys(c for c in first if c in allowed))[:count]
    rest = [c for c in candidates if c not in set(chosen)]
    extra = max(0, count - len(chosen))
    if extra and rest:
        picked = np.random.default_rng(seed).choice(len(rest), min(extra, len(rest)), replace=False)
        chosen += sorted(rest[i] for i in picked)
    return chosen


def _thumb(data: bytes, size: int) -> tuple[str, int, int]:
    from PIL import Image

    from synthdiv.report.collect import data_uri

    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        w, h = img.size
        if max(w, h) > size:
            img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=82)
    scale = size / max(w, h)  # small images are enlarged by the browser, pixelated
    return data_uri(buf.getvalue(), "image/jpeg"), round(w * scale), round(h * scale)


def _read(run: RunDir, rows: list[dict[str, Any]]) -> dict[str, bytes]:
    """Encoded bytes of each row's image, by its byte range (:func:`synthdiv.generate.shards.image_bytes`)."""
    import pyarrow as pa

    from synthdiv.generate.shards import image_bytes

    if not rows:
        return {}
    table = pa.Table.from_pylist(rows)
    return dict(zip(table.column("image_id").to_pylist(), image_bytes(run, table), strict=True))


def _scores(run: RunDir, ids: list[str]) -> dict[str, dict[str, float]]:
    """The CLIP scores of the images ``ids`` (only theirs: a grid shows a few of millions)."""
    if not run.scores.exists():
        return {}
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from synthdiv.generate.scoring import read_scores

    names = pq.read_schema(run.scores).names  # "prob" is missing from scores written before it existed
    table = read_scores(run, [c for c in ("image_id", "similarity", "prob") if c in names])
    table = table.filter(pc.is_in(table.column("image_id"), value_set=pa.array(ids, pa.string())))
    return {r["image_id"]: r for r in table.to_pylist()}


def sample_grids(cfg: RunConfig, run: RunDir, first: list[str]) -> dict[str, Any]:
    """``{"classes": [{name, index, kinds: [{kind, images: [{src, w, h, prompt, title, score}]}]}], "note"}``."""
    per_class = cfg.report.samples_per_class
    if per_class == 0 or cfg.report.grid_classes == 0 or not run.manifest.exists():
        return {"classes": [], "note": ""}
    from synthdiv.generate.shards import read_manifest

    manifest = read_manifest(run)
    if manifest.num_rows == 0:
        return {"classes": [], "note": ""}
    classes = {r["index"]: r["name"] for r in read_jsonl(run.classes)} if run.classes.exists() else {}
    prompts = {}
    if run.prompts.exists():
        from synthdiv.prompts.artifacts import read_prompts

        prompts = {r["prompt_id"]: r for r in read_prompts(run, ["prompt_id", "kind", "text"]).to_pylist()}
    labels = manifest.column("class").to_numpy()
    present = sorted(int(c) for c in np.unique(labels))
    by_name = {n: i for i, n in classes.items()}
    chosen = pick_classes([by_name[n] for n in first if n in by_name], present, cfg.report.grid_classes, cfg.seed)
    cols = [c for c in ("image_id", "class", "prompt_id", "shard", "offset", "size", "ext") if c in
            manifest.column_names]
    picked: dict[int, list[dict[str, Any]]] = {}
    for cls in chosen:
        rows = manifest.filter(labels == cls).select(cols).to_pylist()
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_kind[(prompts.get(r["prompt_id"]) or {}).get("kind") or "unknown"].append(r)
        kinds = kind_order(by_kind)
        take: list[dict[str, Any]] = []
        for i in range(per_class):  # round-robin over the kinds: every kind shows, then more of each
            group = by_kind[kinds[i % len(kinds)]]
            if i // len(kinds) < len(group):
                take.append(group[i // len(kinds)])
        picked[cls] = take
    blobs = _read(run, [r for rows in picked.values() for r in rows])
    scores = _scores(run, [r["image_id"] for rows in picked.values() for r in rows])
    out = []
    for cls, rows in picked.items():
        name = classes.get(cls, str(cls))
        kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            prompt = prompts.get(r["prompt_id"]) or {}
            kind, text = prompt.get("kind") or "unknown", prompt.get("text") or ""
            src, w, h = _thumb(blobs[r["image_id"]], cfg.report.thumb_size)
            s = scores.get(r["image_id"]) or {}
            score = " · ".join(f"{k} {s[k]:.2f}" for k in ("similarity", "prob") if s.get(k) is not None)
            kinds[kind].append({"src": src, "w": w, "h": h, "title": text, "score": score,
                                "prompt": text if len(text) <= _PROMPT_CHARS else text[: _PROMPT_CHARS - 1] + "…"})
        out.append({"name": name, "index": cls, "kinds": [{"kind": k, "images": v} for k, v in kinds.items()]})
    note = f"{len(chosen)} of {len(present)} classes"
    if first:
        note += ": those that gained and lost most first, then a seeded sample"
    return {"classes": out, "note": note}
