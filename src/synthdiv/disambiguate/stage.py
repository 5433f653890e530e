"""The disambiguate stage: one unambiguous description per class (Yu et al., 2023, label ambiguity resolution).

For each class the LLM proposes K descriptions from the name, the definition and the names of the most confusable
other classes; the name itself is always a candidate. CLIP scores every candidate against the class's real images
with a margin against the other classes' images (or against the definition when there are no images), the best
wins, and the winners are made unique across the class list. An LLM failure for a class keeps its name (status
"fallback") and the stage goes on.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdiv.disambiguate.confusable import confusable_classes, mentions_name
from synthdiv.disambiguate.scoring import ClassImages, mean_image_embedding, sample_images, score_candidates
from synthdiv.disambiguate.unique import Pick, make_unique, text_key
from synthdiv.errors import InputError
from synthdiv.run import RunDir, atomic_write_jsonl, canonical_hash
from synthdiv.schemas import CLASS_FIELDS

if TYPE_CHECKING:
    from synthdiv.clip import ImageTextScorer
    from synthdiv.config import DisambiguateConfig, RunConfig
    from synthdiv.llm import LLM

logger = logging.getLogger(__name__)

__all__ = ["resolve_classes", "read_classes", "Proposal", "propose"]

TEMPLATE = "disambiguate.v2"
# "[description]", "<class name>", "{name}": a small model copying the shape of an instruction.
_PLACEHOLDER = re.compile(r"[\[<{][^\]>}]*[\]>}]")
# "Description: ...", "A: ...", "Answer 2: ...": a label a small model puts before its item.
_LABEL = re.compile(r"^\s*(?:description|answer|output|item|a|q)\s*\d*\s*:\s*", re.IGNORECASE)
# Backend errors (not bad answers) on this many classes in a row, from the first class on, stop the stage.
_FAIL_FAST = 3


def read_classes(path: Path) -> list[dict[str, Any]]:
    """``classes.jsonl`` rows, checked for the fields of :data:`~synthdiv.schemas.CLASS_FIELDS`."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not a JSON object ({exc.msg})") from None
            missing = [f for f in CLASS_FIELDS if not isinstance(row, dict) or f not in row]
            if missing:
                raise InputError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}; expected {CLASS_FIELDS}")
            if not isinstance(row["name"], str) or not row["name"].strip():
                raise InputError(f"{path}:{lineno}: field 'name' must be a non-empty string, got {row['name']!r}")
            rows.append(row)
    if not rows:
        raise InputError(f"{path}: no classes; run `synthdiv classes --redo` with a class list that has some")
    return rows


@dataclass
class Proposal:
    """What the LLM proposed for one class."""

    items: list[str] = field(default_factory=list)
    ok: bool = False
    attempts: int = 0
    error: str | None = None
    template_id: str | None = None
    rejected: list[tuple[str, str]] = field(default_factory=list)


def propose(llm: LLM, row: dict[str, Any], others: list[str], dcfg: DisambiguateConfig, seed: int) -> Proposal:
    """Ask ``llm`` for ``dcfg.candidates`` descriptions of the class ``row``; never raises on a bad answer."""
    from synthdiv.llm.structured import ask_list
    from synthdiv.llm.templates import render

    name = row["name"]
    messages, template_id = render(
        TEMPLATE, name=name, definition=row.get("definition"), others=others, k=dcfg.candidates
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
        if dcfg.require_name and not mentions_name(item, name):
            return f"does not name the class ({name})"
        return None

    answer = ask_list(
        llm, messages, n_items=dcfg.candidates, min_len=2, max_len=200, max_retries=dcfg.max_retries,
        temperature=dcfg.temperature, seed=seed, max_tokens=dcfg.max_tokens or 48 * dcfg.candidates + 32,
        validate=validate,
    )
    return Proposal(
        list(answer.items), bool(answer.items), answer.attempts, answer.error, template_id, list(answer.rejected)
    )


def _class_seed(root: int, row: dict[str, Any]) -> int:
    return int(canonical_hash([root, row.get("wnid"), row["name"], row["index"]])[:8], 16)


def _progress() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    )


