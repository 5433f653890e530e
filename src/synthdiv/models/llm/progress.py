"""LLM batches on a :class:`~synthdiv.utils.progress.Progress` display: requests, tokens, and "generating" while a
round is in flight, so a long batch reads as work, not as "no progress"."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from synthdiv.models.llm.base import observe_llm
from synthdiv.utils.progress import Progress

__all__ = ["LLMProgress", "llm_progress"]


class LLMProgress:
    """LLM work in flight on a :class:`Progress` task, as an :class:`~synthdiv.models.llm.base.LLMObserver`.

    The task's count is the conversations finished (one per class); its counters are the requests answered of
    those sent so far and the tokens generated (where the backend reports them: the transformers backend does, at
    every step); while a round is in flight the task is busy ("generating"), so a long batch reads as work, not as
    "no progress". Pass it to :func:`synthdiv.models.llm.structured.ask_list_many` (``progress=``) or
    :func:`synthdiv.models.llm.base.run_together`, or use :func:`llm_progress` around code that calls them.

    Args:
        progress: The display.
        task: Its task for this work (``total``: the number of conversations).
    """

    def __init__(self, progress: Progress, task: int) -> None:
        self.progress, self.task = progress, task
        self._sent = self._answered = self._round_start = 0
        self._lock = threading.Lock()

    def sent(self, requests: int) -> None:
        with self._lock:
            self._round_start, self._sent = self._answered, self._sent + requests
            answered, sent = self._answered, self._sent
        self.progress.count(self.task, "requests", completed=answered, total=sent)
        self.progress.busy(self.task, "generating")

    def generated(self, tokens: int = 0, sequences: int = 0) -> None:
        if tokens:
            self.progress.count(self.task, "tokens", tokens)
        if sequences:
            with self._lock:
                self._answered = min(self._sent, self._answered + sequences)
                answered = self._answered
            self.progress.count(self.task, "requests", completed=answered)

    def answered(self, requests: int) -> None:
        with self._lock:
            self._answered = self._round_start + requests  # exact, whatever the backend reported on the way
            answered = self._answered
        self.progress.count(self.task, "requests", completed=answered)
        self.progress.busy(self.task, None)

    def finished(self, conversations: int) -> None:
        self.progress.advance(self.task, conversations)


@contextlib.contextmanager
def llm_progress(description: str, total: int | None = None, progress: Progress | None = None,
                 ) -> Iterator[LLMProgress]:
    """Within the block, LLM work (:func:`synthdiv.models.llm.base.run_together`, and so ``ask_list_many`` and
    ``gather_many``) shows on a task of ``progress`` (default: a transient :class:`Progress` of its own) through an
    :class:`LLMProgress`; ``total`` is the number of conversations (classes) asked."""
    with contextlib.ExitStack() as stack:
        if progress is None:
            progress = stack.enter_context(Progress(transient=True))
        observer = LLMProgress(progress, progress.add_task(description, total=total))
        with observe_llm(observer):
            yield observer
