"""The ``openai`` LLM backend: any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp, OpenAI).

Requests go over httpx to ``<base_url>/chat/completions``. The API key is read from the environment variable named
by ``api_key_env`` and only ever put in the Authorization header: it is never logged, never part of a cache key,
never written to the run directory, and needed only once a request is really sent (a cached rerun needs none).
Transient failures (connection errors, timeouts, HTTP 429 and 5xx) are retried with exponential backoff
(``Retry-After`` honoured) up to ``max_retries``; then, or at once for any other HTTP error,
:class:`LLMServerError` says in one line which URL failed and how. At most ``concurrency`` requests are in flight
per backend; the ``n`` samples of a request are sent as ``n`` requests with seeds ``seed + i`` (servers such as
llama.cpp ignore ``n``), in parallel; :meth:`OpenAILLM.complete_many` sends a stage's independent requests (one per
class) the same way, ``concurrency`` at a time.

Structured output: a request with a ``json_schema`` carries it as ``response_format`` (``schema_format``:
``json_schema`` for OpenAI, vLLM and llama.cpp's server; ``json_object`` with the schema inside for
llama-cpp-python's). A server that refuses it (HTTP 400, 415, 422 or 501, or another 5xx naming
``response_format``: llama-cpp-python's answer to a field it does not validate) is asked once more, at once,
without ``response_format``; when that answer comes, the backend remembers the refusal: from then on it decodes
freely and ``supports_json_schema`` is False (one warning says so), so the cache stores these answers as free ones.
A request refused again without the schema raises the server's refusal as usual.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from synthdiv.errors import ConfigError, SynthdivError
from synthdiv.models.llm.base import Message, Request, report_generated

if TYPE_CHECKING:
    import httpx

    from synthdiv.config.models import LLMSpec

logger = logging.getLogger(__name__)

__all__ = ["OpenAILLM", "OpenAIOptions", "LLMServerError"]

_RETRY_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
_SCHEMA_REFUSED = frozenset({400, 415, 422, 501})  # how servers refuse a request field they do not take


class LLMServerError(SynthdivError):
    """The LLM server could not be reached, kept failing, or refused a request; names the URL."""


class _SchemaRefused(LLMServerError):
    """The server refused a request that had a ``response_format`` (perhaps because of it)."""


class OpenAIOptions(BaseModel):
    """``models.llm.options`` of the openai backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field("http://127.0.0.1:8000/v1", description="server root, up to and including /v1")
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key")
    timeout_s: float = Field(120.0, gt=0, description="seconds to wait for one answer")
    connect_timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(4, ge=0, description="retries of a request on 429 / 5xx / connection errors")
    backoff_s: float = Field(1.0, ge=0, description="first retry delay; doubles on every retry")
    max_backoff_s: float = Field(30.0, ge=0)
    concurrency: int = Field(4, ge=1, description="requests in flight at once")
    schema_format: Literal["json_schema", "json_object", "none"] = Field(
        "json_schema",
        description="how a JSON schema is sent: OpenAI/vLLM/llama.cpp json_schema, llama-cpp-python json_object, "
        "or none (no constrained decoding); a server that refuses it is asked again without it",
    )
    native_n: bool = Field(False, description="send n in one request (only for servers that honour n)")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra request fields (e.g. top_p)")


