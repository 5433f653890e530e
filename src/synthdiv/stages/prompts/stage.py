"""The prompts stage: read ``classes.resolved.jsonl``, gather styles (SD) and contexts (CD) from the LLM, compose
every class's prompts and write ``styles.json`` and ``prompts.parquet``.

The LLM is asked only for what the config uses: no contexts when neither the context kind nor styled contexts
have a share, no styles when the style kind has none, and no shared styles when ``prompts.styles_file`` names a
vocabulary to reuse; built-in styles fill what the LLM could not give of the shared vocabulary
(:data:`~synthdiv.stages.prompts.styles.BUILTIN_STYLES`). Classes that end up with fewer contexts than
``prompts.contexts_per_class`` are reported (log and summary) with how many they lack. LLM answers are cached
under ``cache/llm`` in the run, so a rerun with the same config gives byte-identical artifacts.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import PROMPT_KINDS, PROMPTS_SCHEMA, with_format
from synthdiv.models.captions import create_captioner
from synthdiv.models.clip import create_scorer
from synthdiv.models.llm import create_llm
from synthdiv.models.llm.progress import llm_progress
from synthdiv.stages.disambiguate.reader import confusable_names, read_resolved
from synthdiv.stages.prompts.compose import ClassPrompts, compose_class
from synthdiv.stages.prompts.contexts import CONTEXTS_TEMPLATE, collect_contexts_many
from synthdiv.stages.prompts.grounded import (
    CAPTION_CONTEXTS_TEMPLATE,
    TARGET_STYLES_TEMPLATE,
    caption_contexts_many,
    collect_target_styles,
    grounded_needs,
)
from synthdiv.stages.prompts.styles import (
    STYLES_TEMPLATE,
    builtin_styles,
    collect_class_styles_many,
    collect_styles,
    load_styles,
    styles_document,
)
from synthdiv.utils.io import atomic_write_json, write_parquet_atomic
from synthdiv.utils.progress import Progress

if TYPE_CHECKING:
    from pathlib import Path

    from synthdiv.config.root import RunConfig

logger = logging.getLogger(__name__)

__all__ = ["build", "run_prompts_stage"]


def _needs(cfg: RunConfig) -> tuple[bool, bool]:
    p = cfg.prompts
    share = {k: p.proportions.get(k, 0.0) > 0 for k in ("base", "context", "style")}
    want_contexts = p.contexts_per_class > 0 and (share["context"] or (share["style"] and p.style_contexts > 0))
    want_styles = share["style"] and (p.styles > 0 or p.styles_per_class > 0 or p.styles_file is not None)
    return want_contexts, want_styles


def _shared_styles(cfg: RunConfig, llm: Any, scorer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(styles.json document, summary part) for the shared vocabulary: reused from a file or asked."""
    p = cfg.prompts
    if p.styles_file is not None:
        doc = load_styles(p.styles_file)
        if len(doc["styles"]) < p.styles:
            logger.warning("%s has %d styles, prompts.styles asks %d: using them all", p.styles_file,
                           len(doc["styles"]), p.styles)
        doc = styles_document(doc["styles"][: p.styles], doc.get("llm_id"), doc.get("template_id"), p.styles,
                              doc["per_class"], doc["builtin"])
        return doc, {"styles": len(doc["styles"]), "styles_reused_from": str(p.styles_file)}
    with llm_progress("prompts: LLM styles", 1):
        got = collect_styles(llm, p.styles, p, cfg.seed, scorer)
    builtin = builtin_styles(got.shortfall, cfg.seed, exclude=got.items)  # the LLM's gap, filled (and marked)
    if got.shortfall:
        logger.warning("style vocabulary: %d of %d styles from the LLM (%s); %d built-in styles fill the gap",
                       len(got.items), p.styles, _reasons(got.dropped), len(builtin))
    doc = styles_document(got.items + builtin, llm.model_id if got.requests else None,
                          got.template_id or STYLES_TEMPLATE, p.styles, {}, builtin)
    return doc, {"styles": len(doc["styles"]), "styles_short": p.styles - len(doc["styles"]),
                 "styles_builtin": len(builtin), "llm_requests": got.requests}


