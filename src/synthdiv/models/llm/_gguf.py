"""A cache of GGUF models converted for transformers, so that a GGUF file is de-quantized once, not every load.

transformers reads a GGUF file by converting its tokenizer and de-quantizing every tensor, which takes about a
minute for SmolLM2-135M on two busy cores; reloading the same weights from safetensors takes about two seconds.
:func:`converted_dir` does the slow load once, saves config, generation config, tokenizer and weights (float32, as
de-quantized) into ``<cache_root>/llm/<stem>-<sha256[:16]>-tf<version>``, and returns that folder. The folder is
built under a temporary name and renamed into place, so a crashed or concurrent build never leaves a half folder.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["converted_dir"]

_DONE = ".synthdiv-complete"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def converted_dir(folder: Path, gguf_file: str, cache_root: Path, trust_remote_code: bool = False) -> Path:
    """The transformers folder of ``folder/gguf_file``, converting it on first use.

    Args:
        folder: Folder holding the GGUF file.
        gguf_file: File name of the GGUF model in ``folder``.
        cache_root: Where converted models are kept.
        trust_remote_code: Passed to transformers.

    Returns:
        A folder that ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained`` load directly.
    """
    import transformers

    src = Path(folder) / gguf_file
    target = cache_root / "llm" / f"{src.stem}-{_digest(src)[:16]}-tf{transformers.__version__}"
    if (target / _DONE).is_file():
        return target
    logger.info("converting %s for transformers (once) into %s", src.name, target)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        _convert(src, tmp, trust_remote_code)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: keep its folder
            if not (target / _DONE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(src: Path, out: Path, trust_remote_code: bool) -> None:
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": src.name, "trust_remote_code": trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(str(src.parent), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(src.parent), **kwargs)
    out.mkdir(parents=True)
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):  # the weights are de-quantized now: load them as plain tensors
        del config.quantization_config
    config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    save_model(model, str(out / "model.safetensors"))
    (out / _DONE).write_text(src.name + "\n", encoding="utf-8")
    for path in out.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
