"""Evaluation: in-domain, shifted and out-of-domain sets, top-1 / top-5, per-class and long-tail accuracy.

``evaluate_run`` is the stage hook. Importing this package does not import torch.
"""

from synthdiv.evaluate.metrics import accuracy_report, long_tail_splits
from synthdiv.evaluate.sets import EvalSet, build_eval_sets, folder_set, shift_transform, subset_classes
from synthdiv.evaluate.stage import evaluate_run, evaluate_variant

__all__ = [
    "evaluate_run",
    "evaluate_variant",
    "accuracy_report",
    "long_tail_splits",
    "EvalSet",
    "build_eval_sets",
    "folder_set",
    "shift_transform",
    "subset_classes",
]