class OpenAILLM:
    """A chat model behind an OpenAI-compatible HTTP API.

    Args:
        spec: The ``models.llm`` section; ``spec.model`` is the model name sent to the server.
        options: Validated :class:`OpenAIOptions`.
    """

    Options = OpenAIOptions

    def __init__(self, spec: LLMSpec, options: OpenAIOptions | None = None) -> None:
        self.spec = spec
        self.options = options or OpenAIOptions()
        self.url = self.options.base_url.rstrip("/") + "/chat/completions"
        self.model_id = f"openai:{spec.model}"
        self._schema_refused = False
        env = self.options.api_key_env
        self.__key = os.environ.get(env) if env else None  # checked at the first request: a cached rerun needs none
        self._slots = threading.BoundedSemaphore(self.options.concurrency)
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAILLM({self.model_id!r}, url={self.url!r})"

    @property
    def supports_json_schema(self) -> bool:
        """Whether a request's ``json_schema`` is sent: ``schema_format`` is not none and the server took it."""
        return self.options.schema_format != "none" and not self._schema_refused

    def complete(
        self,
        messages: list[Message],
        n: int = 1,
        temperature: float = 0.7,
        seed: int = 0,
        max_tokens: int = 256,
        json_schema: dict[str, Any] | None = None,
    ) -> list[str]:
        """Return ``n`` completions; raises :class:`LLMServerError` when the server keeps failing."""
        body = {
            **self.options.extra_body,
            "model": self.spec.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "temperature": float(temperature),
            "max_tokens": max_tokens,
        }
        if json_schema is not None and self.supports_json_schema:
            body["response_format"] = _response_format(json_schema, self.options.schema_format)
        if self.options.native_n:
            return self._send({**body, "n": n, "seed": seed}, expect=n)
        if n == 1:
            return self._send({**body, "seed": seed}, expect=1)
        workers = min(n, self.options.concurrency)
        with ThreadPoolExecutor(workers, thread_name_prefix="synthdiv-llm") as pool:
            # each call in a copy of this context, so the tokens it reports reach the observer of the round
            parts = list(pool.map(lambda i, ctx: ctx.run(self._send, {**body, "seed": seed + i}, 1), range(n),
                                  [contextvars.copy_context() for _ in range(n)]))
        return [p[0] for p in parts]

    def complete_many(self, requests: Sequence[Request]) -> list[list[str]]:
        """The answers of ``requests`` in order, at most ``concurrency`` requests in flight; on a failure the
        requests not yet sent are dropped and the error raised."""
        if len(requests) <= 1 or self.options.concurrency == 1:
            return [r.send(self) for r in requests]
        pool = ThreadPoolExecutor(min(len(requests), self.options.concurrency), thread_name_prefix="synthdiv-llm")
        try:
            futures = [pool.submit(contextvars.copy_context().run, r.send, self) for r in requests]
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Close the HTTP connection pool (it is reopened on the next request)."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _http(self) -> httpx.Client:
        import httpx

        with self._client_lock:
            if self._client is None:
                if self.options.api_key_env and not self.__key:
                    raise ConfigError(
                        f"models.llm.options.api_key_env: the environment variable {self.options.api_key_env} "
                        "is not set or empty"
                    )
                headers = {"Authorization": f"Bearer {self.__key}"} if self.__key else {}
                self._client = httpx.Client(
                    headers=headers,
                    timeout=httpx.Timeout(self.options.timeout_s, connect=self.options.connect_timeout_s),
                    limits=httpx.Limits(max_connections=self.options.concurrency),
                )
            return self._client

    def _send(self, body: dict[str, Any], expect: int) -> list[str]:
        """:meth:`_post`; a ``response_format`` the server refuses is dropped, the request sent once more, and the
        refusal remembered once that answer came."""
        if "response_format" not in body:
            return self._post(body, expect)
        try:
            return self._post(body, expect)
        except _SchemaRefused as exc:
            refusal = str(exc)
        texts = self._post({k: v for k, v in body.items() if k != "response_format"}, expect)
        with self._client_lock:
            first, self._schema_refused = not self._schema_refused, True
        if first:
            logger.warning("%s; it answered without response_format, so %s decodes freely from now on "
                           "(models.llm.options.schema_format)", refusal, self.model_id)
        return texts

    def _post(self, body: dict[str, Any], expect: int) -> list[str]:
        import httpx

        tries = self.options.max_retries + 1
        for attempt in range(tries):
            retry_after: float | None = None
            try:
                with self._slots:
                    resp = self._http().post(self.url, json=body)
            except httpx.TimeoutException as exc:
                problem = (
                    f"LLM server at {self.url} did not answer within {self.options.timeout_s:g}s "
                    f"({type(exc).__name__}) after {attempt + 1} tries (models.llm.options.timeout_s)"
                )
            except httpx.TransportError as exc:
                problem = (
                    f"cannot reach the LLM server at {self.url} after {attempt + 1} tries ({type(exc).__name__}: "
                    f"{_first_line(exc)}); is it running? (models.llm.options.base_url)"
                )
            else:
                if resp.status_code < 300:
                    return self._parse(resp, expect)
                if "response_format" in body and _refuses_schema(resp):
                    raise _SchemaRefused(self._refusal(resp)) from None
                problem = (
                    f"LLM server at {self.url} answered HTTP {resp.status_code} after {attempt + 1} tries: "
                    f"{self._excerpt(resp)}"
                )
                if resp.status_code not in _RETRY_STATUS:
                    raise LLMServerError(self._refusal(resp)) from None
                retry_after = _retry_after(resp)
            if attempt + 1 < tries:
                delay = min(self.options.max_backoff_s, self.options.backoff_s * 2**attempt)
                if retry_after is not None:
                    delay = min(self.options.max_backoff_s, max(delay, retry_after))
                logger.warning("%s; retrying in %.1fs", problem.split(" after ")[0], delay)
                time.sleep(delay)
        raise LLMServerError(problem)

    def _parse(self, resp: httpx.Response, expect: int) -> list[str]:
        try:
            answer = resp.json()
            texts = [c["message"]["content"] or "" for c in answer["choices"]]
        except (ValueError, KeyError, TypeError, IndexError):
            raise LLMServerError(
                f"LLM server at {self.url} answered something that is not a chat completion: {self._excerpt(resp)}"
            ) from None
        if len(texts) < expect:
            raise LLMServerError(
                f"LLM server at {self.url} returned {len(texts)} choices for n={expect}; set "
                "models.llm.options.native_n: false"
            )
        usage = answer.get("usage") if isinstance(answer, dict) else None
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if isinstance(tokens, int) and tokens > 0:  # the OpenAI API's count, where the server gives one
            report_generated(tokens=tokens)
        return texts[:expect]

    def _refusal(self, resp: httpx.Response) -> str:
        hint = ""
        if resp.status_code in (401, 403):
            hint = f" (check the key in ${self.options.api_key_env})" if self.options.api_key_env else (
                " (set models.llm.options.api_key_env to the name of the variable holding the key)"
            )
        elif resp.status_code == 404:
            hint = f" (check models.llm.options.base_url and models.llm.model {self.spec.model!r})"
        return f"LLM server at {self.url} refused the request with HTTP {resp.status_code}{hint}: {self._excerpt(resp)}"

    def _excerpt(self, resp: httpx.Response) -> str:
        text = " ".join(resp.text.split())[:200]
        return text.replace(self.__key, "***") if self.__key else text


def _response_format(schema: dict[str, Any], fmt: str) -> dict[str, Any]:
    if fmt == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


def _refuses_schema(resp: httpx.Response) -> bool:
    """Whether a failed answer to a request with a ``response_format`` may be a refusal of that field."""
    if resp.status_code in _SCHEMA_REFUSED:
        return True
    return resp.status_code >= 500 and ("response_format" in resp.text or "json_schema" in resp.text)


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return max(0.0, float(resp.headers.get("retry-after", "")))
    except ValueError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"
