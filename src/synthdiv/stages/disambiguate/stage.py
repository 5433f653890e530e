"""The disambiguate stage: one unambiguous description per class (Yu et al., 2023, label ambiguity resolution).

First it finds the ambiguous names, each with its reason (:mod:`~synthdiv.stages.disambiguate.ambiguity`: names that
collide under the CLIP tokenizer, differ only by number, or have several WordNet senses). Every class gets LLM
candidates, asked with its definition, the confusable classes and the name's other senses, and checked
(:mod:`~synthdiv.stages.disambiguate.validate`); an ambiguous class also gets grounded candidates from WordNet
(:mod:`~synthdiv.stages.disambiguate.grounded`). CLIP scores every candidate against the class's real images with a
margin against the other classes' images (or against the definition when there are no images); the rule
(:mod:`~synthdiv.stages.disambiguate.rule`) picks, and the picks are made unique across the list, in words and in CLIP
tokens. An ambiguous class never keeps its bare name; an unambiguous one may. An LLM failure for a class is recorded
(status "fallback") and the stage goes on.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import CLASS_FIELDS, CLASS_SENSE_FIELDS
from synthdiv.models.clip import create_scorer
from synthdiv.models.llm import create_llm
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.disambiguate.ambiguity import Ambiguity, detect_ambiguity, sense_of, token_ids_of
from synthdiv.stages.disambiguate.confusable import confusable_classes
from synthdiv.stages.disambiguate.grounded import grounded_candidates
from synthdiv.stages.disambiguate.llm_sense import ask_llm_senses
from synthdiv.stages.disambiguate.propose import Proposal, ask_all, strip_label
from synthdiv.stages.disambiguate.rule import Choice, choose_order
from synthdiv.stages.disambiguate.scoring import ClassImages, mean_image_embedding, sample_images, score_candidates
from synthdiv.stages.disambiguate.senses import SenseChoice
from synthdiv.stages.disambiguate.settle import settle_senses, undecided_hint, with_sense
from synthdiv.stages.disambiguate.unique import Pick, make_token_unique, make_unique, text_key
from synthdiv.stages.disambiguate.validate import CandidateCheck, ClassNames
from synthdiv.utils.decode import SkipTally, max_pixels_of
from synthdiv.utils.io import atomic_write_jsonl
from synthdiv.utils.progress import Progress

if TYPE_CHECKING:
    import numpy as np

    from synthdiv.config.root import RunConfig
    from synthdiv.models.clip.base import ImageTextScorer
    from synthdiv.models.llm.base import LLM

logger = logging.getLogger(__name__)

__all__ = ["build", "resolve_classes"]

def _progress() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn


    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    )


def _embed_real_images(
    cfg: RunConfig, rows: list[dict[str, Any]], scorer: ImageTextScorer, progress: Any, skipped: SkipTally
) -> list[ClassImages]:
    task = progress.add_task("disambiguate: real images", total=len(rows))
    out = []
    for row in rows:
        seed = f"{cfg.seed}:{row['index']}:{row['name']}"
        limit = cfg.disambiguate.images_per_class
        files = sample_images(row.get("real_dir"), cfg.classes.image_extensions, limit, seed)
        out.append(mean_image_embedding(scorer, files, max_pixels_of(cfg), skipped, row["index"]))
        progress.advance(task)
    return out


def _candidate_texts(
    row: dict[str, Any], proposal: Proposal, grounded: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """``(text, source)``: the name first, then the grounded candidates, then the LLM's items, without repeats."""
    out, seen = [(row["name"], "name")], {text_key(row["name"])}
    items = [(text, source) for text, source in grounded]
    items += [(strip_label(raw), "llm") for raw in proposal.items]
    for item, source in items:
        if text_key(item) not in seen:
            seen.add(text_key(item))
            out.append((item, source))
    return out


