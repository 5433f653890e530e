"""An on-disk cache of LLM responses, keyed by the full request, so a rerun costs no LLM calls.

The key is the sha256 of (backend, model, messages, n, temperature, seed, max_tokens, schema): everything that
decides the answer, and nothing secret (API keys and server URLs are not part of it). The schema in the key is the one
the backend decodes under: a request's ``json_schema`` where the backend constrains (``supports_json_schema``), None
where it decodes freely (it ignores the schema, or an OpenAI-compatible server refused structured output and the
backend fell back), so a free answer is never served for a constrained request, nor the other way round; a free
request's key is what it always was. Each entry is one small JSON file ``<cache_dir>/<key[:2]>/<key>.json``
written atomically, so parallel workers and interrupted runs are safe.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthdiv.models.llm.base import LLM, Message, Request, complete_many
from synthdiv.utils.hashing import canonical_hash
from synthdiv.utils.io import atomic_write_json

logger = logging.getLogger(__name__)

__all__ = ["CacheStats", "CachedLLM", "request_key"]


@dataclass
class CacheStats:
    """Hits and misses since the cache was opened (a miss is one call to the wrapped LLM)."""

    hits: int = 0
    misses: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses}


def request_key(
    backend: str,
    model: str,
    messages: list[Message],
    n: int,
    temperature: float,
    seed: int,
    max_tokens: int,
    json_schema: dict[str, Any] | None,
) -> str:
    """sha256 hex of the canonical JSON of one request."""
    return canonical_hash(
        {
            "backend": backend,
            "model": model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "n": n,
            "temperature": float(temperature),
            "seed": seed,
            "max_tokens": max_tokens,
            "schema": json_schema,
        }
    )


class CachedLLM:
    """Wraps an LLM; answers repeated requests from ``cache_dir``.

    Args:
        llm: The backend to call on a miss.
        cache_dir: Folder of the entries (created on first write).
        backend: Backend name for the key; defaults to the part of ``llm.model_id`` before the first ':'.
        model: Model name for the key; defaults to ``llm.model_id``.
    """

    def __init__(self, llm: LLM, cache_dir: Path | str, backend: str | None = None, model: str | None = None) -> None:
        self.inner = llm
        self.cache_dir = Path(cache_dir)
        self.backend = backend or llm.model_id.split(":", 1)[0]
        self.model = model or llm.model_id
        self.stats = CacheStats()
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def supports_json_schema(self) -> bool:
        return self.inner.supports_json_schema

    def path_for(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def _schema(self, json_schema: dict[str, Any] | None) -> dict[str, Any] | None:
        """The schema the wrapped backend decodes under now: ``json_schema``, or None where it decodes freely."""
        return json_schema if json_schema is not None and self.inner.supports_json_schema else None

    def _key(self, r: Request) -> str:
        return request_key(self.backend, self.model, r.messages, r.n, r.temperature, r.seed, r.max_tokens,
                           self._schema(r.json_schema))

    def complete(
        self,
        messages: list[Message],
        n: int = 1,
        temperature: float = 0.7,
        seed: int = 0,
        max_tokens: int = 256,
        json_schema: dict[str, Any] | None = None,
    ) -> list[str]:
        """Return the cached responses of this exact request, or call the wrapped LLM and store its answer."""
        request = Request(messages, n=n, temperature=temperature, seed=seed, max_tokens=max_tokens,
                          json_schema=json_schema)
        cached = self._read(self.path_for(self._key(request)), n)
        if cached is not None:
            with self._lock:
                self.stats.hits += 1
            return cached
        responses = request.send(self.inner)
        with self._lock:
            self.stats.misses += 1
        # keyed after the call: a backend that fell back to free decoding during it stored a free answer
        atomic_write_json(self.path_for(self._key(request)), {"model_id": self.model_id, "responses": list(responses)})
        return list(responses)

    def complete_many(self, requests: Sequence[Request]) -> list[list[str]]:
        """Answer each request from the cache or, for the misses, from the wrapped LLM in one
        :func:`~synthdiv.models.llm.base.complete_many` call; every entry is keyed and written exactly as by
        :meth:`complete`, so either path answers the other's requests. A backend without a batch path is asked
        one request at a time, each answer cached as it comes, so a failure halfway keeps what was answered."""
        if getattr(self.inner, "complete_many", None) is None:
            return [r.send(self) for r in requests]
        keys = [self._key(r) for r in requests]
        answers: list[list[str] | None] = [self._read(self.path_for(k), r.n) for k, r in zip(keys, requests,
                                                                                           strict=True)]
        first = {k: i for i, k in reversed(list(enumerate(keys)))}  # a request repeated in the batch is sent once
        todo = [i for i, a in enumerate(answers) if a is None and first[keys[i]] == i]
        if todo:
            fresh = complete_many(self.inner, [requests[i] for i in todo])
            for i, responses in zip(todo, fresh, strict=True):  # keyed after the call, as in complete()
                atomic_write_json(self.path_for(self._key(requests[i])),
                                  {"model_id": self.model_id, "responses": list(responses)})
                answers[i] = list(responses)
        answers = [a if a is not None else answers[first[k]] for a, k in zip(answers, keys, strict=True)]
        with self._lock:
            self.stats.hits += len(keys) - len(todo)
            self.stats.misses += len(todo)
        return [list(a) for a in answers if a is not None]

    def _read(self, path: Path, n: int) -> list[str] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable LLM cache entry %s (%s)", path, exc)
            return None
        responses = data.get("responses") if isinstance(data, dict) else None
        if not isinstance(responses, list) or len(responses) != n or not all(isinstance(r, str) for r in responses):
            logger.warning("ignoring malformed LLM cache entry %s", path)
            return None
        return responses
