"""The ``evaluate`` stage: every exported variant on every eval set, written to ``eval/<variant>/<set>.json``.

The model evaluated is the exported plain timm model, loaded with ``timm.create_model("local-dir:...")``: what a
user downloads is what was measured, and auxiliary norms cannot take part. ``eval/summary.json`` gathers top-1 /
top-5 of every (variant, set). Next to each result, ``eval/<variant>/<set>.npz`` keeps the predictions themselves
(``labels`` (N,) and ``topk`` (N, k), int32, in the set's image order, the same for every variant): the report
bootstraps its confidence intervals and builds its confusion counts from them.

The sets are checked before anything is read or written (:func:`synthdiv.data.eval_sets.check_sets`, the words of
``synthdiv check``). Images are decoded under the decoder policy (:mod:`synthdiv.utils.decode`): an unreadable one is
skipped, and each set's result counts its skips per class (``corrupt``, ``unreadable_per_class``) and names the first
few (``unreadable_examples``); the stage summary counts each skipped file once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.core.rundir import RunDir
from synthdiv.data.eval_sets import build_eval_sets, check_sets
from synthdiv.data.predict import eval_transform, predict
from synthdiv.errors import InputError
from synthdiv.metrics.accuracy import accuracy_report, long_tail_splits, named_confused_pairs
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.train.reader import load_export, read_data_info
from synthdiv.utils.decode import SkipTally, max_pixels_of
from synthdiv.utils.devices import resolve_device
from synthdiv.utils.io import atomic_write_bytes, atomic_write_json
from synthdiv.utils.names import safe_join

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig

logger = logging.getLogger(__name__)

__all__ = ["build", "evaluate_run", "evaluate_variant", "headline"]


def build(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """Evaluate every trained variant of the run (stage entry point).

    Returns:
        ``{variant: {set: top1}}``, plus, when images were skipped as unreadable, ``unreadable`` (files skipped,
        each counted once), ``unreadable_per_class`` (by class name) and ``unreadable_examples`` (the first few).
    """
    check_sets(cfg.evaluate)  # before reading anything: a bad folder is check's one line, not a traceback
    classes = read_classes(run.classes)
    sets = build_eval_sets(cfg.evaluate, classes, cfg.seed)
    variants = [v for v in cfg.train.variant_names() if (run.export / v / "config.json").exists()]
    if not variants:
        raise InputError(f"{run.export}: no exported model; run `synthdiv train` to the end first")
    summary: dict[str, Any] = {}
    skipped: dict[str, SkipTally] = {}
    for i, name in enumerate(variants):  # every variant reads the same files: the first one's skips are the count
        summary[name] = evaluate_variant(cfg, run, name, classes, sets, skipped if i == 0 else None)
    atomic_write_json(run.eval / "summary.json", summary)
    files = SkipTally()
    for evalset in {id(s.samples): s for s in sets}.values():  # a shifted copy reads its test set's files
        files.update(skipped.get(evalset.name))
    if files.total:
        logger.warning("evaluate: %s", files.line("eval image(s)", _names(classes)))
    return {**{v: {s: r["top1"] for s, r in res.items()} for v, res in summary.items()},
            **files.summary("unreadable", _names(classes))}


def _names(classes: list[dict[str, Any]]) -> dict[int, str]:
    return {int(c["index"]): str(c["name"]) for c in classes}


def headline(summary: dict[str, Any]) -> str:
    """The stage's summary (``{variant: {set: top1}}``) on one line: ``"top-1 real: test 41.2%, sketch 20.1%; ..."``,
    then the unreadable images skipped, when there were some."""
    parts = []
    for variant, sets in summary.items():
        if isinstance(sets, dict) and not variant.startswith(_UNREADABLE):
            scores = ", ".join(f"{name} {_percent(top1)}" for name, top1 in sets.items())
            parts.append(f"{variant}: {scores or 'no set'}")
    line = f"top-1 {'; '.join(parts)}" if parts else ""
    if isinstance(summary.get(_UNREADABLE), int) and summary[_UNREADABLE]:
        per_class = summary.get(f"{_UNREADABLE}_per_class") or {}
        counts = ", ".join(f"{c} {n}" for c, n in per_class.items()) if isinstance(per_class, dict) else ""
        examples = summary.get(f"{_UNREADABLE}_examples") or [""]
        skip = f"{summary[_UNREADABLE]} unreadable eval image(s) skipped ({counts}), e.g. {examples[0]}"
        line = f"{line}; {skip}" if line else skip
    return line


_UNREADABLE = "unreadable"  # the summary's keys of skipped images (a variant is never named so: see headline)


def _percent(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "n/a"


def evaluate_variant(cfg: RunConfig, run: RunDir, name: str, classes: list[dict[str, Any]], sets: list[Any],
                     skipped: dict[str, SkipTally] | None = None) -> dict:
    """Evaluate one exported variant on ``sets``; writes ``eval/<name>/<set>.json`` and returns top-1/top-5.

    Args:
        skipped: Filled with each set's unreadable images (by set name) when given.
    """
    ecfg = cfg.evaluate
    if ecfg.torch_threads:
        import torch

        torch.set_num_threads(ecfg.torch_threads)
    model = load_export(run, name)
    transform = eval_transform(model)
    device = resolve_device(ecfg.device, "evaluate.device")

    info = read_data_info(run, name)
    train_counts = info.get("real_per_class") if info is not None else None
    if not (isinstance(train_counts, list) and len(train_counts) == len(classes)
            and all(isinstance(n, int) and not isinstance(n, bool) for n in train_counts)):
        train_counts = None  # an older or damaged data.json: no long-tail splits
    names = [c["name"] for c in classes]
    out = {}
    bound = max_pixels_of(cfg)
    for evalset in sets:
        tally = SkipTally()
        topk, labels, corrupt = predict(model, evalset, transform, ecfg.batch_size, ecfg.num_workers, device,
                                        max_pixels=bound, skipped=tally)
        report = {"variant": name, "set": evalset.name, **accuracy_report(topk, labels, names), "corrupt": corrupt,
                  "unreadable_per_class": {}, "unreadable_examples": []}
        report.update({k: v for k, v in tally.summary("unreadable", _names(classes)).items() if k != "unreadable"})
        if skipped is not None:
            skipped[evalset.name] = tally
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


evaluate_run = build  # the name callers used in synthdiv 0.1


def check(cfg: RunConfig, run: RunDir) -> None:
    """Refuse a test set that is not there or does not match the classes, before the run's lock is taken."""
    check_sets(cfg.evaluate)
