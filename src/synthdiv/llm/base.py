"""The LLM protocol every backend implements, and the message type.

A backend turns chat ``messages`` into ``n`` completions. ``seed`` makes sampling reproducible; ``json_schema``
asks for constrained decoding where the backend supports it (``supports_json_schema``), and is ignored otherwise.
"""

from __future__ import annotations

from typing import Any, Protocol, TypedDict, runtime_checkable

__all__ = ["Message", "LLM"]


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