def _rejections(
    cands: list[tuple[str, str]],
    amb: Ambiguity,
    tokens: list[tuple[int, ...]],
    name_tokens: dict[tuple[int, ...], int],
    index: int,
    names: list[str],
) -> list[str | None]:
    """Why each candidate of an ambiguous class may not be chosen (None: it may)."""
    out: list[str | None] = []
    for (_, source), ids in zip(cands, tokens, strict=True):
        if not amb.ambiguous:
            out.append(None)
        elif source == "name":
            out.append("ambiguous bare name: " + "; ".join(amb.reasons))
        elif name_tokens.get(ids, index) != index:
            out.append(f"same CLIP tokens as the name of class {name_tokens[ids]} ({names[name_tokens[ids]]})")
        else:
            out.append(None)
    return out


def _score_all(
    cfg: RunConfig,
    rows: list[dict[str, Any]],
    images: list[ClassImages],
    candidates: list[list[tuple[str, str]]],
    others: list[list[int]],
    scorer: ImageTextScorer,
) -> list[tuple[str, list[dict[str, Any]]]]:
    """Per class, ``(basis, candidate records ranked best first)``.

    Every record has ``margin``: with images, its similarity to the own images minus the best to another class's;
    with a definition only, its similarity to the definition minus the best to a confusable class's definition (or
    name). The margin is what tells whether CLIP has signal for an ambiguous class.
    """
    import numpy as np

    dcfg = cfg.disambiguate
    has_images = [im.mean is not None for im in images]
    flat = [
        dcfg.clip_template.format(text) if has_images[i] else text
        for i, cands in enumerate(candidates)
        for text, _ in cands
    ]
    embedded = scorer.embed_texts(flat)
    refs = scorer.embed_texts([(row.get("definition") or "").strip() or row["name"] for row in rows])
    has_def = [bool((row.get("definition") or "").strip()) for row in rows]
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
            refs[i] if has_def[i] else None,
            dcfg.margin_weight,
        )
        records = [
            {"text": text, "source": source, **score.as_dict()}
            for (text, source), score in zip(cands, scores, strict=True)
        ]
        _add_margins(records, basis, texts, refs, others[i])
        order = sorted(range(len(records)), key=lambda k: (records[k]["score"] is None, -(records[k]["score"] or 0), k))
        ranked = [{**records[k], "rank": r} for r, k in enumerate(order)]
        out.append((basis, ranked))
    return out


def _add_margins(
    records: list[dict[str, Any]], basis: str, texts: np.ndarray, refs: np.ndarray, confusable: list[int]
) -> None:
    if basis == "images":
        for r in records:
            other = r.get("other_similarity")
            r["margin"] = round(r["similarity"] - other, 6) if other is not None else None
        return
    if basis == "definition" and confusable:
        best_other = (texts @ refs[confusable].T).max(axis=1)
        for r, other in zip(records, best_other, strict=True):
            r["margin"] = round(float(r["similarity"] - other), 6)
        return
    for r in records:
        r["margin"] = None


def _resolved_row(
    row: dict[str, Any],
    scored: tuple[str, list[dict[str, Any]]],
    proposal: Proposal,
    choice: Choice,
    pick: Pick,
    amb: Ambiguity,
    llm_id: str | None,
    confusable: list[str],
    images_used: int,
    sense: SenseChoice | None,
) -> dict[str, Any]:
    """One line of ``classes.resolved.jsonl``: the RESOLVED_FIELDS, then provenance of the choice."""
    basis, ranked = scored
    if pick.rank is None:  # a made-up unique text is recorded as a candidate too
        ranked = [*ranked, {"text": pick.text, "source": "unique", "score": None, "rank": len(ranked)}]
    chosen = next((c for c in ranked if c["text"] == pick.text), None)
    second = next((c for c in ranked if c["text"] != pick.text and c.get("rejected") is None), None)
    margin = None
    if chosen and second and chosen.get("score") is not None and second.get("score") is not None:
        margin = round(chosen["score"] - second["score"], 6)
    status = "ok" if proposal.ok else ("no-llm" if llm_id is None else "fallback")
    return {
        **{f: row.get(f) for f in CLASS_FIELDS},
        "description": pick.text,
        "candidates": ranked,
        "status": status,
        "llm_id": llm_id,
        "template_id": proposal.template_id,
        **{f: row.get(f) for f in CLASS_SENSE_FIELDS},
        "ambiguity": amb.as_dict() if amb.ambiguous else None,
        "sense": _sense_record(sense),
        "basis": basis,
        "chosen_by": choice.reason if pick.reason == "best" else f"{choice.reason}; {pick.reason}",
        "runner_up": second["text"] if second else None,
        "margin": margin,
        "bare": amb.ambiguous and text_key(pick.text) == text_key(row["name"]),
        "confusable": confusable,
        "real_images_used": images_used,
        "llm_attempts": proposal.attempts,
        "llm_error": proposal.error,
        "llm_rejected": [list(r) for r in proposal.rejected],
    }


