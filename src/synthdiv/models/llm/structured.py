"""Structured output from chat models: a tolerant list parser and ``ask_list`` with corrective retries.

Every LLM step of the method (label disambiguation, contexts, styles) asks for a JSON list of short strings. Large
models answer with exactly that, small ones (the embedded SmolLM2-135M) wrap it in code fences, number the lines,
leave trailing commas, return objects instead of strings or stop half-way through. :func:`parse_list` accepts all
of these and never raises; :func:`ask_list` asks, parses, validates, and retries with a corrective message, using
constrained decoding (a JSON schema) where the backend supports it, and reports failure instead of raising.
:func:`ask_list_steps` is the same conversation as a generator of requests, so that a caller can run many of them
side by side and send their pending requests together (:func:`synthdiv.models.llm.base.complete_many`).
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthdiv.models.llm.base import LLM, LLMObserver, Message, Request, run_together

logger = logging.getLogger(__name__)

__all__ = [
    "LIST_SCHEMA", "ListAnswer", "affordable_len", "ask_list", "ask_list_many", "ask_list_steps", "item_key",
    "list_schema", "parse_list",
]

LIST_SCHEMA: dict[str, Any] = {"type": "array", "items": {"type": "string"}}  # any list of strings, even an empty one
_ITEM_CHAR = r'[^"\\{}\[\]\n\r\t]'  # a character of a list_schema item (a regular expression)
_CHARS_PER_TOKEN = 3  # below the ~4 characters of an English BPE token: an item this long rarely overruns
_MAX_REPEAT = 128  # xgrammar 0.2 masks a regex repetition with a larger bound ~1000x slower (15 ms a token): split it

# Keys whose value is the useful text when a model answers with objects instead of strings.
_TEXT_KEYS = ("description", "text", "scene", "context", "style", "name", "item", "value", "prompt")
_MAX_CANDIDATES = 32  # '[' positions tried: bounds the work on long, bracket-heavy text
_MAX_SPAN = 20_000  # characters of one bracketed span handed to the JSON / literal parsers

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)
_QUOTED = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_TRAILING_COMMA = re.compile(r",\s*([\]}])")
_MARKER = re.compile(r"^\s*(?:[-*\u2022+]|\(?\d{1,3}[.):]|\(?[a-zA-Z][.)])\s+")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z ]{0,20}\s\d{1,3}\s*[:.)-]+\s+(?=\S)")  # "Description 2: ..."
_WS = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]")  # an item needs at least one letter or digit: "[ ]", "...", "-" are not answers
_STRIP_CHARS = " \t`*_,;"
_QUOTES = ("\"", "'", "\u201c\u201d", "\u2018\u2019")


def list_schema(n_items: int, min_len: int = 1, max_len: int = 300) -> dict[str, Any]:
    """The JSON schema of an answer of exactly ``n_items`` strings of ``min_len`` to ``max_len`` characters, none
    with a quote, backslash, brace, bracket or line break (the debris of a model writing JSON inside its strings).

    The item count is exact: under :data:`LIST_SCHEMA` a constrained small model answers ``[]`` at once. The length
    is in the regular expression only: xgrammar (and so vLLM) ignores ``minLength``/``maxLength`` next to a
    ``pattern``, and says so at every compile.
    """
    if n_items < 1 or not 0 <= min_len <= max_len:
        raise ValueError(f"list_schema: need n_items >= 1 and 0 <= min_len <= max_len, got {n_items}, {min_len}, "
                         f"{max_len}")
    item = {"type": "string", "pattern": _item_pattern(min_len, max_len)}
    return {"type": "array", "items": item, "minItems": n_items, "maxItems": n_items}


def _item_pattern(min_len: int, max_len: int) -> str:
    """``^C{min_len,max_len}$`` for the item character C, the repetition split into bounds of at most 128."""
    highs = [_MAX_REPEAT] * (max_len // _MAX_REPEAT) + ([max_len % _MAX_REPEAT] if max_len % _MAX_REPEAT else [])
    parts, need = [], min_len
    for high in highs or [0]:
        low = min(need, high)
        need -= low
        parts.append(f"{_ITEM_CHAR}{{{low},{high}}}")
    return "^" + "".join(parts) + "$"


def affordable_len(max_len: int, max_tokens: int, n_items: int, min_len: int = 1) -> int:
    """The longest item :func:`ask_list_steps` puts in its schema: ``max_len``, or less where ``n_items`` items that
    long would not fit in ``max_tokens`` (about 3 characters a token, 2 tokens of quotes and comma per item).

    A constrained answer cut off by ``max_tokens`` loses its last strings, so the schema asks only for what the
    budget can finish; never below ``min_len``.
    """
    return max(min_len, min(max_len, _CHARS_PER_TOKEN * (max_tokens // max(n_items, 1) - 2)))


def item_key(text: str) -> str:
    """The identity of a list item: case-folded, whitespace collapsed, trailing period dropped."""
    return _WS.sub(" ", text).strip().rstrip(".").strip().casefold()


def parse_list(text: str, min_len: int = 1, max_len: int = 300) -> list[str]:
    """Extract a list of strings from whatever a model wrote.

    Tries, in order: a JSON (or Python-literal) list anywhere in the text, inside code fences or not, with trailing
    commas forgiven and objects reduced to their text field; the complete quoted strings of a list cut off before
    its closing bracket; numbered or bulleted lines; plain lines. Items are cleaned (quotes, markers, markdown bold),
    whitespace-collapsed, kept only if ``min_len <= len(item) <= max_len``, and de-duplicated by :func:`item_key`.

    Args:
        text: The model's answer.
        min_len: Shortest item kept, in characters.
        max_len: Longest item kept, in characters.

    Returns:
        The items in order of appearance; empty when nothing usable was found. Never raises.
    """
    try:
        if not isinstance(text, str) or not text.strip():
            return []
        for raw in _candidate_lists(text):
            items = _clean_all(raw, min_len, max_len)
            if items:
                return items
        return _clean_all(_lines(text), min_len, max_len)
    except Exception:  # the parser is a safety net: a pathological input must not stop a stage
        logger.debug("parse_list gave up on %d characters", len(text), exc_info=True)
        return []


def _candidate_lists(text: str) -> Iterator[list[Any]]:
    """Raw lists found in ``text``: fenced blocks first, then the whole text."""
    bodies = [m.group(1) for m in _FENCE.finditer(text)] if "```" in text else []
    for body in [*bodies, text]:
        yield from _lists_in(body)


def _lists_in(text: str) -> Iterator[list[Any]]:
    starts = [i for i, ch in enumerate(text) if ch == "["][:_MAX_CANDIDATES]
    for start in starts:
        end = _matching_bracket(text, start)
        if end is None:  # cut off (max_tokens) or never closed: keep the strings that did complete
            tail = text[start + 1 : start + 1 + _MAX_SPAN]
            strings = [_unescape(m.group(1)) for m in _QUOTED.finditer(tail)]
            if strings:
                yield strings
            continue
        value = _load(text[start : end + 1])
        if isinstance(value, list):
            yield value
    if not starts and text.lstrip().startswith("{"):  # {"a": "...", ...} with no list at all
        value = _load(text.strip())
        if isinstance(value, dict):
            yield list(value.values())


def _matching_bracket(text: str, start: int) -> int | None:
    """Index of the ``]`` closing the ``[`` at ``start`` (double-quoted strings respected), or None."""
    depth, in_str, escaped = 0, False, False
    for i in range(start, min(len(text), start + _MAX_SPAN)):
        ch = text[i]
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"' or ch == "\n":
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return i if ch == "]" else None
    return None


def _load(span: str) -> Any:
    for attempt in (span, _TRAILING_COMMA.sub(r"\1", span)):
        try:
            return json.loads(attempt)
        except (ValueError, RecursionError):
            pass
    try:  # ['single', 'quoted'] lists
        return ast.literal_eval(_TRAILING_COMMA.sub(r"\1", span))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _unescape(s: str) -> str:
    try:
        return json.loads(f'"{s}"')
    except ValueError:
        return s


def _flatten(values: Iterable[Any], depth: int = 0) -> Iterator[str]:
    """Strings of a parsed list: strings as they are, objects by their text field, nested lists flattened."""
    for v in values:
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict) and depth < 3:
            texts = [v[k] for k in _TEXT_KEYS if isinstance(v.get(k), str)]
            texts = texts or [x for x in v.values() if isinstance(x, str)]
            if texts:
                yield texts[0]
            else:
                yield from _flatten([x for x in v.values() if isinstance(x, (list, dict))], depth + 1)
        elif isinstance(v, (list, tuple)) and depth < 3:
            yield from _flatten(v, depth + 1)


def _lines(text: str) -> list[str]:
    """Numbered / bulleted lines if any, else every line that is not an introduction ("Here are ...:")."""
    text = _FENCE.sub(lambda m: m.group(1), text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    marked = [ln for ln in lines if _MARKER.match(ln)]
    if marked:
        return [_MARKER.sub("", ln, count=1) for ln in marked]
    return [ln for ln in lines if not ln.endswith(":") and ln not in ("[", "]", "{", "}")]


def _clean(item: str) -> str:
    s = _WS.sub(" ", item.replace("**", "")).strip()
    for _ in range(2):  # "1. **Label:** text", '"text",'
        s = _MARKER.sub("", s, count=1).strip(_STRIP_CHARS)
        s = _LABEL.sub("", s, count=1).strip(_STRIP_CHARS)
        s = _unquote(s)
    return s


def _unquote(s: str) -> str:
    for q in _QUOTES:
        if len(s) >= 2 and s[0] == q[0] and s[-1] == q[-1]:
            return s[1:-1].strip(_STRIP_CHARS)
    return s


def _clean_all(raw: Iterable[Any], min_len: int, max_len: int) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for item in _flatten(raw):
        s = _clean(item)
        key = item_key(s)
        if not key or key in seen or not (min_len <= len(s) <= max_len) or not _WORD.search(s):
            continue
        seen.add(key)
        out.append(s)
    return out


@dataclass
class ListAnswer:
    """What :func:`ask_list` got.

    Attributes:
        items: Valid, distinct items (at most ``n_items``); may be non-empty even when ``ok`` is False.
        ok: Whether ``n_items`` valid items were collected.
        attempts: LLM calls made (1 + retries used).
        error: Why the answer falls short (the last problem seen), or None.
        rejected: ``(item, reason)`` for every item the validator refused.
    """

    items: list[str]
    ok: bool
    attempts: int
    error: str | None = None
    rejected: list[tuple[str, str]] = field(default_factory=list)


def ask_list(
    llm: LLM,
    messages: list[Message],
    *,
    n_items: int,
    min_len: int = 1,
    max_len: int = 300,
    max_retries: int = 2,
    temperature: float = 0.7,
    seed: int = 0,
    max_tokens: int = 512,
    validate: Callable[[str], str | None] | None = None,
) -> ListAnswer:
    """Ask ``llm`` for a list of ``n_items`` strings, retrying with a corrective message until it has them.

    Valid items are collected across attempts (de-duplicated by :func:`item_key`); attempt ``i`` uses seed
    ``seed + i``. Backend errors (an unreachable server) propagate; bad model output never does.

    Args:
        llm: Any :class:`~synthdiv.models.llm.base.LLM`; when ``llm.supports_json_schema``, each attempt passes the
            :func:`list_schema` of the items still missing, as long as :func:`affordable_len` allows.
        messages: The prompt, usually from :func:`synthdiv.models.llm.templates.render`.
        n_items: Items wanted; extra items are dropped.
        min_len: Shortest acceptable item, in characters.
        max_len: Longest acceptable item, in characters.
        max_retries: Corrective follow-ups after the first attempt.
        temperature: Sampling temperature.
        seed: Seed of the first attempt.
        max_tokens: Token budget of one answer.
        validate: ``validate(item) -> reason | None``; a returned reason rejects the item.

    Returns:
        A :class:`ListAnswer`.
    """
    steps = ask_list_steps(
        getattr(llm, "supports_json_schema", False), messages, n_items=n_items, min_len=min_len, max_len=max_len,
        max_retries=max_retries, temperature=temperature, seed=seed, max_tokens=max_tokens, validate=validate,
    )
    return run_together(llm, [steps])[0]


def ask_list_many(
    llm: LLM, calls: Sequence[dict[str, Any]], progress: LLMObserver | None = None
) -> list[ListAnswer]:
    """:func:`ask_list` for each of ``calls`` (the keyword arguments of one call each, ``messages`` included), the
    pending requests of all of them sent together round by round (:func:`~synthdiv.models.llm.base.run_together`); each
    call asks exactly what it would ask alone, so cached answers are shared with :func:`ask_list`.

    ``progress`` sees the work in flight: calls finished, requests answered, tokens generated (for a bar and the
    log, ``synthdiv.models.llm.progress.LLMProgress(progress, task)``; default: the observer of
    :func:`~synthdiv.models.llm.base.observe_llm`, if any)."""
    schema = bool(getattr(llm, "supports_json_schema", False))
    return run_together(llm, [ask_list_steps(schema, **call) for call in calls], progress)


def ask_list_steps(
    supports_json_schema: bool,
    messages: list[Message],
    *,
    n_items: int,
    min_len: int = 1,
    max_len: int = 300,
    max_retries: int = 2,
    temperature: float = 0.7,
    seed: int = 0,
    max_tokens: int = 512,
    validate: Callable[[str], str | None] | None = None,
) -> Generator[Request, str, ListAnswer]:
    """:func:`ask_list` as a generator: yields each :class:`~synthdiv.models.llm.base.Request` (``n == 1``), is sent the
    answer's text, and returns the :class:`ListAnswer`. The arguments are those of :func:`ask_list`, with the
    backend's ``supports_json_schema`` flag in place of the backend."""
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    convo: list[Message] = list(messages)
    items: list[str] = []
    seen: set[str] = set()
    rejected: list[tuple[str, str]] = []
    problem: str | None = None
    corrections: list[str] = []  # our own follow-ups: small models copy them back as "items"
    attempts = 0
    for attempt in range(max_retries + 1):
        attempts += 1
        schema = None
        if supports_json_schema:
            missing = n_items - len(items)
            schema = list_schema(missing, min_len, affordable_len(max_len, max_tokens, missing, min_len))
        text = yield Request(convo, n=1, temperature=temperature, seed=seed + attempt, max_tokens=max_tokens,
                             json_schema=schema)
        parsed = parse_list(text, min_len=min_len, max_len=max_len)
        new_rejects: list[tuple[str, str]] = []
        for item in parsed:
            key = item_key(item)
            if key in seen:
                continue
            reason = "repeats the instructions" if _echoes(key, corrections) else None
            if reason is None and validate is not None:
                reason = validate(item)
            if reason:
                new_rejects.append((item, reason))
                continue
            seen.add(key)
            items.append(item)
        rejected.extend(new_rejects)
        if len(items) >= n_items:
            return ListAnswer(items[:n_items], True, attempts, None, rejected)
        problem = _describe_problem(parsed, new_rejects, len(items), n_items, min_len, max_len)
        logger.debug("ask_list attempt %d of %d: %s", attempts, max_retries + 1, problem)
        follow_up = _correction(problem, n_items - len(items), more=bool(items))
        corrections.append(_words(follow_up))
        convo = [*convo, {"role": "assistant", "content": text}, {"role": "user", "content": follow_up}]
    logger.info("no complete list after %d attempts: %s", attempts, problem)
    return ListAnswer(items, False, attempts, problem, rejected)


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"\w+", text.casefold())) + " "


def _echoes(key: str, texts: list[str]) -> bool:
    """Whether an item of two or more words occurs, word for word, in one of ``texts`` (from :func:`_words`)."""
    words = _words(key)
    return words.count(" ") > 2 and any(words in t for t in texts)


def _describe_problem(
    parsed: list[str], rejects: list[tuple[str, str]], have: int, want: int, min_len: int, max_len: int
) -> str:
    if not parsed:
        return f"no JSON list of strings found (each string {min_len} to {max_len} characters)"
    parts = [f"{have} usable distinct items of {want} needed"]
    if rejects:
        shown = "; ".join(f"{item[:60]!r}: {reason}" for item, reason in rejects[:3])
        parts.append(f"rejected {shown}")
    return ", ".join(parts)


def _correction(problem: str, missing: int, more: bool) -> str:
    what = f"{missing} more different strings" if more else f"{missing} different strings"
    return (
        f"That answer could not be used ({problem}). Reply with only a JSON list of {what} and nothing else, "
        'for example: ["first item", "second item"]'
    )
