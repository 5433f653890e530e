"""The LLM protocol every backend implements, and the message type.

A backend turns chat ``messages`` into ``n`` completions. ``seed`` makes sampling reproducible; ``json_schema``
asks for constrained decoding where the backend supports it (``supports_json_schema``), and is ignored otherwise.
The flag may turn False during a run (an OpenAI-compatible server that refuses structured output), never True;
the cache keys each request by the decoding the backend does (:mod:`synthdiv.models.llm.cache`).

Many independent requests (one per class of a stage) go through :func:`complete_many`: a backend that can serve
them together (batched generation, concurrent HTTP requests) has a ``complete_many(requests)`` method; any other
backend answers them one by one with ``complete``. Answers come back in request order either way.
:func:`run_together` drives many multi-turn conversations (generators that yield a request, are sent its first
answer and return a result) side by side, one :func:`complete_many` call per round.

Progress of that work goes to an :class:`LLMObserver` (:class:`synthdiv.models.llm.progress.LLMProgress` shows it on a
bar and in the log): passed to :func:`run_together`, or installed for a block with :func:`observe_llm` (for callers
whose
own callees call :func:`run_together`). :func:`run_together` tells it when a round is sent, answered and which
conversations are finished; a backend that generates tokens itself reports them while a round runs, through
:func:`report_generated` or a streamer from :func:`token_counter` (the transformers backend passes one to
``generate``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, TypeVar, runtime_checkable

__all__ = [
    "Message", "LLM", "Request", "LLMObserver", "complete_many", "run_together", "observe_llm", "report_generated",
    "token_counter",
]

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


@runtime_checkable
class LLMObserver(Protocol):
    """What :func:`run_together` and a generating backend report about the work in flight."""

    def sent(self, requests: int) -> None:
        """A round of ``requests`` requests goes to the backend."""

    def generated(self, tokens: int = 0, sequences: int = 0) -> None:
        """While the round runs: the backend generated ``tokens`` more tokens and finished ``sequences`` more
        sequences (reported only by backends that can; the round's end is reported by :meth:`answered`)."""

    def answered(self, requests: int) -> None:
        """The round is over: ``requests`` of its requests were answered (0 when the backend raised)."""

    def finished(self, conversations: int) -> None:
        """``conversations`` more conversations returned their result."""


_OBSERVER: ContextVar[LLMObserver | None] = ContextVar("synthdiv_llm_observer", default=None)


@contextlib.contextmanager
def observe_llm(observer: LLMObserver | None) -> Iterator[None]:
    """Within the block (and this thread), :func:`run_together` calls without their own observer report to
    ``observer``, and so do the backends they call."""
    token = _OBSERVER.set(observer)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


def report_generated(tokens: int = 0, sequences: int = 0) -> None:
    """A backend's report, while it generates, of ``tokens`` more tokens and ``sequences`` more finished
    sequences, to the observer of the round in flight (none: nothing happens)."""
    observer = _OBSERVER.get()
    if observer is not None and (tokens or sequences):
        observer.generated(tokens, sequences)


class _TokenCounter:
    """A ``transformers`` streamer (``generate(streamer=...)``) that counts generated tokens, padding left out, and
    reports them with :func:`report_generated`; its rows count as finished sequences when generation ends."""

    def __init__(self, observer: LLMObserver, pad_token_id: int | None) -> None:
        self.observer, self.pad, self.rows, self.prompt_seen = observer, pad_token_id, 0, False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # generate first hands over the prompts, (rows, length)
            self.prompt_seen = True
            self.rows = int(value.shape[0]) if getattr(value, "ndim", 1) > 1 else 1
            return
        tokens = int((value != self.pad).sum()) if self.pad is not None else int(value.numel())
        if tokens:
            self.observer.generated(tokens, 0)

    def end(self) -> None:
        if self.rows:
            self.observer.generated(0, self.rows)
        self.rows, self.prompt_seen = 0, False


def token_counter(pad_token_id: int | None = None) -> _TokenCounter | None:
    """A streamer for ``transformers``' ``generate`` that reports the tokens it generates to the observer of the
    round in flight, or None when there is no observer (``generate(streamer=None)`` streams nothing)."""
    observer = _OBSERVER.get()
    return None if observer is None else _TokenCounter(observer, pad_token_id)


def complete_many(llm: LLM, requests: Sequence[Request]) -> list[list[str]]:
    """The answers of ``requests``, in order: together where the backend has ``complete_many``, else one by one."""
    requests = list(requests)
    if not requests:
        return []
    batched = getattr(llm, "complete_many", None)
    if batched is not None:
        return [list(a) for a in batched(requests)]
    return [r.send(llm) for r in requests]


def run_together(
    llm: LLM, runs: Sequence[Generator[Request, str, T]], progress: LLMObserver | None = None
) -> list[T]:
    """Drive ``runs`` side by side: each round sends every pending request in one :func:`complete_many` call and
    sends each run the first completion of its request; returns each run's result, in order.

    ``progress`` (default: the observer of :func:`observe_llm`, if any) is told of each round and of the runs that
    finish; the backend reports to it while a round is in flight.
    """
    observer = progress if progress is not None else _OBSERVER.get()
    results: list[Any] = [None] * len(runs)
    pending: dict[int, Request] = {}

    def advance(i: int, text: str | None) -> int:
        try:
            pending[i] = next(runs[i]) if text is None else runs[i].send(text)
        except StopIteration as done:
            results[i] = done.value
            return 1
        return 0

    finished = sum(advance(i, None) for i in range(len(runs)))
    if observer is not None and finished:
        observer.finished(finished)
    while pending:
        order = sorted(pending)
        answers: list[list[str]] | None = None
        if observer is not None:
            observer.sent(len(order))
        try:
            with observe_llm(observer):
                answers = complete_many(llm, [pending[i] for i in order])
        finally:
            if observer is not None:
                observer.answered(len(answers) if answers is not None else 0)
        pending = {}
        finished = sum(advance(i, answer[0]) for i, answer in zip(order, answers, strict=True))
        if observer is not None and finished:
            observer.finished(finished)
    return results
