"""A scripted LLM for tests of parsers, retries and failure paths (never a stand-in for a real model's quality).

``FakeLLM().enqueue("...")`` queues replies; each completion pops the next one and records the request in
``calls``. An empty queue raises, so a test sees at once when the code under test calls more often than expected.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["FakeLLM"]


class FakeLLM:
    """Replies with queued texts, in order; records every call.

    Args:
        replies: Initial queue.
        supports_json_schema: The capability flag the code under test sees.
        model_id: Recorded as the model id.
    """

    def __init__(self, *replies: str, supports_json_schema: bool = False, model_id: str = "fake:scripted") -> None:
        self.model_id = model_id
        self.supports_json_schema = supports_json_schema
        self.queue: deque[str] = deque(replies)
        self.calls: list[dict[str, Any]] = []

    def enqueue(self, *texts: str) -> FakeLLM:
        self.queue.extend(texts)
        return self

    def complete(
        self,
        messages: list[dict[str, str]],
        n: int = 1,
        temperature: float = 0.7,
        seed: int = 0,
        max_tokens: int = 256,
        json_schema: dict[str, Any] | None = None,
    ) -> list[str]:
        self.calls.append(
            {"messages": [dict(m) for m in messages], "n": n, "temperature": temperature, "seed": seed,
             "max_tokens": max_tokens, "json_schema": json_schema}
        )
        if len(self.queue) < n:
            raise AssertionError(f"FakeLLM: {n} replies asked, {len(self.queue)} queued (call {len(self.calls)})")
        return [self.queue.popleft() for _ in range(n)]
