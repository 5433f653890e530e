"""``synthdiv show disambiguation``: the resolved classes as a readable table, with a summary line.

Per class: why its name was ambiguous, the description chosen, the runner-up, the margin between them and what
settled the choice. The summary counts ambiguous classes by reason, how they were settled, and any left bare.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rich.markup import escape

from synthdiv.core.rundir import RunDir
from synthdiv.errors import StageOrderError
from synthdiv.stages.disambiguate.reader import ambiguity_summary, runner_up, sense_text
from synthdiv.utils.io import read_jsonl

if TYPE_CHECKING:
    from rich.table import Table

    from synthdiv.config.root import RunConfig

logger = logging.getLogger(__name__)

__all__ = ["disambiguation_table"]

_STATUS_STYLE = {"ok": "green", "fallback": "yellow", "disabled": "dim", "no-llm": "cyan"}


def _score(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def disambiguation_table(cfg: RunConfig) -> Table:
    """Class, original name, why ambiguous, what settled its sense, chosen description, runner-up, their scores,
    margin, how it was settled, status and basis for every class; the caption is :func:`ambiguity_summary`.

    Raises:
        StageOrderError: The disambiguate stage has not written ``classes.resolved.jsonl`` yet.
    """
    from rich.table import Table

    run = RunDir(cfg.run_dir)
    if not run.resolved.exists():
        raise StageOrderError(f"{run.resolved} does not exist: run `synthdiv disambiguate` first")
    rows = read_jsonl(run.resolved)
    table = Table(title=f"disambiguation of {len(rows)} classes ({run.resolved})", caption=ambiguity_summary(rows))
    columns = ("class", "original", "why ambiguous", "sense", "chosen", "score", "runner-up", "score ", "margin",
               "settled by", "status", "basis")
    widest = min(24, max(len(row["name"]) for row in rows))
    for column in columns:
        right = column.startswith("score") or column in ("class", "margin")
        # the class's own name is what a reader looks for: never folded, even in an 80-column pipe
        table.add_column(column, justify="right" if right else "left",
                         min_width=widest if column == "original" else None)
    for row in rows:
        chosen = next((c for c in row.get("candidates", []) if c.get("text") == row["description"]), None)
        second = runner_up(row)
        status = row.get("status", "")
        why = "; ".join((row.get("ambiguity") or {}).get("reasons", [])) or "-"
        description = escape(row["description"])
        table.add_row(
            str(row["index"]),
            escape(row["name"]),
            escape(why),
            escape(sense_text(row)),
            description if row["description"] != row["name"] else f"[dim]{description}[/]",
            _score(chosen.get("score") if chosen else None),
            escape(second["text"]) if second else "-",
            _score(second.get("score") if second else None),
            _score(row.get("margin")),
            escape(row.get("chosen_by") or "-"),
            f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]",
            row.get("basis") or "-",
        )
    return table