def _reasons(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {why}" for why, n in sorted(counter.items())) or "no items dropped"


def build(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """Build ``styles.json`` and ``prompts.parquet`` for every resolved class; returns the stage summary."""
    import pyarrow as pa


    classes = read_resolved(run.resolved)
    p = cfg.prompts
    want_contexts, want_styles = _needs(cfg)
    want_cc, want_ts = grounded_needs(cfg)  # caption-context, target-style (captioner + LLM)
    asks_llm = want_contexts or (want_styles and ((p.styles > 0 and p.styles_file is None) or p.styles_per_class))
    asks_llm = asks_llm or want_cc or want_ts
    llm = scorer = None
    if asks_llm:
        llm = create_llm(cfg.models.llm, cache_dir=run.cache / "llm")
        if p.clip_dedup:
            scorer = create_scorer(cfg.models.clip)
    summary: dict[str, Any] = {"classes": len(classes), "llm_requests": 0}
    doc = styles_document([], None, None, p.styles, {})
    if want_styles:
        doc, part = _shared_styles(cfg, llm, scorer)
        summary["llm_requests"] += part.pop("llm_requests", 0)
        summary.update(part)
    own_styles = _class_styles(cfg, llm, scorer, classes, dict(doc["per_class"]), summary) if want_styles else {}
    doc["per_class"] = {}

    rows: list[dict[str, Any]] = []
    short: dict[str, int] = {}
    dropped: Counter[str] = Counter()
    fixed: Counter[str] = Counter()
    # every class's context requests go to the LLM together (batched / concurrent), round by round
    contexts: list[Any] = []
    if want_contexts:
        with llm_progress("prompts: LLM contexts", len(classes)):
            contexts = collect_contexts_many(llm, [(r["description"].strip(), r["index"]) for r in classes], p,
                                             cfg.seed, scorer)
    with llm_progress("prompts: grounded contexts and styles") if want_cc or want_ts else contextlib.nullcontext():
        grounded, target = _grounded(cfg, run, llm, scorer, classes, want_cc, want_ts, summary)
    if target is not None:
        doc["target_styles"] = {"styles": target.items, "llm_id": llm.model_id, "template_id": TARGET_STYLES_TEMPLATE,
                                "images": str(cfg.prompts.target_images)}
    with Progress(transient=True) as progress:
        task = progress.add_task("writing prompts", total=len(classes))
        for k, row in enumerate(classes):
            cp = ClassPrompts(row["index"], row["name"], row["description"].strip())
            cp.negative_names = confusable_names(row, p.negative_confusable) if p.negative_confusable else []
            if want_contexts:
                got = contexts[k]
                cp.contexts, cp.contexts_template = got.items, CONTEXTS_TEMPLATE
                cp.contexts_llm = llm.model_id
                summary["llm_requests"] += got.requests
                dropped.update(got.dropped)
                fixed.update(got.fixed)
                if got.shortfall:
                    short[cp.name] = got.shortfall
                    logger.warning("class %r: %d of %d contexts (%s)", cp.name, len(got.items), got.wanted,
                                   _reasons(got.dropped))
            if want_styles:
                cp.styles, cp.styles_llm, cp.styles_template = list(doc["styles"]), doc["llm_id"], doc["template_id"]
                cp.builtin_styles = list(doc["builtin"])
                own = own_styles.get(cp.name)
                if own is not None:
                    doc["per_class"][cp.name] = own
                    cp.own_styles, cp.own_styles_llm = own["styles"], own.get("llm_id")
                    cp.own_styles_template = own.get("template_id")
            if grounded and grounded[k] is not None:
                cp.caption_contexts, cp.caption_contexts_template = grounded[k].items, CAPTION_CONTEXTS_TEMPLATE
                cp.caption_contexts_llm = llm.model_id
            if target is not None:
                cp.target_styles, cp.target_styles_llm = list(target.items), llm.model_id
                cp.target_styles_template = TARGET_STYLES_TEMPLATE
            rows.extend(compose_class(cp, p, dropped))
            progress.advance(task)

    table = pa.Table.from_pylist(rows, schema=PROMPTS_SCHEMA)
    atomic_write_json(run.styles, doc)
    write_parquet_atomic(table.replace_schema_metadata(with_format(table.schema, "prompts").metadata), run.prompts)
    kinds = Counter(r["kind"] for r in rows)
    if short:
        logger.warning("%d of %d classes fell short of %d contexts, %d contexts missing in all", len(short),
                       len(classes), p.contexts_per_class, sum(short.values()))
    summary.update({
        "prompts": len(rows),
        # the grounded kinds are listed when the config gives them a share (older summaries keep their three keys)
        "by_kind": {k: kinds.get(k, 0) for k in PROMPT_KINDS if k in PROMPT_KINDS[:3] or p.proportions.get(k, 0) > 0},
        "classes_short": len(short),
        "contexts_missing": short,
        "dropped": dict(sorted(dropped.items())),
        "fixed": dict(sorted(fixed.items())),
        "llm_id": getattr(llm, "model_id", None),
    })
    logger.info("wrote %d prompts for %d classes (%s)", len(rows), len(classes), summary["by_kind"])
    return summary


def _grounded(
    cfg: RunConfig, run: RunDir, llm: Any, scorer: Any, classes: list[dict[str, Any]], want_cc: bool, want_ts: bool,
    summary: dict[str, Any],
) -> tuple[list[Any], Any]:
    """Caption-grounded contexts per class and target-domain styles (:mod:`synthdiv.stages.prompts.grounded`)."""
    if not (want_cc or want_ts):
        return [], None

    captioner = create_captioner(cfg.models.captioner)
    grounded = caption_contexts_many(llm, captioner, classes, cfg, run, scorer) if want_cc else []
    target = collect_target_styles(llm, captioner, cfg, run, scorer) if want_ts else None
    summary["llm_requests"] += sum(g.requests for g in grounded if g is not None) + (target.requests if target else 0)
    if want_cc:
        summary["caption_contexts"] = sum(len(g.items) for g in grounded if g is not None)
    if target is not None:
        summary["target_styles"] = len(target.items)
        if target.shortfall:
            logger.warning("target styles: %d of %d (%s)", len(target.items), cfg.prompts.target_styles,
                           _reasons(target.dropped))
    summary["captioner_id"] = captioner.captioner_id
    return grounded, target


def _class_styles(
    cfg: RunConfig, llm: Any, scorer: Any, classes: list[dict[str, Any]], reused: dict[str, Any],
    summary: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Each class's own styles (``prompts.styles_per_class``), by class name: reused from the styles file, else
    asked, every class's requests sent together."""
    wanted = cfg.prompts.styles_per_class
    if wanted == 0:
        return {}
    out = {r["name"]: {**reused[r["name"]], "styles": reused[r["name"]]["styles"][:wanted]}
           for r in classes if r["name"] in reused}
    ask = [r for r in classes if r["name"] not in reused]
    asked: list[Any] = []
    if ask:
        with llm_progress("prompts: LLM styles per class", len(ask)):
            asked = collect_class_styles_many(llm, wanted, [(r["description"].strip(), r["index"]) for r in ask],
                                              cfg.prompts, cfg.seed, scorer)
    for row, got in zip(ask, asked, strict=True):
        summary["llm_requests"] += got.requests
        if got.shortfall:
            logger.warning("class %r: %d of %d own styles", row["name"], len(got.items), wanted)
        out[row["name"]] = {"styles": got.items, "llm_id": llm.model_id, "template_id": got.template_id}
    return out


def external_inputs(cfg: RunConfig) -> list[Path]:
    """Files outside the run that the prompts stage reads (a reused ``prompts.styles_file``): their bytes enter
    the stage's fingerprint, so an edited styles file makes the stage stale."""
    paths = [cfg.prompts.styles_file] if cfg.prompts.styles_file is not None else []
    if cfg.prompts.target_images is not None:  # a folder: its listing (names, sizes, mtimes) enters the fingerprint
        paths.append(cfg.prompts.target_images)
    return paths


run_prompts_stage = build  # the name callers used in synthdiv 0.1
build_prompts = build  # the name callers used in synthdiv 0.1
