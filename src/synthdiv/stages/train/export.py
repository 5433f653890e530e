"""Export a trained model as a plain timm model in Hugging Face layout: ``config.json`` + ``model.safetensors``.

The auxiliary norms are stripped first, so ``timm.create_model("local-dir:<folder>", pretrained=True)`` builds the
stock architecture and loads the weights, with no synthdiv code, and the folder can be pushed to a hub as it is.
It also loads through transformers' timm wrapper (``AutoModelForImageClassification.from_pretrained(folder)``),
which passes ``num_classes`` itself: the ``model_args`` timm records from ``create_model`` must not repeat it.
The folder is written next to its final place and renamed into it, so a reader never sees half an export.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthdiv.stages.train.auxnorm import strip_aux_norm

logger = logging.getLogger(__name__)

__all__ = ["export_model"]


def export_model(
    model: nn.Module,
    folder: Path,
    label_names: Sequence[str] | None = None,
    data_config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (aux norms stripped, eval weights) to ``folder`` in timm's ``save_for_hf`` layout.

    Args:
        model: The trained timm model, possibly with :class:`~synthdiv.stages.train.auxnorm.AuxNorm` layers.
        folder: The export folder (replaced if it exists).
        label_names: Class names, in label order, recorded in ``config.json``.
        data_config: Preprocessing (``input_size``, ``crop_pct``, ``mean``, ``std``...) recorded for inference.
        extra: More keys for ``config.json`` (e.g. the synthdiv variant and run).
    """
    from timm.models import save_for_hf

    plain = strip_aux_norm(model).cpu().eval().to(memory_format=torch.contiguous_format)  # safetensors: contiguous
    model_config: dict[str, Any] = dict(extra or {})
    if label_names:
        model_config["label_names"] = list(label_names)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        save_for_hf(plain, str(tmp), model_config=model_config, safe_serialization=True, data_config=data_config)
        _drop_repeated_num_classes(tmp / "config.json")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    logger.info("exported %s to %s", type(plain).__name__, folder)
    return folder


def _drop_repeated_num_classes(path: Path) -> None:
    """Remove ``model_args.num_classes``: the root ``num_classes`` already says it, and transformers' wrapper calls
    ``timm.create_model(..., num_classes=num_labels, **model_args)`` ("got multiple values for 'num_classes'")."""
    config = json.loads(path.read_text(encoding="utf-8"))
    args = config.get("model_args")
    if isinstance(args, dict) and "num_classes" in args:
        del args["num_classes"]
        if not args:
            del config["model_args"]
        path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")  # in the temporary folder
