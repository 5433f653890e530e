"""Sample grids for the report: per class and prompt kind, images at a legible size with the class name and the
prompt under each one.

Images are read straight from the shards by their manifest byte range, decoded under the decoder policy
(:mod:`synthdiv.utils.decode`; a damaged one is left out of its grid with a warning), shrunk to ``report.thumb_size``
and inlined as JPEG data URIs. Only ``report.grid_classes`` classes get a grid (those that gained and lost most
first, then a seeded sample), so the page stays small at 1,000 classes.
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.stages.generate.reader import image_bytes, read_manifest
from synthdiv.stages.prompts.reader import read_prompts
from synthdiv.stages.report.collect import artifact, class_names, data_uri
from synthdiv.stages.report.quality import kind_order
from synthdiv.stages.score.reader import read_scores
from synthdiv.utils.decode import UnreadableImage, decode_image

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

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


def _thumb(data: bytes, size: int, name: str) -> tuple[str, int, int] | None:
    """The image as a JPEG data URI of at most ``size`` pixels a side, with its shown size; None (and a warning)
    when it cannot be decoded."""
    try:
        img = decode_image(data, name=name)
    except UnreadableImage as exc:
        logger.warning("report: %s; left out of the sample grid (run `synthdiv verify`)", exc)
        return None
    with img:
        w, h = img.size
        if max(w, h) > size:
            img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=82)
    scale = size / max(w, h)  # small images are enlarged by the browser, pixelated
    return data_uri(buf.getvalue(), "image/jpeg"), round(w * scale), round(h * scale)


def _read(run: RunDir, rows: list[dict[str, Any]]) -> dict[str, bytes]:
    """Encoded bytes of each row's image, by its byte range (:func:`synthdiv.stages.generate.reader.image_bytes`)."""
    import pyarrow as pa


    if not rows:
        return {}
    table = pa.Table.from_pylist(rows)
    with artifact(run.shards, "generate"):
        return dict(zip(table.column("image_id").to_pylist(), image_bytes(run, table), strict=True))


def _scores(run: RunDir, ids: list[str]) -> dict[str, dict[str, float]]:
    """The CLIP scores of the images ``ids`` (only theirs: a grid shows a few of millions)."""
    if not run.scores.exists():
        return {}
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq


    with artifact(run.scores, "score"):
        names = pq.read_schema(run.scores).names  # "prob" is missing from scores written before it existed
        table = read_scores(run, ["image_id", *(c for c in ("similarity", "prob") if c in names)])
        table = table.filter(pc.is_in(table.column("image_id"), value_set=pa.array(ids, pa.string())))
        rows = table.to_pylist()
        if not all(isinstance(r.get(k), float | None) for r in rows for k in ("similarity", "prob")):
            raise ValueError("a score is not a number")
        return {r["image_id"]: r for r in rows}


def _pick(manifest: Any, labels: np.ndarray, chosen: list[int], prompts: dict[str, Any], per_class: int
          ) -> dict[int, list[dict[str, Any]]]:
    """Up to ``per_class`` manifest rows of each chosen class, round-robin over its prompt kinds."""
    cols = [c for c in ("image_id", "class", "prompt_id", "shard", "offset", "size", "ext") if c in
            manifest.column_names]
    picked: dict[int, list[dict[str, Any]]] = {}
    for cls in chosen:
        rows = manifest.filter(labels == cls).select(cols).to_pylist()
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_kind[str((prompts.get(r["prompt_id"]) or {}).get("kind") or "unknown")].append(r)
        kinds = kind_order(by_kind)
        take: list[dict[str, Any]] = []
        for i in range(per_class):  # round-robin over the kinds: every kind shows, then more of each
            group = by_kind[kinds[i % len(kinds)]]
            if i // len(kinds) < len(group):
                take.append(group[i // len(kinds)])
        picked[cls] = take
    return picked


def sample_grids(cfg: RunConfig, run: RunDir, first: list[str]) -> dict[str, Any]:
    """``{"classes": [{name, index, kinds: [{kind, images: [{src, w, h, prompt, title, score}]}]}], "note"}``."""
    per_class = cfg.report.samples_per_class
    if per_class == 0 or cfg.report.grid_classes == 0 or not run.manifest.exists():
        return {"classes": [], "note": ""}

    with artifact(run.manifest, "generate"):
        manifest = read_manifest(run)
        labels = manifest.column("class").to_numpy()
    if manifest.num_rows == 0:
        return {"classes": [], "note": ""}
    classes = class_names(run)
    prompts = {}
    if run.prompts.exists():
        with artifact(run.prompts, "prompts"):
            prompts = {r["prompt_id"]: r for r in read_prompts(run, ["prompt_id", "kind", "text"]).to_pylist()}
    present = sorted(int(c) for c in np.unique(labels))
    by_name = {n: i for i, n in classes.items()}
    chosen = pick_classes([by_name[n] for n in first if n in by_name], present, cfg.report.grid_classes, cfg.seed)
    with artifact(run.manifest, "generate"):
        picked = _pick(manifest, labels, chosen, prompts, per_class)
    blobs = _read(run, [r for rows in picked.values() for r in rows])
    scores = _scores(run, [r["image_id"] for rows in picked.values() for r in rows])
    out = []
    for cls, rows in picked.items():
        name = classes.get(cls, str(cls))
        kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            prompt = prompts.get(r["prompt_id"]) or {}
            kind, text = str(prompt.get("kind") or "unknown"), str(prompt.get("text") or "")
            thumb = _thumb(blobs[r["image_id"]], cfg.report.thumb_size, f"shard {r['shard']}: {r['image_id']}")
            if thumb is None:
                continue
            src, w, h = thumb
            s = scores.get(r["image_id"]) or {}
            score = " · ".join(f"{k} {s[k]:.2f}" for k in ("similarity", "prob") if s.get(k) is not None)
            kinds[kind].append({"src": src, "w": w, "h": h, "title": text, "score": score,
                                "prompt": text if len(text) <= _PROMPT_CHARS else text[: _PROMPT_CHARS - 1] + "…"})
        out.append({"name": name, "index": cls, "kinds": [{"kind": k, "images": v} for k, v in kinds.items()]})
    note = f"{len(chosen)} of {len(present)} classes"
    if first:
        note += ": those that gained and lost most first, then a seeded sample"
    return {"classes": out, "note": note}
