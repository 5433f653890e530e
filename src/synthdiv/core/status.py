"""What is known of a stage without running it: its fingerprint, whether it is done, whether its work is complete,
and every stage's state for ``synthdiv status`` and the report.

Read-only: nothing here runs a stage or writes a file, so the report (a stage itself) reads the states without
importing the engine that runs it (:mod:`synthdiv.engine.runner`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthdiv.config.root import RunConfig
from synthdiv.core.pipeline import STAGES, StageSpec
from synthdiv.core.rundir import RunDir, StageState
from synthdiv.utils.hashing import canonical_hash, file_digest, legacy_folder_digest, listing_digest
from synthdiv.utils.humanize import human_duration, human_rate
from synthdiv.utils.progress import read_heartbeats

logger = logging.getLogger(__name__)

__all__ = ["StageStatus", "fingerprint", "fingerprint_matches", "is_done", "lost_outputs", "summary_text",
           "summary_line", "stage_status"]


def _section(cfg: RunConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    if isinstance(node, list):
        return [n.model_dump(mode="json") if hasattr(n, "model_dump") else n for n in node]
    if not hasattr(node, "model_dump"):
        return node
    data = node.model_dump(mode="json")
    fields = type(node).model_fields
    for key in getattr(type(node), "fingerprint_optional", ()):  # a later option, left at its default: not there
        if key in data and data[key] == fields[key].default:
            del data[key]
    return data


def fingerprint(cfg: RunConfig, spec: StageSpec, run: RunDir | None = None, legacy: bool = False) -> str:
    """Hash of the stage's config sections, the run seed, and the content of its input artifacts (or the digests
    the spec's ``input_digests`` gives for them), and of its external inputs (a file's bytes, a folder's listing).

    Args:
        legacy: Digest folders as synthdiv did before folder digests were content digests (names, sizes and mtimes
            one level deep), to recognise what runs made then recorded (:func:`fingerprint_matches`).
    """
    run = run or RunDir(cfg.run_dir)
    folder_digest = legacy_folder_digest if legacy else file_digest
    sections = {k.rstrip("?"): _section(cfg, k.rstrip("?")) for k in spec.sections}
    # a section named "key?" counts only when set, so adding an option does not make the runs made before it stale
    sections = {k: v for k, v in sections.items() if v or f"{k}?" not in spec.sections}
    parts: dict[str, Any] = {"seed": cfg.seed, "sections": sections}
    inputs = {}
    given = spec.input_digests(run) if spec.input_digests else {}
    for name in (*spec.inputs, *spec.optional_inputs):
        path = getattr(run, name)
        if path.exists():
            inputs[name] = given.get(name) or folder_digest(path)
    parts["inputs"] = inputs
    if spec.external:
        external_digest = legacy_folder_digest if legacy else listing_digest
        parts["external"] = {str(p): external_digest(p) for p in spec.external(cfg) if Path(p).exists()}
    return canonical_hash(parts)


def _has_folders(cfg: RunConfig, spec: StageSpec, run: RunDir) -> bool:
    """Whether a fingerprint of the stage digests a folder (only then does the earlier digest differ)."""
    inputs = (getattr(run, n) for n in (*spec.inputs, *spec.optional_inputs))
    external = (Path(p) for p in (spec.external(cfg) if spec.external else ()))
    return any(p.is_dir() for p in (*inputs, *external))


def fingerprint_matches(cfg: RunConfig, spec: StageSpec, run: RunDir, state: StageState,
                        current: str | None = None) -> bool:
    """Whether ``state`` was recorded with the stage's current fingerprint (``current`` when already computed).

    A state recorded before folder digests were content digests matches too when its fingerprint is the one the
    earlier digest gives now, on the filesystem it was made on: upgrading synthdiv does not make a finished run stale.
    """
    if state.status == "damaged":
        return False
    if state.fingerprint == (current or fingerprint(cfg, spec, run)):
        return True
    return _has_folders(cfg, spec, run) and state.fingerprint == fingerprint(cfg, spec, run, legacy=True)


def is_done(cfg: RunConfig, spec: StageSpec, run: RunDir) -> bool:
    """Whether the stage is done with its current fingerprint (a rerun would be a no-op)."""
    state = run.read_state(spec.name)
    return state is not None and state.status == "done" and fingerprint_matches(cfg, spec, run, state)


def summary_text(summary: dict[str, Any], empty: str = "no summary") -> str:
    """The scalar entries of a stage summary, ``key=value`` on one line (nested ones are in the state file)."""
    return ", ".join(f"{k}={v}" for k, v in summary.items() if not isinstance(v, dict | list)) or empty


def summary_line(spec: StageSpec, summary: dict[str, Any], empty: str = "no summary") -> str:
    """A stage's summary on one line: its spec's ``headline`` where it has one, else :func:`summary_text`."""
    if spec.headline is not None and summary:
        try:
            line = spec.headline(summary)
        except Exception:  # a summary of an older version must not stop the log or ``status``
            logger.debug("stage %s: no headline for its summary", spec.name, exc_info=True)
            line = ""
        if line:
            return line
    return summary_text(summary, empty)


def lost_outputs(cfg: RunConfig, spec: StageSpec, run: RunDir) -> bool:
    """Whether a stage recorded as done has lost part of its outputs since (a deleted or truncated shard)."""
    return spec.complete is not None and not spec.complete(cfg, run)


@dataclass
class StageStatus:
    stage: str
    state: str  # not started | partial | done | stale | damaged
    detail: str = ""


def stage_status(cfg: RunConfig) -> list[StageStatus]:
    """The state of every stage of the run (no stage is run and nothing is written)."""
    run = RunDir(cfg.run_dir)
    rows = []
    for spec in STAGES:
        state = run.read_state(spec.name)
        if state is None:
            rows.append(StageStatus(spec.name, "not started"))
            continue
        if state.status == "damaged":
            rows.append(StageStatus(spec.name, "damaged", run.damaged_text(state)))
            continue
        detail = ""
        if spec.progress:
            detail = spec.progress(cfg, run) or ""
        if all(getattr(run, i).exists() for i in spec.inputs) and not fingerprint_matches(cfg, spec, run, state):
            rows.append(StageStatus(spec.name, "stale", "config or inputs changed since it ran"))
        elif state.status == "done" and lost_outputs(cfg, spec, run):
            rows.append(StageStatus(spec.name, "partial", f"{detail}; not complete since it was done (outputs lost or "
                                    f"damaged, or planned work added): run `synthdiv {spec.name}` to make the rest"))
        elif state.status == "done":
            headline = summary_line(spec, state.summary or {}, empty="") if spec.headline else ""
            rows.append(StageStatus(spec.name, "done", headline or detail or summary_text(state.summary or {}, "")))
        else:
            live = _live_progress(run, spec.name, state.started_at)
            rows.append(StageStatus(spec.name, "partial", "; ".join(p for p in (detail, live) if p)))
    return rows


def _live_progress(run: RunDir, name: str, since: float) -> str:
    """Rate, ETA and the last sign of progress of a running stage, from its heartbeat files (all ranks)."""
    beats = read_heartbeats(run.root, name, since)
    tasks = [t for b in beats for t in b.get("tasks", [])[-1:]]  # each process's latest loop
    if not tasks:
        return ""
    done = sum(t.get("done") or 0 for t in tasks)
    total = sum(t.get("total") or 0 for t in tasks)
    rate = sum(t.get("rate") or 0 for t in tasks)
    last = max(max(t.get("last_progress") or 0 for t in tasks), 0)
    parts = [f"{tasks[0].get('description', name)}: {done:,.0f}" + (f"/{total:,.0f}" if total else "")]
    if rate:
        parts.append(human_rate(rate, tasks[0].get("unit") or ""))
        if total:
            parts.append(f"ETA {human_duration(max(0.0, total - done) / rate)}")
    parts += _counters(tasks)
    busy = [(t["busy"], float(t.get("busy_since") or time.time())) for t in tasks if t.get("busy")]
    if busy:
        parts.append(f"{busy[0][0]} for {human_duration(max(0.0, time.time() - min(b for _, b in busy)))}")
    parts.append(f"last progress {human_duration(max(0.0, time.time() - last))} ago"
                 + (f" ({len(beats)} processes)" if len(beats) > 1 else ""))
    return ", ".join(parts)


def _counters(tasks: list[dict[str, Any]]) -> list[str]:
    """``["4/10 requests", "2,345 tokens at 52 tokens/s"]``: the tasks' counters summed over processes."""
    sums: dict[str, list[float]] = {}
    for t in tasks:
        counters = t.get("counters")
        for name, c in (counters.items() if isinstance(counters, dict) else ()):
            if isinstance(c, dict):
                acc = sums.setdefault(str(name), [0.0, 0.0, 0.0])
                for k, key in enumerate(("done", "total", "rate")):
                    acc[k] += float(c.get(key) or 0)
    return [f"{done:,.0f}" + (f"/{total:,.0f}" if total else "") + f" {name}"
            + (f" at {human_rate(rate, name)}" if rate and not total else "")
            for name, (done, total, rate) in sums.items()]
