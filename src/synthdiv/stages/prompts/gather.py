"""Ask an LLM for a list in several batches until enough distinct, usable items are collected.

A single request gives a small model's few favourite answers; CD needs hundreds of different scenes per class.
:func:`gather_many` asks again with a new seed each time, cleans every item with a caller's ``process``
function (repair or reject), drops exact and CLIP near-duplicates of what it already holds, and stops at ``n``
items or after ``max_requests`` LLM calls (corrective retries included), reporting what it got and why items were
dropped. It runs many such families (one per class) side by side and sends their pending requests together
(:func:`synthdiv.models.llm.base.complete_many`: batched generation, concurrent HTTP requests); each family asks the
same requests with the same seeds as it would alone, so cached answers are shared however families are grouped.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.models.llm.base import run_together
from synthdiv.models.llm.structured import ask_list_steps
from synthdiv.models.llm.templates import render
from synthdiv.stages.prompts.dedup import dedup_embeddings, dedup_text
from synthdiv.stages.prompts.text import text_key

if TYPE_CHECKING:
    from synthdiv.config.prompts import PromptsConfig

logger = logging.getLogger(__name__)

__all__ = ["Gathered", "Processed", "Family", "gather_many", "gather_settings", "batch_seed", "default_max_requests"]

Processed = tuple[str | None, str | None, str | None]  # (usable text, what was fixed, why rejected)

@dataclass
class Gathered:
    """Items collected for one request family (a class's contexts, the style vocabulary).

    Attributes:
        items: Distinct usable items, at most the number asked.
        wanted: The number asked.
        requests: LLM calls made (corrective retries included).
        dropped: Reason -> count of items not kept ("duplicate", "near duplicate", and the processor's reasons).
        fixed: Reason -> count of items kept after a repair ("repaired", "trimmed").
        template_id: The LLM template used.
    """

    items: list[str]
    wanted: int
    requests: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    fixed: Counter[str] = field(default_factory=Counter)
    template_id: str | None = None

    @property
    def shortfall(self) -> int:
        return max(0, self.wanted - len(self.items))


def batch_seed(*parts: Any) -> int:
    """A 31-bit seed from the parts (run seed, class, batch...); ``ask_list`` adds the retry number to it."""
    digest = hashlib.blake2b("\0".join(str(p) for p in parts).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") >> 1


def default_max_requests(wanted: int, batch_size: int) -> int:
    """Twice the LLM calls a perfect model would need, plus one."""
    return 2 * math.ceil(wanted / batch_size) + 1


def gather_settings(cfg: PromptsConfig, scorer: Any | None) -> dict[str, Any]:
    """The :func:`gather_many` keywords that a ``prompts`` config section sets (shared by contexts and styles)."""
    return {
        "batch_size": cfg.batch_size,
        "max_requests": cfg.max_requests,
        "temperature": cfg.temperature,
        "max_retries": cfg.max_retries,
        "scorer": scorer if cfg.clip_dedup else None,
        "threshold": cfg.dedup_threshold,
    }


@dataclass(frozen=True)
class Family:
    """One request family of :func:`gather_many`: its template, variables, how many items, how to process them,
    and the parts of its batch seeds."""

    template: str
    variables: dict[str, Any]
    wanted: int
    process: Callable[[str], Processed]
    seed_parts: tuple[Any, ...]


def gather_many(
    llm: Any,
    families: Sequence[Family],
    *,
    batch_size: int,
    max_requests: int | None,
    temperature: float,
    max_retries: int,
    scorer: Any | None = None,
    threshold: float = 0.95,
    tokens_per_item: int = 24,
) -> list[Gathered]:
    """Collect each family's ``wanted`` distinct items, the families' pending LLM requests sent together round by round.

    Family ``i`` makes exactly the requests (messages, seeds, budgets) it would make alone, in the same order, so
    cached answers are shared however the families are grouped.

    Args:
        llm: An :class:`~synthdiv.models.llm.base.LLM`.
        families: What to collect: a template id for :func:`synthdiv.models.llm.templates.render` (it takes ``k`` and
        the
            family's variables), how many items, ``process(item) -> (text, fix, reason)`` (the usable text and
            what was fixed, or ``(None, None, reason)`` to reject), and the parts of its batch seeds.
        batch_size: Items asked per request.
        max_requests: LLM calls at most per family, corrective retries included (None: :func:`default_max_requests`).
        temperature: Sampling temperature.
        max_retries: Corrective retries inside one request.
        scorer: An :class:`~synthdiv.models.clip.base.ImageTextScorer` for near-duplicate removal, or None.
        threshold: Cosine above which two items are near-duplicates.
        tokens_per_item: LLM tokens allowed per item asked (the answer budget is ``k * tokens_per_item + 24``).
    """
    supports_schema = bool(getattr(llm, "supports_json_schema", False))
    runs = [
        _gather_steps(supports_schema, f, batch_size=batch_size, max_requests=max_requests, temperature=temperature,
                      max_retries=max_retries, scorer=scorer, threshold=threshold, tokens_per_item=tokens_per_item)
        for f in families
    ]
    return run_together(llm, runs)


def _gather_steps(
    supports_schema: bool,
    family: Family,
    *,
    batch_size: int,
    max_requests: int | None,
    temperature: float,
    max_retries: int,
    scorer: Any | None,
    threshold: float,
    tokens_per_item: int,
) -> Generator[Any, str, Gathered]:
    """One family's gathering as a generator: yields requests, is sent their texts, returns the result."""
    wanted, process = family.wanted, family.process
    result = Gathered(items=[], wanted=wanted)
    if wanted <= 0:
        return result
    kept_emb: np.ndarray | None = None
    limit = max_requests or default_max_requests(wanted, batch_size)
    batch = 0
    while len(result.items) < wanted and result.requests < limit:
        k = min(batch_size, max(wanted - len(result.items), 2))
        messages, result.template_id = render(family.template, k=k, **family.variables)
        answer = yield from ask_list_steps(
            supports_schema, messages, n_items=k, max_retries=min(max_retries, limit - result.requests - 1),
            temperature=temperature, seed=batch_seed(*family.seed_parts, batch), max_tokens=k * tokens_per_item + 24,
            validate=lambda item: process(item)[2],
        )
        batch += 1
        result.requests += answer.attempts
        result.dropped.update(reason for _, reason in answer.rejected)
        texts = []
        for item in answer.items:
            text, fix, reason = process(item)
            if text is None:
                result.dropped[reason or "rejected"] += 1
                continue
            if fix:
                result.fixed[fix] += 1
            texts.append(text)
        fresh = [texts[i] for i in dedup_text(texts, (text_key(t) for t in result.items))]
        result.dropped["duplicate"] += len(texts) - len(fresh)
        if scorer is not None and fresh:
            emb = np.asarray(scorer.embed_texts(fresh), dtype=np.float32)
            keep = dedup_embeddings(emb, threshold, kept_emb)
            result.dropped["near duplicate"] += len(fresh) - len(keep)
            fresh = [fresh[i] for i in keep]
            kept_emb = emb[keep] if kept_emb is None else np.concatenate([kept_emb, emb[keep]])
        result.items.extend(fresh[: wanted - len(result.items)])
    result.dropped = Counter({k: v for k, v in result.dropped.items() if v})
    return result