def _sense_record(choice: SenseChoice | None) -> dict[str, Any] | None:
    """The settled sense as ``classes.resolved.jsonl`` records it: which evidence, how strong, the gloss."""
    if choice is None:
        return None

    own = sense_of(choice.wnid) if choice.wnid else None
    return {**choice.as_dict(), "gloss": own.gloss if own else None, "hypernym": own.hypernym if own else None,
            "lemmas": list(own.lemmas) if own else []}


def _warn_undecided(rows: list[dict[str, Any]], senses: list[SenseChoice | None]) -> None:
    for row, choice in zip(rows, senses, strict=True):
        if choice is not None and not choice.decided:
            logger.warning("%s", undecided_hint(row, choice))


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


def build(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """Write ``classes.resolved.jsonl``: every class with its chosen description and all scored candidates.

    Args:
        cfg: The run config (``disambiguate``, ``models.llm``, ``models.clip``, ``classes.image_extensions``).
        run: The run directory; reads ``classes.jsonl``, caches LLM answers under ``cache/llm``.

    Returns:
        Counts: classes, changed (description differs from the name), fallbacks (no LLM candidates), made_unique
        (took a lower-ranked or extended text to stay unique), ambiguous classes by reason and how they were
        settled, ``left_bare`` (ambiguous classes that kept their name: no candidate at all), LLM calls and cache
        hits / misses.

    Raises:
        InputError: ``classes.jsonl`` is empty or a row lacks a field.
        Exception: Whatever the LLM backend raised, when it failed on each of the first classes (it is broken,
            not merely answering badly); later failures only make their class a fallback.
    """
    rows = read_classes(run.classes)
    if not cfg.disambiguate.enabled:
        return _disabled(rows, run)

    scorer = create_scorer(cfg.models.clip)
    llm = _llm(cfg, run)
    names = [row["name"] for row in rows]
    token_ids = token_ids_of(scorer)
    ambiguity = detect_ambiguity(rows, token_ids)
    class_names = ClassNames(names)
    skipped = SkipTally()
    with _progress() as progress:
        images = _embed_real_images(cfg, rows, scorer, progress, skipped)
        senses = settle_senses(rows, ambiguity, images, scorer, cfg.disambiguate.clip_template)
        if llm is not None:
            senses = ask_llm_senses(llm, rows, senses, cfg.seed)
        sense_rows = [with_sense(row, amb, c) for row, amb, c in zip(rows, ambiguity, senses, strict=True)]
        _warn_undecided(rows, senses)
        checks = _checks(sense_rows, ambiguity, class_names)
        name_embeddings = scorer.embed_texts(names) if cfg.disambiguate.confusable and len(rows) > 1 else None
        others = confusable_classes(names, name_embeddings, cfg.disambiguate.confusable)
        others = [list(dict.fromkeys([*a.with_classes, *near]))[: max(len(near), len(a.with_classes))]
                  for a, near in zip(ambiguity, others, strict=True)]
        proposals = ask_all(cfg, sense_rows, others, checks, llm, progress)
    name_keys = set(class_names.keys)
    candidates, grounded = [], []
    for i, (row, amb) in enumerate(zip(sense_rows, ambiguity, strict=True)):
        grounded.append(grounded_candidates(row, amb, name_keys) if amb.ambiguous else [])
        candidates.append(_candidate_texts(row, proposals[i], grounded[-1]))
    scored = _score_all(cfg, rows, images, candidates, others, scorer)
    name_tokens: dict[tuple[int, ...], int] = {}
    for i, ids in enumerate(token_ids(names)):
        name_tokens.setdefault(ids, i)
    choices = []
    for i, (basis, ranked) in enumerate(scored):
        tokens = token_ids([c["text"] for c in ranked])
        cands = [(c["text"], c["source"]) for c in ranked]
        for record, why in zip(ranked, _rejections(cands, ambiguity[i], tokens, name_tokens, i, names), strict=True):
            record["rejected"] = why
        # CLIP may rank an undecided class's senses only where it settled the sense itself (it did not)
        trust_images = senses[i] is None or senses[i].decided
        choices.append(choose_order(ranked, ambiguity[i].ambiguous, basis, cfg.disambiguate.signal_margin,
                                    [text for text, _ in grounded[i]], trust_images))
    picks = make_unique(
        [c.texts for c in choices],
        [ranked[0]["score"] for _, ranked in scored],
        [row.get("definition") for row in rows],
        [row.get("wnid") for row in rows],
    )
    picks = make_token_unique(picks, token_ids, [row.get("wnid") for row in rows])
    resolved = [
        _resolved_row(row, scored[i], proposals[i], choices[i], picks[i], ambiguity[i],
                      llm.model_id if llm is not None else None, [rows[j]["name"] for j in others[i]],
                      len(images[i].files), senses[i])
        for i, row in enumerate(rows)
    ]
    atomic_write_jsonl(run.resolved, resolved)
    summary = _summary(resolved, picks, proposals, scored, llm, token_ids)
    if skipped.total:
        summary["real_unreadable"] = skipped.total
        summary["real_unreadable_note"] = skipped.line(names={row["index"]: row["name"] for row in rows})
    logger.info("disambiguate: %s", ", ".join(f"{k}={v}" for k, v in summary.items()))
    return summary


def _llm(cfg: RunConfig, run: RunDir) -> LLM | None:
    if cfg.disambiguate.candidates == 0:
        return None

    return create_llm(cfg.models.llm, cache_dir=run.cache / "llm")


def _checks(rows: list[dict[str, Any]], ambiguity: list[Ambiguity], class_names: ClassNames) -> list[CandidateCheck]:
    names = [row["name"] for row in rows]
    out = []
    for i, (row, amb) in enumerate(zip(rows, ambiguity, strict=True)):
        own = [row["name"], *(row.get("lemmas") or []), *([row["hypernym"]] if row.get("hypernym") else [])]
        same = {j for j in amb.with_classes if text_key(names[j]) == text_key(row["name"])}
        out.append(CandidateCheck(i, names, class_names, list(dict.fromkeys(own)), amb, same))
    return out


def _summary(
    resolved: list[dict[str, Any]], picks: list[Pick], proposals: list[Proposal],
    scored: list[tuple[str, list[dict[str, Any]]]], llm: LLM | None, token_ids: Any,
) -> dict[str, Any]:
    stats = getattr(llm, "stats", None)
    ambiguous = [r for r in resolved if r["ambiguity"]]
    kinds = Counter(k for r in ambiguous for k in r["ambiguity"]["kinds"])
    settled = Counter(r["chosen_by"].split(";")[0] for r in ambiguous)
    return {
        "classes": len(resolved),
        "changed": sum(r["description"] != r["name"] for r in resolved),
        "fallbacks": sum(r["status"] == "fallback" for r in resolved),
        "made_unique": sum(p.reason != "best" for p in picks),
        "ambiguous": len(ambiguous),
        **{f"ambiguous_{k}": v for k, v in sorted(kinds.items())},
        **{f"settled_{k}": v for k, v in sorted(settled.items())},
        "left_bare": sum(r["bare"] for r in resolved),
        **{f"sense_{k}": v for k, v in sorted(Counter((r["sense"] or {}).get("evidence") for r in resolved
                                                      if r["sense"]).items())},
        "distinct_token_descriptions": len(set(token_ids([r["description"] for r in resolved]))),
        "llm_requests": sum(p.attempts for p in proposals),
        "llm_cache_hits": stats.hits if stats is not None else 0,
        "llm_cache_misses": stats.misses if stats is not None else 0,
        **{f"basis_{k}": v for k, v in sorted(Counter(b for b, _ in scored).items())},
    }


resolve_classes = build  # the name callers used in synthdiv 0.1