def _embed_real_images(
    cfg: RunConfig, rows: list[dict[str, Any]], scorer: ImageTextScorer, progress: Any
) -> list[ClassImages]:
    task = progress.add_task("disambiguate: real images", total=len(rows))
    out = []
    for row in rows:
        seed = f"{cfg.seed}:{row['index']}:{row['name']}"
        limit = cfg.disambiguate.images_per_class
        files = sample_images(row.get("real_dir"), cfg.classes.image_extensions, limit, seed)
        out.append(mean_image_embedding(scorer, files))
        progress.advance(task)
    return out


def _ask_all(
    cfg: RunConfig, rows: list[dict[str, Any]], others: list[list[int]], llm: LLM, progress: Any
) -> list[Proposal]:
    task = progress.add_task("disambiguate: LLM candidates", total=len(rows))
    proposals: list[Proposal] = []
    raised = 0
    for row, near in zip(rows, others, strict=True):
        names = [rows[j]["name"] for j in near]
        try:
            proposal = propose(llm, row, names, cfg.disambiguate, _class_seed(cfg.seed, row))
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


def _candidate_texts(row: dict[str, Any], proposal: Proposal) -> list[tuple[str, str]]:
    """``(text, source)``: the name first, then the LLM's items that are not the name again."""
    out, seen = [(row["name"], "name")], {text_key(row["name"])}
    for raw in proposal.items:
        item = _LABEL.sub("", raw).strip() or raw
        if text_key(item) not in seen:
            seen.add(text_key(item))
            out.append((item, "llm"))
    return out


def _score_all(
    cfg: RunConfig,
    rows: list[dict[str, Any]],
    images: list[ClassImages],
    candidates: list[list[tuple[str, str]]],
    scorer: ImageTextScorer,
) -> list[tuple[str, list[dict[str, Any]]]]:
    """Per class, ``(basis, candidate records ranked best first)``."""
    import numpy as np

    dcfg = cfg.disambiguate
    has_images = [im.mean is not None for im in images]
    flat = [
        dcfg.clip_template.format(text) if has_images[i] else text
        for i, cands in enumerate(candidates)
        for text, _ in cands
    ]
    embedded = scorer.embed_texts(flat)
    need_def = [i for i, row in enumerate(rows) if not has_images[i] and (row.get("definition") or "").strip()]
    definitions = dict(zip(need_def, scorer.embed_texts([rows[i]["definition"] for i in need_def]), strict=True))
    with_images = [i for i in range(len(rows)) if has_images[i]]
    means = np.stack([images[i].mean for i in with_images]) if with_images else None
    out, start = [], 0
    for i, cands in enumerate(candidates):
        texts = embedded[start : start + len(cands)]
        start += len(cands)
        keep = [k for k, j in enumerate(with_images) if j != i]
        basis, scores = score_candidates(
            texts,
            images[i].mean,
            means[keep] if means is not None and keep else None,
            [with_images[k] for k in keep],
            definitions.get(i),
            dcfg.margin_weight,
        )
        records = [
            {"text": text, "source": source, **score.as_dict()}
            for (text, source), score in zip(cands, scores, strict=True)
        ]
        order = sorted(range(len(records)), key=lambda k: (records[k]["score"] is None, -(records[k]["score"] or 0), k))
        ranked = [{**records[k], "rank": r} for r, k in enumerate(order)]
        out.append((basis, ranked))
    return out


def _resolved_row(
    row: dict[str, Any],
    basis: str,
    ranked: list[dict[str, Any]],
    proposal: Proposal,
    pick: Pick,
    llm_id: str,
    confusable: list[str],
    images_used: int,
) -> dict[str, Any]:
    """One line of ``classes.resolved.jsonl``: the RESOLVED_FIELDS, then provenance of the choice."""
    if pick.rank is None:  # a made-up unique text is recorded as a candidate too
        ranked = [*ranked, {"text": pick.text, "source": "unique", "score": None, "rank": len(ranked)}]
    return {
        **{f: row.get(f) for f in CLASS_FIELDS},
        "description": pick.text,
        "candidates": ranked,
        "status": "ok" if proposal.ok else "fallback",
        "llm_id": llm_id,
        "template_id": proposal.template_id,
        "basis": basis,
        "chosen_by": pick.reason,
        "confusable": confusable,
        "real_images_used": images_used,
        "llm_attempts": proposal.attempts,
        "llm_error": proposal.error,
        "llm_rejected": [list(r) for r in proposal.rejected],
    }


