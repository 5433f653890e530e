"""The tolerant list parser (a table of what models really write, and a property test) and ask_list's retries."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdiv.models.llm.structured import LIST_SCHEMA, affordable_len, ask_list, item_key, list_schema, parse_list
from tests.llm.fakes import FakeLLM

PARSER_TABLE = [
    ('["a grey crane", "a crane in a marsh"]', ["a grey crane", "a crane in a marsh"]),
    ('["a", "b",]', ["a", "b"]),  # trailing comma
    ('["a",\n "b",\n]\n', ["a", "b"]),
    ('Sure! Here you go:\n```json\n["x", "y"]\n```\nEnjoy.', ["x", "y"]),  # fence + prose
    ("```\n['single', 'quotes']\n```", ["single", "quotes"]),
    ('The list is ["one", "two"] as asked.', ["one", "two"]),  # prose around
    ("1. A tall bird\n2. A grey bird\n3) A machine", ["A tall bird", "A grey bird", "A machine"]),
    ("Here are styles:\n- sketch\n* oil painting\n\u2022 origami", ["sketch", "oil painting", "origami"]),
    ('1. "quoted one",\n2. "quoted two",', ["quoted one", "quoted two"]),
    ("**Description 1:** a red bird\n**Description 2:** a blue bird", ["a red bird", "a blue bird"]),
    ('{"descriptions": ["p", "q"]}', ["p", "q"]),  # wrong shape: object holding the list
    ('[{"description": "d1"}, {"text": "d2"}]', ["d1", "d2"]),  # wrong shape: list of objects
    ('[["nested a"], ["nested b"]]', ["nested a", "nested b"]),
    ('{"a": "first", "b": "second"}', ["first", "second"]),
    ('["complete one", "complete two", "cut off he', ["complete one", "complete two"]),  # max_tokens hit
    ('["Dup", "dup", "  DUP ", "dup."]', ["Dup"]),  # case / space / period normalised duplicates
    ('["", "  ", "ok"]', ["ok"]),
    ('["[ ]", "...", "-", "_", "a cat"]', ["a cat"]),  # seen from SmolLM2 under a JSON grammar
    ('[1, 2, 3]\n- the fallback line', ["the fallback line"]),  # a list of numbers is not an answer
    ('["He said \\"hi\\"", "x"]', ['He said "hi"', "x"]),
    ("A crane, a tall wading bird with a long neck.", ["A crane, a tall wading bird with a long neck."]),
    ("", []),
    ("   \n  ", []),
    ("[" * 5000, []),
]


@pytest.mark.parametrize(("text", "expected"), PARSER_TABLE)
def test_parse_list_table(text: str, expected: list[str]) -> None:
    assert parse_list(text) == expected


def test_parse_list_length_bounds() -> None:
    assert parse_list('["ab", "abcdef", "abcdefghijkl"]', min_len=3, max_len=8) == ["abcdef"]


def test_parse_list_prefers_fenced_block_over_prose_brackets() -> None:
    text = 'See [the docs].\n```json\n["real", "answer"]\n```'
    assert parse_list(text) == ["real", "answer"]


def _check_items(items: list[str], min_len: int, max_len: int) -> None:
    assert isinstance(items, list)
    keys = [item_key(i) for i in items]
    assert all(isinstance(i, str) and i.strip() and any(ch.isalnum() for ch in i) for i in items)
    assert all(keys) and len(set(keys)) == len(keys)
    assert all(min_len <= len(i) <= max_len for i in items)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.integers(1, 20), st.integers(20, 300))
def test_parse_list_never_raises_arbitrary_text(text: str, min_len: int, max_len: int) -> None:
    _check_items(parse_list(text, min_len=min_len, max_len=max_len), min_len, max_len)


_ITEM = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(_ITEM, max_size=8), st.sampled_from(["json", "lines", "fenced", "broken"]))
def test_parse_list_never_raises_list_like_text(items: list[str], form: str) -> None:
    import json

    if form == "json":
        text = json.dumps(items)
    elif form == "lines":
        text = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(items))
    elif form == "fenced":
        text = "Here:\n```json\n" + json.dumps(items) + ",\n```"
    else:
        text = json.dumps(items)[:-3]
    _check_items(parse_list(text), 1, 300)


@given(st.lists(st.from_regex(r"[a-z]{2,10}( [a-z]{2,10}){0,3}", fullmatch=True), min_size=1, max_size=8))
@settings(max_examples=100, deadline=None)
def test_parse_list_round_trips_json(items: list[str]) -> None:
    import json

    expected, seen = [], set()
    for s in items:
        if item_key(s) not in seen:
            seen.add(item_key(s))
            expected.append(s)
    assert parse_list(json.dumps(items)) == expected


# --- ask_list -----------------------------------------------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "give me 3 things"}]


def test_ask_list_first_answer_ok() -> None:
    llm = FakeLLM('["a", "b", "c", "d"]')
    ans = ask_list(llm, MESSAGES, n_items=3, seed=7, temperature=0.5, max_tokens=99)
    assert ans.ok and ans.items == ["a", "b", "c"] and ans.attempts == 1 and ans.error is None
    call = llm.calls[0]
    assert call["seed"] == 7 and call["temperature"] == 0.5 and call["max_tokens"] == 99 and call["n"] == 1
    assert call["json_schema"] is None  # the fake says it cannot do constrained decoding


def test_ask_list_passes_the_schema_of_what_is_missing_when_supported() -> None:
    llm = FakeLLM('["a", "b"]', '["c"]', supports_json_schema=True)
    assert ask_list(llm, MESSAGES, n_items=3, max_len=20).ok
    assert [c["json_schema"] for c in llm.calls] == [list_schema(3, 1, 20), list_schema(1, 1, 20)]
    assert list_schema(3, 1, 20) == {
        "type": "array", "minItems": 3, "maxItems": 3,
        "items": {"type": "string", "pattern": r'^[^"\\{}\[\]\n\r\t]{1,20}$'},
    }
    free = FakeLLM('["a"]')
    assert ask_list(free, MESSAGES, n_items=1).ok and free.calls[0]["json_schema"] is None


def test_the_schema_asks_only_for_items_the_token_budget_can_finish() -> None:
    assert affordable_len(200, 272, 5, 2) == 156 and affordable_len(200, 512, 3) == 200  # disambiguate; roomy
    assert affordable_len(300, 64, 4) == 42 and affordable_len(200, 10, 5, min_len=2) == 2  # styles; never < min
    llm = FakeLLM('["ab", "cd"]', supports_json_schema=True)
    assert ask_list(llm, MESSAGES, n_items=2, min_len=2, max_len=200, max_tokens=64).ok
    assert llm.calls[0]["json_schema"] == list_schema(2, 2, 90)


@pytest.mark.parametrize(("n", "lo", "hi"), [(1, 0, 5), (4, 2, 128), (4, 2, 200), (2, 130, 300)])
def test_list_schema_items_refuse_json_debris(n: int, lo: int, hi: int) -> None:
    schema = list_schema(n, lo, hi)
    assert schema["minItems"] == schema["maxItems"] == n and LIST_SCHEMA["items"]["type"] == "string"
    pattern = re.compile(schema["items"]["pattern"])
    assert pattern.fullmatch("a" * lo) and pattern.fullmatch("x" * hi) and not pattern.fullmatch("x" * (hi + 1))
    assert lo == 0 or not pattern.fullmatch("a" * (lo - 1))
    assert all(int(b) <= 128 for b in re.findall(r"\{\d+,(\d+)\}", pattern.pattern))  # xgrammar's fast bound
    for debris in ['a": "b', "n{ }", "a [b]", "x\\y", "a\nb"]:  # each with a refused character in its first 3
        assert not pattern.fullmatch((debris + "x" * lo)[:hi])
    with pytest.raises(ValueError):
        list_schema(0)


def test_ask_list_retries_with_correction_and_new_seed() -> None:
    llm = FakeLLM("I am a small model and I like birds.", "still prose, sorry: no list here!", '["x", "y"]')
    ans = ask_list(llm, MESSAGES, n_items=2, seed=10, max_len=20)
    assert ans.ok and ans.items == ["x", "y"] and ans.attempts == 3
    assert [c["seed"] for c in llm.calls] == [10, 11, 12]
    second = llm.calls[1]["messages"]
    assert second[:1] == MESSAGES
    assert second[1] == {"role": "assistant", "content": "I am a small model and I like birds."}
    assert second[2]["role"] == "user" and "JSON list of 2" in second[2]["content"]
    assert len(llm.calls[2]["messages"]) == 5  # the whole conversation is kept


def test_ask_list_collects_items_across_attempts() -> None:
    llm = FakeLLM('["a", "b"]', '["B", "c", "d"]')
    ans = ask_list(llm, MESSAGES, n_items=3)
    assert ans.ok and ans.items == ["a", "b", "c"] and ans.attempts == 2
    assert "1 more" in llm.calls[1]["messages"][-1]["content"]


def test_ask_list_gives_up_without_raising() -> None:
    llm = FakeLLM("no", "nope", "never")
    ans = ask_list(llm, MESSAGES, n_items=2, max_retries=2, max_len=1)
    assert not ans.ok and ans.items == [] and ans.attempts == 3
    assert ans.error and "no JSON list" in ans.error
    assert not llm.queue


def test_ask_list_partial_answer_is_reported() -> None:
    llm = FakeLLM('["only one"]')
    ans = ask_list(llm, MESSAGES, n_items=3, max_retries=0)
    assert not ans.ok and ans.items == ["only one"] and ans.attempts == 1 and "1 usable" in ans.error


def test_ask_list_validator_rejects_and_explains() -> None:
    def no_digits(item: str) -> str | None:
        return "contains a digit" if any(ch.isdigit() for ch in item) else None

    llm = FakeLLM('["cat 1", "cat 2", "a cat"]', '["a tabby cat"]')
    ans = ask_list(llm, MESSAGES, n_items=2, validate=no_digits)
    assert ans.ok and ans.items == ["a cat", "a tabby cat"]
    assert ans.rejected == [("cat 1", "contains a digit"), ("cat 2", "contains a digit")]
    assert "contains a digit" in llm.calls[1]["messages"][-1]["content"]


class _EchoLLM(FakeLLM):
    """Replies "<echo>" by copying the last message back, as SmolLM2 does with corrections."""

    def complete(self, messages, **kwargs):
        return [messages[-1]["content"] if t == "<echo>" else t for t in super().complete(messages, **kwargs)]


def test_ask_list_rejects_echoes_of_its_own_correction() -> None:
    llm = _EchoLLM("x" * 400, "<echo>", '["real item"]')
    ans = ask_list(llm, MESSAGES, n_items=1, max_retries=2)
    assert ans.ok and ans.items == ["real item"] and ans.attempts == 3
    assert ("first item", "repeats the instructions") in ans.rejected  # the example list inside the correction


def test_ask_list_refuses_nonpositive_n() -> None:
    with pytest.raises(ValueError):
        ask_list(FakeLLM(), MESSAGES, n_items=0)


class _SeedLists:
    """Answers with a JSON list of ``seed % 4`` items (0 items: the caller retries with seed + 1)."""

    model_id = "echo:lists"
    supports_json_schema = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.rounds: list[int] = []

    def complete(self, messages, n=1, temperature=0.7, seed=0, max_tokens=256, json_schema=None):
        self.calls.append((messages[0]["content"], seed))
        return [json.dumps([f"{messages[0]['content']} {seed} {j}" for j in range(seed % 4)])] * n

    def complete_many(self, requests):
        self.rounds.append(len(requests))
        return [r.send(self) for r in requests]


def test_ask_list_many_asks_what_ask_list_asks_alone():
    from synthdiv.models.llm.structured import ask_list_many

    calls = [{"messages": [{"role": "user", "content": f"q{i}"}], "n_items": 2, "seed": seed, "max_retries": 3}
             for i, seed in enumerate((2, 4, 7))]  # seed 4: no item, seed 5: one, seed 6: the second
    alone = _SeedLists()
    expected = [ask_list(alone, **c) for c in calls]
    together = _SeedLists()
    assert ask_list_many(together, calls) == expected
    assert sorted(together.calls) == sorted(alone.calls) and together.rounds == [3, 1, 1]
