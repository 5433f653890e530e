"""The ``evaluate`` stage: every exported variant on every eval set, written to ``eval/<variant>/<set>.json``.

The model evaluated is the exported plain timm model, loaded with ``timm.create_model("local-dir:...")``: what a
user downloads is what was measured, and auxiliary norms cannot take part. ``eval/summary.json`` gathers top-1 /
top-5 of every (variant, set). Next to each result, ``eval/<variant>/<set>.npz`` keeps the predictions themselves
(``labels`` (N,) and ``topk`` (N, k), int32, in the set's image order, the same for every variant): the report
bootstraps its confidence intervals and builds its confusion counts from them.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.names import safe_join
from synthdiv.run import RunDir, atomic_write_bytes, atomic_write_json

if TYPE_CHECKING:
    from synthdiv.config import RunConfig

logger = logging.getLogger(__name__)

__all__ = ["evaluate_run", "evaluate_variant", "headline", "read_result", "read_predictions"]


def evaluate_run(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """Evaluate every trained variant of the run (stage entry point); returns ``{variant: {set: top1}}``."""
    from synthdiv.catalog.reader import read_classes
    from synthdiv.errors import InputError
    from synthdiv.evaluate.sets import build_eval_sets

    classes = read_classes(run.classes)
    sets = build_eval_sets(cfg.evaluate, classes, cfg.seed)
    variants = [v for v in cfg.train.variant_names() if (run.export / v / "config.json").exists()]
    if not variants:
        raise InputError(f"{run.export}: no exported model; run `synthdiv train` to the end first")
    summary: dict[str, Any] = {}
    for name in variants:
        summary[name] = evaluate_variant(cfg, run, name, classes, sets)
    atomic_write_json(run.eval / "summary.json", summary)
    return {v: {s: r["top1"] for s, r in res.items()} for v, res in summary.items()}


def headline(summary: dict[str, Any]) -> str:
    """The stage's summary (``{variant: {set: top1}}``) on one line: ``"top-1 real: test 41.2%, sketch 20.1%; ..."``."""
    parts = []
    for variant, sets in summary.items():
        if isinstance(sets, dict):
            scores = ", ".join(f"{name} {_percent(top1)}" for name, top1 in sets.items())
            parts.append(f"{variant}: {scores or 'no set'}")
    return f"top-1 {'; '.join(parts)}" if parts else ""


def _percent(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "n/a"


def evaluate_variant(cfg: RunConfig, run: RunDir, name: str, classes: list[dict[str, Any]], sets: list[Any]) -> dict:
    """Evaluate one exported variant on ``sets``; writes ``eval/<name>/<set>.json`` and returns top-1/top-5."""
    import timm

    from synthdiv.devices import resolve_device
    from synthdiv.evaluate.metrics import accuracy_report, long_tail_splits, named_confused_pairs
    from synthdiv.evaluate.predict import eval_transform, predict

    ecfg = cfg.evaluate
    if ecfg.torch_threads:
        import torch

        torch.set_num_threads(ecfg.torch_threads)
    model = timm.create_model(f"local-dir:{run.export / name}", pretrained=True)
    transform = eval_transform(model)
    device = resolve_device(ecfg.device, "evaluate.device")
    from synthdiv.train.stage import read_data_info

    info = read_data_info(run, name)
    train_counts = info.get("real_per_class") if info is not None else None
    names = [c["name"] for c in classes]
    out = {}
    for evalset in sets:
        topk, labels, corrupt = predict(model, evalset, transform, ecfg.batch_size, ecfg.num_workers, device)
        report = {"variant": name, "set": evalset.name, **accuracy_report(topk, labels, names), "corrupt": corrupt}
        if evalset.class_mask is not None:
            report["classes_in_subset"] = int(evalset.class_mask.sum())
        hit1 = topk[:, 0] == labels if len(labels) else np.zeros(0, dtype=bool)
        report["confused"] = named_confused_pairs(topk[:, 0], labels, names, 20)
        if train_counts is not None:
            report["long_tail"] = long_tail_splits(hit1, labels, train_counts, ecfg.many_shot, ecfg.few_shot)
        _write_predictions(safe_join(run.eval, name, f"{evalset.name}.npz", what="evaluate set"), topk, labels)
        atomic_write_json(safe_join(run.eval, name, f"{evalset.name}.json", what="evaluate set"), report)
        logger.info("eval %s on %s: top-1 %s over %d images", name, evalset.name, report["top1"], report["images"])
        out[evalset.name] = {"top1": report["top1"], "top5": report["top5"], "images": report["images"]}
    return out


def _write_predictions(path: Any, topk: np.ndarray, labels: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, labels=labels.astype(np.int32), topk=topk.astype(np.int32))
    atomic_write_bytes(path, buf.getvalue())


def read_result(path: Any) -> dict[str, Any] | None:
    """One ``eval/<variant>/<set>.json`` as written by :func:`evaluate_variant`, or None when it is absent,
    unreadable or not a JSON object."""
    from pathlib import Path

    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return report if isinstance(report, dict) else None


def read_predictions(path: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(topk (N, k), labels (N,))`` of one ``eval/<variant>/<set>.npz``, or None when it is absent or unreadable
    (results written before predictions were kept)."""
    try:
        with np.load(path) as data:
            return data["topk"], data["labels"]
    except (OSError, KeyError, ValueError):
        return None