def _disabled(rows: list[dict[str, Any]], run: RunDir) -> dict[str, Any]:
    resolved = [
        {
            **{f: row.get(f) for f in CLASS_FIELDS},
            "description": row["name"],
            "candidates": [{"text": row["name"], "source": "name", "score": None, "rank": 0}],
            "status": "disabled",
            "llm_id": None,
            "template_id": None,
        }
        for row in rows
    ]
    atomic_write_jsonl(run.resolved, resolved)
    logger.info("disambiguation is disabled: %d classes keep their names", len(rows))
    return {"classes": len(rows), "changed": 0, "fallbacks": 0, "disabled": True,
            "llm_cache_hits": 0, "llm_cache_misses": 0}


def resolve_classes(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """Write ``classes.resolved.jsonl``: every class with its chosen description and all scored candidates.

    Args:
        cfg: The run config (``disambiguate``, ``models.llm``, ``models.clip``, ``classes.image_extensions``).
        run: The run directory; reads ``classes.jsonl``, caches LLM answers under ``cache/llm``.

    Returns:
        Counts: classes, changed (description differs from the name), fallbacks (no LLM candidates), made_unique
        (took a lower-ranked or extended text to stay unique), LLM calls and cache hits / misses.

    Raises:
        InputError: ``classes.jsonl`` is empty or a row lacks a field.
        Exception: Whatever the LLM backend raised, when it failed on each of the first classes (it is broken,
            not merely answering badly); later failures only make their class a fallback.
    """
    rows = read_classes(run.classes)
    if not cfg.disambiguate.enabled:
        return _disabled(rows, run)
    from synthdiv.clip import create_scorer
    from synthdiv.llm import create_llm

    scorer = create_scorer(cfg.models.clip)
    llm = create_llm(cfg.models.llm, cache_dir=run.cache / "llm")
    with _progress() as progress:
        images = _embed_real_images(cfg, rows, scorer, progress)
        names = [row["name"] for row in rows]
        name_embeddings = scorer.embed_texts(names) if cfg.disambiguate.confusable and len(rows) > 1 else None
        others = confusable_classes(names, name_embeddings, cfg.disambiguate.confusable)
        proposals = _ask_all(cfg, rows, others, llm, progress)
    candidates = [_candidate_texts(row, p) for row, p in zip(rows, proposals, strict=True)]
    scored = _score_all(cfg, rows, images, candidates, scorer)
    picks = make_unique(
        [[c["text"] for c in ranked] for _, ranked in scored],
        [ranked[0]["score"] for _, ranked in scored],
        [row.get("definition") for row in rows],
        [row.get("wnid") for row in rows],
    )
    resolved = [
        _resolved_row(row, *scored[i], proposals[i], picks[i], llm.model_id, [rows[j]["name"] for j in others[i]],
                      len(images[i].files))
        for i, row in enumerate(rows)
    ]
    atomic_write_jsonl(run.resolved, resolved)
    stats = getattr(llm, "stats", None)
    summary = {
        "classes": len(rows),
        "changed": sum(r["description"] != r["name"] for r in resolved),
        "fallbacks": sum(r["status"] == "fallback" for r in resolved),
        "made_unique": sum(p.reason != "best" for p in picks),
        "llm_requests": sum(p.attempts for p in proposals),
        "llm_cache_hits": stats.hits if stats is not None else 0,
        "llm_cache_misses": stats.misses if stats is not None else 0,
        **{f"basis_{k}": v for k, v in sorted(Counter(b for b, _ in scored).items())},
    }
    logger.info("disambiguate: %s", ", ".join(f"{k}={v}" for k, v in summary.items()))
    return summary
