"""The LLM's part of the disambiguate stage: candidate descriptions for each class, checked as they come.

The LLM is given the class's name and definition, the classes it is most easily confused with and the other
WordNet senses of its name (template ``disambiguate.v3``). Bad answers are rejected item by item with a reason and
retried with a corrective message (:func:`synthdiv.models.llm.structured.ask_list`); a backend failure on one class is
recorded and the stage goes on, unless the backend fails on each of the first classes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from synthdiv.lexicon.debris import debris_reason
from synthdiv.models.llm.progress import LLMProgress
from synthdiv.models.llm.structured import ask_list, ask_list_many
from synthdiv.models.llm.templates import render
from synthdiv.stages.disambiguate.confusable import mentions_name
from synthdiv.stages.disambiguate.unique import text_key
from synthdiv.utils.hashing import canonical_hash

if TYPE_CHECKING:
    from synthdiv.config.disambiguate import DisambiguateConfig
    from synthdiv.config.root import RunConfig
    from synthdiv.models.llm.base import LLM
    from synthdiv.stages.disambiguate.validate import CandidateCheck

logger = logging.getLogger(__name__)

__all__ = ["TEMPLATE", "Proposal", "request", "propose", "ask_all", "strip_label"]

TEMPLATE = "disambiguate.v3"
# "[description]", "<class name>", "{name}": a small model copying the shape of an instruction.
_PLACEHOLDER = re.compile(r"[\[<{][^\]>}]*[\]>}]")
# Backend errors (not bad answers) on this many classes in a row, from the first class on, stop the stage.
_FAIL_FAST = 3
# "Description: ...", "A: ...", "Answer 2: ...": a label a small model puts before its item.
_LABEL = re.compile(r"^\s*(?:description|answer|output|item|a|q)\s*\d*\s*:\s*", re.IGNORECASE)
_SENSES_IN_PROMPT = 4


@dataclass
class Proposal:
    """What the LLM proposed for one class."""

    items: list[str] = field(default_factory=list)
    ok: bool = False
    attempts: int = 0
    error: str | None = None
    template_id: str | None = None
    rejected: list[tuple[str, str]] = field(default_factory=list)


def request(
    row: dict[str, Any], others: list[str], dcfg: DisambiguateConfig, seed: int, check: CandidateCheck | None = None
) -> tuple[dict[str, Any], str]:
    """The :func:`~synthdiv.models.llm.structured.ask_list` keywords (``messages`` included) that ask for
    ``dcfg.candidates`` descriptions of the class ``row``, and the template id.

    Debris (JSON fragments, stray quotes, unknown words, instruction echoes, dangling ends:
    :func:`~synthdiv.lexicon.debris.debris_reason`) is refused. ``check`` (when given) rejects sentences, candidates
    naming another class and candidates about another sense of the name; the name's other senses are told to the
    LLM.
    """
    name = row["name"]
    names = [name, *(row.get("lemmas") or [])]
    senses = [] if check is None else [
        f"{s.hypernym or s.lemmas[0]} ({s.gloss.split(';')[0]})" for s in check.ambiguity.other_senses
    ][:_SENSES_IN_PROMPT]
    messages, template_id = render(
        TEMPLATE, name=name, definition=row.get("definition"), others=others, senses=senses, k=dcfg.candidates
    )

    def validate(item: str) -> str | None:
        if not any(ch.isalpha() for ch in item):
            return "has no words"
        if _PLACEHOLDER.search(item):
            return "contains a template placeholder"
        if text_key(item) == text_key(name):
            return "only repeats the class name"
        if len(item.split()) > dcfg.max_words:
            return f"longer than {dcfg.max_words} words"
        if dcfg.require_name and not any(mentions_name(item, n) for n in names):
            return f"does not name the class ({name})"
        # the class's own checks first: their reasons (a sentence, another class named) say more than debris does
        why = check.reason(strip_label(item)) if check is not None else None
        return why or debris_reason(strip_label(item), names)

    call = {"messages": messages, "n_items": dcfg.candidates, "min_len": 2, "max_len": 200,
            "max_retries": dcfg.max_retries, "temperature": dcfg.temperature, "seed": seed,
            "max_tokens": dcfg.max_tokens or 48 * dcfg.candidates + 32, "validate": validate}
    return call, template_id


def propose(
    llm: LLM, row: dict[str, Any], others: list[str], dcfg: DisambiguateConfig, seed: int,
    check: CandidateCheck | None = None,
) -> Proposal:
    """Ask ``llm`` for the candidates of one class (see :func:`request`); never raises on a bad answer."""
    call, template_id = request(row, others, dcfg, seed, check)
    return _proposal(ask_list(llm, **call), template_id)


def _proposal(answer: Any, template_id: str) -> Proposal:
    return Proposal(
        list(answer.items), bool(answer.items), answer.attempts, answer.error, template_id, list(answer.rejected)
    )


def strip_label(item: str) -> str:
    """``item`` without a label a small model put before it ("Description: ...")."""
    return _LABEL.sub("", item).strip() or item


def _class_seed(root: int, row: dict[str, Any]) -> int:
    return int(canonical_hash([root, row.get("wnid"), row["name"], row["index"]])[:8], 16)


def ask_all(
    cfg: RunConfig, rows: list[dict[str, Any]], others: list[list[int]], checks: list[CandidateCheck], llm: LLM | None,
    progress: Any,
) -> list[Proposal]:
    """Every class's proposal. The classes' requests go to the LLM together, round by round (one batch for the
    transformers backend, concurrent requests for an openai server); when that fails, the classes are asked one by
    one, so that a backend failure costs only its class (see :func:`_one_by_one`)."""
    if llm is None:  # disambiguate.candidates: 0 -- grounded candidates and CLIP only
        return [Proposal(template_id=None) for _ in rows]

    task = progress.add_task("disambiguate: LLM candidates", total=len(rows))
    calls = [request(row, [rows[j]["name"] for j in near], cfg.disambiguate, _class_seed(cfg.seed, row), check)
             for row, near, check in zip(rows, others, checks, strict=True)]
    try:
        answers = ask_list_many(llm, [call for call, _ in calls], progress=LLMProgress(progress, task))
    except Exception as exc:  # answered ones are cached: asking class by class repeats no LLM work
        logger.warning("asking the LLM for all classes together failed (%s: %s); asking class by class",
                       type(exc).__name__, exc)
        return _one_by_one(cfg, rows, others, checks, llm, progress, task)
    proposals = [_proposal(answer, template_id) for answer, (_, template_id) in zip(answers, calls, strict=True)]
    for row, proposal in zip(rows, proposals, strict=True):
        if not proposal.ok:
            logger.info("no LLM candidates for class %s: %s", row["name"], proposal.error)
    progress.update(task, completed=len(rows))
    return proposals


def _one_by_one(
    cfg: RunConfig, rows: list[dict[str, Any]], others: list[list[int]], checks: list[CandidateCheck], llm: LLM,
    progress: Any, task: Any,
) -> list[Proposal]:
    """Ask class by class: a backend failure for one class is recorded and the stage goes on, unless the backend
    fails on each of the first classes (it is broken, not merely answering badly)."""
    progress.update(task, completed=0)
    proposals: list[Proposal] = []
    raised = 0
    for row, near, check in zip(rows, others, checks, strict=True):
        names = [rows[j]["name"] for j in near]
        try:
            proposal = propose(llm, row, names, cfg.disambiguate, _class_seed(cfg.seed, row), check)
        except Exception as exc:  # a backend failure for one class is recorded; the stage goes on
            raised += 1
            if raised == len(proposals) + 1 and raised >= min(_FAIL_FAST, len(rows)):
                logger.error("the LLM failed on the first %d classes: stopping", raised)
                raise
            logger.warning("LLM failed for class %s (%s): keeping its name", row["name"], exc)
            proposal = Proposal(error=f"{type(exc).__name__}: {exc}", template_id=TEMPLATE)
        if not proposal.ok:
            logger.info("no LLM candidates for class %s: %s", row["name"], proposal.error)
        proposals.append(proposal)
        progress.advance(task)
    return proposals
