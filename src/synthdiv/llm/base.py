"""The LLM protocol every backend implements, and the message type.

A backend turns chat ``messages`` into ``n`` completions. ``seed`` makes sampling reproducible; ``json_schema``
asks for constrained decoding where the backend supports it (``supports_json_schema``), and is ignored otherwise.

Many independent requests (one per class of a stage) go through :func:`complete_many`: a backend that can serve
them together (batched generation, concurrent HTTP requests) has a ``complete_many(requests)`` method; any other
backend answers them one by one with ``complete``. Answers come back in request order either way.
:func:`run_together` drives many multi-turn conversations (generators that yield a request, are sent its first
answer and return a result) side by side, one :func:`complete_many` call per round.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, TypeVar, runtime_checkable

__all__ = ["Message", "LLM", "Request", "complete_many", "run_together"]

T = TypeVar("T")


class Message(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


@runtime_checkable
class LLM(Protocol):
    """A chat model. ``model_id`` names backend and model (recorded with every output)."""

    model_id: str
    supports_json_schema: bool

    def complete(
        self,
        messages: list[Message],
        n: int = 1,
        temperature: float = 0.7,
        seed: int = 0,
        max_tokens: int = 256,
        json_schema: dict[str, Any] | None = None,
    ) -> list[str]:
        """Return ``n`` completions of ``messages``."""
        ...


@dataclass(frozen=True)
class Request:
    """The arguments of one :meth:`LLM.complete` call."""

    messages: list[Message]
    n: int = 1
    temperature: float = 0.7
    seed: int = 0
    max_tokens: int = 256
    json_schema: dict[str, Any] | None = None

    def send(self, llm: LLM) -> list[str]:
        """``llm.complete`` with these arguments."""
        return llm.complete(self.messages, n=self.n, temperature=self.temperature, seed=self.seed,
                            max_tokens=self.max_tokens, json_schema=self.json_schema)


def complete_many(llm: LLM, requests: Sequence[Request]) -> list[list[str]]:
    """The answers of ``requests``, in order: together where the backend has ``complete_many``, else one by one."""
    requests = list(requests)
    if not requests:
        return []
    batched = getattr(llm, "complete_many", None)
    if batched is not None:
        return [list(a) for a in batched(requests)]
    return [r.send(llm) for r in requests]


def run_together(llm: LLM, runs: Sequence[Generator[Request, str, T]]) -> list[T]:
    """Drive ``runs`` side by side: each round sends every pending request in one :func:`complete_many` call and
    sends each run the first completion of its request; returns each run's result, in order."""
    results: list[Any] = [None] * len(runs)
    pending: dict[int, Request] = {}

    def advance(i: int, text: str | None) -> None:
        try:
            pending[i] = next(runs[i]) if text is None else runs[i].send(text)
        except StopIteration as done:
            results[i] = done.value

    for i in range(len(runs)):
        advance(i, None)
    while pending:
        order = sorted(pending)
        answers = complete_many(llm, [pending[i] for i in order])
        pending = {}
        for i, answer in zip(order, answers, strict=True):
            advance(i, answer[0])
    return results
