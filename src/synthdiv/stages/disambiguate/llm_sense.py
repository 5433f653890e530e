"""The LLM's part in settling a sense: told the whole class list, which sense does an undecided name mean?

Asked only for the classes the list and the images left undecided (:mod:`synthdiv.stages.disambiguate.senses`), and only
where an LLM is configured. The LLM sees every class name of the list and the name's candidate senses as numbered
glosses, and answers with a number. A small model answers "1" whatever it is asked, so each class is asked twice,
the second time with the options in reverse order: only an answer that names the same sense both times counts
(``llm (list)``). A model that guesses agrees with itself by chance only (one in the number of options); one that
always picks a position never does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from synthdiv.models.llm.base import Request, complete_many
from synthdiv.stages.disambiguate.ambiguity import sense_of
from synthdiv.stages.disambiguate.senses import SenseChoice

if TYPE_CHECKING:
    from synthdiv.models.llm.base import LLM

logger = logging.getLogger(__name__)

__all__ = ["ask_llm_senses", "sense_request"]

_OPTIONS = 4  # the list's best senses offered
_NAMES_SHOWN = 60  # class names shown to the LLM, the class's own first
_NUMBER = re.compile(r"\d+")


def sense_request(name: str, names: Sequence[str], options: Sequence[str], seed: int) -> Any:
    """The request that asks which of ``options`` (synset ids, in the order shown) ``name`` means in ``names``."""
    shown = [n for n in names if n != name][:_NAMES_SHOWN]
    lines = []
    for k, wnid in enumerate(options, start=1):
        sense = sense_of(wnid)
        lines.append(f"{k}. {name}: {sense.gloss.split(';')[0] if sense else wnid}")
    content = (f"An image classification dataset has the classes: {', '.join(shown)}, and {name}.\n"
               f"Which meaning of \"{name}\" do its images show?\n" + "\n".join(lines) +
               "\nAnswer with the number only.")
    return Request([{"role": "system", "content": "You label image datasets."},
                    {"role": "user", "content": content}], n=1, temperature=0.0, seed=seed, max_tokens=8)


def _picked(answer: str, options: Sequence[str]) -> str | None:
    found = _NUMBER.search(answer)
    if found is None or not 1 <= int(found.group(0)) <= len(options):
        return None
    return options[int(found.group(0)) - 1]


def ask_llm_senses(
    llm: LLM, rows: Sequence[dict[str, Any]], choices: Sequence[SenseChoice | None], seed: int
) -> list[SenseChoice | None]:
    """``choices`` with every undecided one that the LLM settles consistently replaced by an ``llm (list)`` choice.

    A backend failure settles nothing: the classes stay undecided and the stage goes on (logged once).
    """
    names = [row["name"] for row in rows]
    asked, requests = [], []
    for i, choice in enumerate(choices):
        if choice is None or choice.decided or len(choice.scores) < 2:
            continue
        options = list(choice.scores)[:_OPTIONS]
        asked.append((i, options))
        requests += [sense_request(names[i], names, options, seed),
                     sense_request(names[i], names, options[::-1], seed)]
    if not requests:
        return list(choices)
    try:
        answers = complete_many(llm, requests)
    except Exception as exc:  # the LLM is a tie-breaker here: without it the classes stay undecided
        logger.warning("asking the LLM which sense the undecided classes mean failed (%s: %s)",
                       type(exc).__name__, exc)
        return list(choices)
    out = list(choices)
    for k, (i, options) in enumerate(asked):
        first = _picked(answers[2 * k][0], options)
        second = _picked(answers[2 * k + 1][0], options[::-1])
        if first is not None and first == second:
            out[i] = SenseChoice(first, "llm (list)", None, choices[i].scores)
    return out
