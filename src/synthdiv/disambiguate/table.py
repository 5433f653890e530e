"""``synthdiv show disambiguation``: the resolved classes as a readable table."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from synthdiv.errors import StageOrderError
from synthdiv.run import RunDir, read_jsonl

if TYPE_CHECKING:
    from rich.table import Table

    from synthdiv.config import RunConfig

logger = logging.getLogger(__name__)

__all__ = ["disambiguation_table", "runner_up"]

_STATUS_STYLE = {"ok": "green", "fallback": "yellow", "disabled": "dim"}


def runner_up(row: dict[str, Any]) -> dict[str, Any] | None:
    """The best-ranked candidate that is not the chosen description, or None."""
    others = [c for c in row.get("candidates", []) if c.get("text") != row.get("description")]
    return min(others, key=lambda c: c.get("rank", 0)) if others else None


def _score(candidate: dict[str, Any] | None) -> str:
    if candidate is None or candidate.get("score") is None:
        return "-"
    return f"{candidate['score']:+.3f}"


def disambiguation_table(cfg: RunConfig) -> Table:
    """Class, original name, chosen description, runner-up, their scores, status and basis for every class.

    Raises:
        StageOrderError: The disambiguate stage has not written ``classes.resolved.jsonl`` yet.
    """
    from rich.table import Table

    run = RunDir(cfg.run_dir)
    if not run.resolved.exists():
        raise StageOrderError(f"{run.resolved} does not exist: run `synthdiv disambiguate` first")
    rows = read_jsonl(run.resolved)
    table = Table(title=f"disambiguation of {len(rows)} classes ({run.resolved})")
    for column in ("class", "original", "chosen", "score", "runner-up", "score ", "status", "basis"):
        table.add_column(column, justify="right" if column.startswith("score") or column == "class" else "left")
    for row in rows:
        chosen = next((c for c in row.get("candidates", []) if c.get("text") == row["description"]), None)
        second = runner_up(row)
        status = row.get("status", "")
        table.add_row(
            str(row["index"]),
            row["name"],
            row["description"] if row["description"] != row["name"] else f"[dim]{row['description']}[/]",
            _score(chosen),
            second["text"] if second else "-",
            _score(second),
            f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]",
            row.get("basis") or "-",
        )
    return table
