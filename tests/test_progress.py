"""Progress that tells the truth (issue 21, item 5): real rates, humanised, and LLM batches in flight shown as
requests answered and tokens generated, busy rather than "no progress"."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from synthdiv.models.llm.base import Request, report_generated, run_together, token_counter
from synthdiv.models.llm.progress import LLMProgress, llm_progress
from synthdiv.models.llm.structured import ask_list_many
from synthdiv.utils.humanize import human_rate
from synthdiv.utils.progress import Progress


@pytest.mark.parametrize(("per_second", "unit", "text"), [
    (34_700.0, "", "34,700/s"),
    (34_700.0, "tokens", "34,700 tokens/s"),
    (123.4, "", "123/s"),
    (12.34, "img", "12.3 img/s"),
    (1.5, "", "1.5/s"),
    (0.153, "", "9.18/min"),
    (0.0004, "", "1.44/h"),
    (1e-9, "", "<0.01/h"),
    (0.0, "tokens", "0 tokens/s"),
])
def test_rates_read_as_people_read_them(per_second: float, unit: str, text: str):
    assert human_rate(per_second, unit) == text


@pytest.mark.parametrize("per_second", [1e-7, 3e-3, 0.5, 7.0, 99.99, 3.47e4, 1.2e9])
def test_a_rate_never_has_an_exponent(per_second: float):
    assert not re.search(r"\d[eE][+-]?\d", human_rate(per_second))


def test_a_batch_done_at_once_gets_its_rate_over_the_real_elapsed_time():
    with Progress() as bar:
        task = bar.add_task("LLM candidates", total=10)
        time.sleep(0.3)  # the batch works, then all 10 answers arrive together
        started = time.monotonic()
        bar.advance(task, 10)
        rate = bar._tasks[task].rate()
        line = bar._tasks[task].final_line()
    assert rate is not None and 10 / (0.3 + time.monotonic() - started + 5) < rate <= 10 / 0.3  # not 3.47e+04/s
    shown = re.fullmatch(r"LLM candidates: 10/10 in \d+(\.\d+)? s \(([\d.]+)/s\)", line)
    assert shown and 10 / 5.3 < float(shown[2]) <= 10 / 0.3, line  # the ten over the time they took


def test_the_rate_leaves_out_the_first_advance_and_the_wait_before_it():
    with Progress() as bar:
        task = bar.add_task("generate", total=30, unit="img")
        time.sleep(0.3)  # model loading: not part of the rate
        bar.advance(task, 10)  # its images took an unknown time: not part of the rate either
        time.sleep(0.2)
        bar.advance(task, 10)
        rate = bar._tasks[task].rate()
        line = bar._tasks[task].line()
    assert rate is not None and 10 / 0.5 < rate <= 10 / 0.2
    assert re.search(r"generate: 20/30 \(67%\), [\d.]+ img/s, ETA ", line), line


def test_a_busy_task_is_not_reported_idle(monkeypatch):
    monkeypatch.setenv("SYNTHDIV_PROGRESS_SECONDS", "30")
    with Progress() as bar:
        task = bar.add_task("disambiguate: LLM candidates", total=10)
        t = bar._tasks[task]
        t.last_progress = time.time() - 65
        assert "no progress for 65 s" in t.line()  # idle for two log intervals: said so
        bar.busy(task, "generating")
        t.busy_since = time.time() - 65
        assert "generating for 65 s" in t.line() and "no progress" not in t.line()
        bar.busy(task, None)
        assert "generating" not in t.line()


class _SlowBatchLLM:
    """A backend that generates a batch of answers step by step, reporting its tokens as it goes, and checks what
    the progress display says while it works."""

    model_id = "fake:slow-batch"
    supports_json_schema = False

    def __init__(self, watch: Any = None) -> None:
        self.watch, self.seen, self.rounds = watch, [], 0

    def complete(self, messages: Any, **kwargs: Any) -> list[str]:
        return self.complete_many([Request(messages, **kwargs)])[0]

    def complete_many(self, requests: Sequence[Request]) -> list[list[str]]:
        self.rounds += 1
        for step in range(3):
            report_generated(tokens=5 * len(requests))
            if step == 1:
                report_generated(sequences=1)  # one row finished early
            if self.watch is not None:
                self.seen.append(self.watch())
        return [['["alpha", "beta"]'] for _ in requests]


def test_an_llm_batch_in_flight_shows_requests_and_tokens():
    with Progress() as bar:
        task = bar.add_task("disambiguate: LLM candidates", total=4)
        llm = _SlowBatchLLM(lambda: (bar._tasks[task].line(), bar._tasks[task].counters["tokens"].done))
        calls = [{"messages": [{"role": "user", "content": f"name {i}"}], "n_items": 2} for i in range(4)]
        answers = ask_list_many(llm, calls, progress=LLMProgress(bar, task))
        t = bar._tasks[task]
        final = t.final_line()
    assert [a.items for a in answers] == [["alpha", "beta"]] * 4 and llm.rounds == 1
    lines = [line for line, _ in llm.seen]
    assert [tokens for _, tokens in llm.seen] == [20, 40, 60]  # tokens advance while the batch works
    assert all(line.startswith("disambiguate: LLM candidates: 0/4 (0%)") for line in lines)
    assert "0/4 requests, 20 tokens" in lines[0] and "1/4 requests, 40 tokens" in lines[1]
    assert not any("no progress" in line for line in lines)
    assert t.done == 4 and t.busy is None
    assert t.counters["requests"].done == 4 and t.counters["requests"].total == 4
    assert re.fullmatch(r"disambiguate: LLM candidates: 4/4 in \S+ s \([\d.,]+/(s|min)\); 4/4 requests, 60 tokens "
                        r"at [\d.,]+ tokens/(s|min)", final), final


def test_llm_progress_follows_callers_of_run_together_and_counts_rounds_exactly():
    def convo(turns: int):
        for _ in range(turns):
            yield Request([{"role": "user", "content": "more"}])
        return turns

    llm = _SlowBatchLLM()
    with llm_progress("prompts: LLM contexts", 3) as observer:
        assert run_together(llm, [convo(0), convo(1), convo(2)]) == [0, 1, 2]  # no progress= : the block's
        t = observer.progress._tasks[observer.task]
        assert t.done == 3 and t.busy is None
        assert t.counters["requests"].done == 3 and t.counters["requests"].total == 3  # rounds of 2, then 1
        assert t.counters["tokens"].done == 3 * 5 * 2 + 3 * 5 * 1
    assert token_counter() is None  # outside the block nothing listens


def test_a_backend_failure_ends_the_busy_state():
    class Broken:
        model_id, supports_json_schema = "fake:broken", False

        def complete(self, *args: Any, **kwargs: Any) -> list[str]:
            raise ConnectionError("server gone")

    with Progress() as bar:
        task = bar.add_task("LLM", total=1)
        with pytest.raises(ConnectionError):
            ask_list_many(Broken(), [{"messages": [], "n_items": 1}], progress=LLMProgress(bar, task))
        assert bar._tasks[task].busy is None and bar._tasks[task].counters["requests"].done == 0


def test_the_token_streamer_counts_generated_tokens_without_padding():
    got: list[tuple[int, int]] = []

    class Observer:
        def generated(self, tokens: int = 0, sequences: int = 0) -> None:
            got.append((tokens, sequences))

        def sent(self, requests: int) -> None: ...
        def answered(self, requests: int) -> None: ...
        def finished(self, conversations: int) -> None: ...

    from synthdiv.models.llm.base import observe_llm

    with observe_llm(Observer()):
        streamer = token_counter(pad_token_id=0)
    assert streamer is not None
    streamer.put(np.array([[7, 8, 9], [0, 5, 6]]))  # the prompts (left-padded): not generated tokens
    streamer.put(np.array([11, 12]))
    streamer.put(np.array([13, 0]))  # the second row has finished: padding from here on
    streamer.end()
    assert got == [(2, 0), (1, 0), (0, 2)]


@pytest.mark.slow
def test_the_transformers_backend_reports_tokens_while_it_generates():
    from synthdiv.config.models import LLMSpec
    from synthdiv.models.llm import create_llm

    llm = create_llm(LLMSpec(backend="transformers", model="embedded", device="cpu",
                             options={"batch_size": 1, "torch_threads": 1}))
    calls = [{"messages": [{"role": "user", "content": f"List two {w} as a JSON list."}], "n_items": 2,
              "max_tokens": 8, "max_retries": 0} for w in ("birds", "tools")]
    with Progress() as bar:
        task = bar.add_task("LLM", total=2)
        ticks: list[float] = []
        observer = LLMProgress(bar, task)
        real = observer.generated

        def generated(tokens: int = 0, sequences: int = 0) -> None:
            real(tokens, sequences)
            ticks.append(bar._tasks[task].counters.get("tokens", None).done if tokens else -1)

        observer.generated = generated  # type: ignore[method-assign]
        ask_list_many(llm, calls, progress=observer)
        t = bar._tasks[task]
    tokens = [n for n in ticks if n >= 0]
    assert len(tokens) > 2 and tokens == sorted(tokens) and 0 < tokens[-1] <= 2 * 8  # step by step, as it works
    assert ticks.count(-1) == 2  # two batches of one row each finished
    assert t.done == 2 and t.counters["requests"].done == 2 and t.counters["tokens"].done == tokens[-1]


def test_status_shows_an_llm_batch_in_flight(tmp_path, monkeypatch):
    from synthdiv.config.loader import config_from_dict
    from synthdiv.core.rundir import RunDir
    from synthdiv.core.status import stage_status
    from synthdiv.utils.progress import heartbeat

    monkeypatch.setattr("synthdiv.utils.progress._BEAT_SECONDS", 0.0)
    cfg = config_from_dict({"run_dir": str(tmp_path / "run")})
    run = RunDir(cfg.run_dir)
    run.begin("disambiguate", "f")
    with heartbeat(run.root, "disambiguate"), Progress() as bar:
        task = bar.add_task("disambiguate: LLM candidates", total=10)
        observer = LLMProgress(bar, task)
        observer.sent(10)
        bar._tasks[task].busy_since -= 65  # the batch has worked for a minute
        observer.generated(tokens=500)
        time.sleep(0.05)
        observer.generated(tokens=700)
        detail = next(r for r in stage_status(cfg) if r.stage == "disambiguate").detail
    pattern = (r"disambiguate: LLM candidates: 0/10, 0/10 requests, 1,200 tokens at [\d.,]+ tokens/s, "
               r"generating for 65 s, last progress [\d.]+ s ago")
    assert re.fullmatch(pattern, detail), detail


def test_a_stage_records_the_tokens_its_llm_work_generated(make_config, monkeypatch):
    """The stage runner tallies every LLMProgress made while a stage runs: ``llm_tokens`` in its summary (none
    for a stage whose LLM reported no tokens), which the cost table sums."""
    import dataclasses

    import synthdiv.engine.runner as runner
    from synthdiv.core.pipeline import get_spec
    from synthdiv.core.rundir import RunDir
    from synthdiv.engine.runner import run_stage
    from synthdiv.models.llm.progress import count_tokens
    from synthdiv.stages.report.cost import llm_requests

    def fake_prompts(cfg, run):
        with llm_progress("prompts: LLM contexts", 3):
            run_together(_SlowBatchLLM(), [_one_request() for _ in range(2)])  # 2 rows x 5 tokens x 3 steps
        with llm_progress("prompts: LLM styles", 1):
            run_together(_SlowBatchLLM(), [_one_request()])  # 1 x 5 x 3
        return {"llm_requests": 3}

    cfg = make_config()
    spec = get_spec("prompts")
    real_get = runner.get_spec
    monkeypatch.setattr(runner, "get_spec", lambda name: dataclasses.replace(spec, impl=fake_prompts, inputs=())
                        if name == "prompts" else real_get(name))
    run = RunDir(cfg.run_dir)
    summary = run_stage(cfg, "prompts")
    assert summary == {"llm_requests": 3, "llm_tokens": 30 + 15}
    assert run.read_state("prompts").summary["llm_tokens"] == 45 and llm_requests(run, "llm_tokens") == 45
    with count_tokens() as outer:
        with count_tokens() as inner, llm_progress("x", 1):
            run_together(_SlowBatchLLM(), [_one_request()])
        assert inner.total == 15 and outer.total == 0  # a tally counts only what was made in its own block


def _one_request():
    yield Request([{"role": "user", "content": "more"}])
    return 1
