"""The diversity report behind ``synthdiv show prompts``: how varied each class's prompts are.

Per class: prompts of each kind, the distinct-word ratio (distinct words over all words of its prompts: 1.0 when
no word repeats), the mean pairwise CLIP text-embedding distance (1 - cosine, averaged over pairs: 0 when every
prompt says the same thing) and a few sample prompts. A class whose contexts all collapse onto one scene shows
up at once as a low ratio and a small distance.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import PROMPT_KINDS
from synthdiv.errors import InputError
from synthdiv.metrics.diversity import mean_pairwise_distance as pairwise
from synthdiv.models.clip import create_scorer
from synthdiv.stages.prompts.reader import read_prompts
from synthdiv.utils.io import read_jsonl

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig

logger = logging.getLogger(__name__)

__all__ = ["distinct_word_ratio", "mean_pairwise_distance", "class_diversity", "diversity_report"]

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def distinct_word_ratio(texts: Sequence[str]) -> float:
    """Distinct words / words over ``texts`` (case-folded); 0.0 for no words."""
    words = [w for t in texts for w in _WORD.findall(t.casefold())]
    return len(set(words)) / len(words) if words else 0.0


def mean_pairwise_distance(embeddings: np.ndarray) -> float | None:
    """Mean of ``1 - cosine`` over all pairs of L2-normalised rows; None with fewer than two rows. The formula is
    the image metric's (:func:`synthdiv.metrics.diversity.mean_pairwise_distance`, pure NumPy), on text embeddings."""
    return None if len(embeddings) < 2 else pairwise(embeddings)


def _spread(n: int, k: int) -> np.ndarray:
    """``min(n, k)`` indices spread evenly over ``range(n)``."""
    return np.unique(np.linspace(0, n - 1, num=min(n, k)).round().astype(int)) if n else np.array([], int)


def class_diversity(rows: list[dict[str, Any]], scorer: Any | None, max_prompts: int = 64) -> dict[str, Any]:
    """Diversity numbers of one class's prompt rows (``text`` and ``kind``); at most ``max_prompts`` prompts,
    spread evenly over the class, are embedded (no CLIP distance without a ``scorer``)."""
    texts = [r["text"] for r in rows]
    counts = {k: sum(r["kind"] == k for r in rows) for k in PROMPT_KINDS}
    chosen = [texts[i] for i in _spread(len(texts), max_prompts)]
    distance = mean_pairwise_distance(scorer.embed_texts(chosen)) if scorer is not None and len(chosen) > 1 else None
    return {"counts": counts, "total": len(rows), "word_ratio": distinct_word_ratio(texts), "clip_distance": distance}


def _select(run: RunDir, table: Any, class_name: str | None) -> list[int]:
    classes = sorted(set(table.column("class").to_pylist()))
    if class_name is None:
        return classes
    names = dict(zip(table.column("class").to_pylist(), table.column("class_name").to_pylist(), strict=True))
    wnids = {}
    if run.resolved.exists():
        wnids = {r["index"]: r.get("wnid") for r in read_jsonl(run.resolved)}
    hits = [c for c in classes if class_name in (names.get(c), wnids.get(c))]
    if not hits:
        hits = [c for c in classes if str(names.get(c)).casefold() == class_name.casefold()]
    if not hits:
        raise InputError(f"--class {class_name!r}: no class of that name or wnid in {run.prompts}")
    return hits


def diversity_report(
    cfg: RunConfig, class_name: str | None = None, scorer: Any | None = None, max_prompts: int = 64, samples: int = 3,
    clip: bool = True,
) -> Any:
    """A rich renderable: one table row per class (or only ``class_name``), then sample prompts.

    Args:
        cfg: The run config (``models.clip`` embeds the prompts).
        class_name: Only this class (its name or wnid).
        scorer: An :class:`~synthdiv.models.clip.base.ImageTextScorer` to use instead of creating ``models.clip``.
        clip: Whether to add the CLIP distance column; without it (and no ``scorer``) no model is loaded.
        max_prompts: Prompts embedded per class, at most.
        samples: Sample prompts shown per class and kind (ten per kind for a single class).
    """
    from rich.console import Group
    from rich.table import Table

    run = RunDir(cfg.run_dir)
    table = read_prompts(run, ["class", "class_name", "kind", "text"])
    selected = _select(run, table, class_name)
    if scorer is None and clip:  # only now, after the arguments were checked: loading a model takes seconds

        scorer = create_scorer(cfg.models.clip)
    by_class: dict[int, list[dict[str, Any]]] = {c: [] for c in selected}
    for row in table.to_pylist():
        if row["class"] in by_class:
            by_class[row["class"]].append(row)

    stats = Table(title=f"prompt diversity: {run.prompts}" + (f" (CLIP: {scorer.model_id})" if scorer else ""))
    for col in ("class", *PROMPT_KINDS, "distinct words", *(("CLIP distance",) if scorer else ())):
        stats.add_column(col, justify="left" if col == "class" else "right")
    shown = Table(title="sample prompts", show_lines=False)
    for col in ("class", "kind", "prompt"):
        shown.add_column(col)
    per_kind = samples if class_name is None else max(samples, 10)
    for c in selected:
        rows = by_class[c]
        d = class_diversity(rows, scorer, max_prompts)
        dist = "-" if d["clip_distance"] is None else f"{d['clip_distance']:.3f}"
        stats.add_row(rows[0]["class_name"], *(str(d["counts"][k]) for k in PROMPT_KINDS),
                      f"{d['word_ratio']:.2f}", *((dist,) if scorer else ()))
        for kind in PROMPT_KINDS:
            of_kind = [r["text"] for r in rows if r["kind"] == kind]
            for i in _spread(len(of_kind), per_kind):
                shown.add_row(rows[0]["class_name"], kind, of_kind[i])
    return Group(stats, shown)
