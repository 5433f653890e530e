"""Gathering what the report shows from a run directory's artifacts; every section is optional.

Each ``*_section`` function reads one stage's artifacts and returns plain data for the template, or an empty value
when that stage has not run, so a report can be made at any point of a run.

Every artifact is read and interpreted inside :func:`artifact`: whatever a damaged file makes a reader raise (a
Parquet file that is not Parquet, a JSON line cut short, a field of the wrong type) becomes one
:class:`~synthdiv.errors.InputError` naming the file and the stage to redo. The documented skips are few: an eval
result or ``quality.json`` that cannot be read is left out with a warning (as a stage that has not run), and a
``metrics.jsonl`` whose last line was cut short by a killed training loses that line.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import PROMPT_KINDS
from synthdiv.core.status import stage_status
from synthdiv.errors import InputError, SynthdivError
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.disambiguate.reader import ambiguity_summary, read_resolved, runner_up, sense_text
from synthdiv.stages.plan.reader import read_plan, round_rows
from synthdiv.stages.prompts.reader import read_prompts

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = [
    "artifact",
    "damaged",
    "class_names",
    "read_metrics",
    "data_uri",
    "versions",
    "warnings_for",
    "stages_section",
    "models_section",
    "disambiguation_section",
    "disambiguation_summary",
    "prompts_section",
    "metrics_series",
]

_PACKAGES = ("synthdiv", "torch", "torchvision", "timm", "diffusers", "transformers", "open_clip_torch", "webdataset")


def damaged(path: Path | str, stage: str, exc: BaseException) -> str:
    """The one line that names a damaged artifact, what the reader said, and the stage that rewrites it."""
    said = (str(exc).splitlines() or [""])[0][:160]
    return (f"{path}: damaged or not as `synthdiv {stage}` writes it ({type(exc).__name__}"
            f"{': ' + said if said else ''}); run `synthdiv {stage} --redo`")


@contextlib.contextmanager
def artifact(path: Path | str, stage: str) -> Iterator[None]:
    """Read and interpret one artifact of ``stage``: any damage is one :class:`InputError` naming ``path``.

    A :class:`~synthdiv.errors.SynthdivError` a reader raises itself (a missing file, a missing column) passes as it is.
    """
    try:
        yield
    except SynthdivError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes a reader raise; the file is to blame
        raise InputError(damaged(path, stage, exc)) from None


def class_names(run: RunDir) -> dict[int, str]:
    """``{index: name}`` of ``classes.jsonl``, checked (:func:`synthdiv.stages.classes.stage.read_classes`); empty when
    absent."""
    if not run.classes.exists():
        return {}

    with artifact(run.classes, "classes"):
        return {int(r["index"]): str(r["name"]) for r in read_classes(run.classes)}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl``: JSON objects, one a line. A last line cut short (no newline: a training
    killed while appending) is dropped with a warning; any other damage is one InputError naming the file and line."""
    with artifact(path, "train"):
        data = path.read_bytes()
        lines = data.split(b"\n")
        rows = []
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                if lineno == len(lines):  # the last line, without its newline
                    logger.warning("report: %s: its last line is cut short (a training killed while writing it); "
                                   "left out", path)
                    break
                raise InputError(f"{path}:{lineno}: not a JSON object ({type(exc).__name__}); run "
                                 "`synthdiv train --redo`") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{lineno}: not a JSON object; run `synthdiv train --redo`")
            rows.append(row)
        return rows


def data_uri(png: bytes, mime: str = "image/png") -> str:
    """Inline an image so that the report is one self-contained file."""
    return f"data:{mime};base64,{base64.b64encode(png).decode('ascii')}"


def versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def warnings_for(cfg: RunConfig) -> list[str]:
    """Banners shown at the top: random embedded models make images with no class signal."""
    random_parts = [role for role in ("generator", "clip") if getattr(cfg.models, role).model == "embedded"]
    if not random_parts:
        return []
    return [
        f"This run used the embedded, randomly initialised {' and '.join(random_parts)} model"
        f"{'s' if len(random_parts) > 1 else ''}: its generated images carry no class signal and its CLIP scores "
        "are meaningless. It shows the machinery of the method, not its accuracy gains; use the real models in "
        "examples/ for that."
    ]


def stages_section(cfg: RunConfig) -> list[dict[str, Any]]:
    run = RunDir(cfg.run_dir)
    rows = []
    with artifact(run.state_dir, "status"):
        statuses = stage_status(cfg)
    for status in statuses:
        with artifact(run.state_path(status.stage), status.stage):
            state = run.read_state(status.stage)
        duration = ""
        if state is not None and state.finished_at:
            duration = f"{state.finished_at - state.started_at:.1f} s"
        summary = status.detail
        if state is not None and state.summary:
            summary = ", ".join(f"{k}={v}" for k, v in state.summary.items() if not isinstance(v, dict | list))
        if status.stage == "report":  # running while it renders this page
            rows.append({"stage": "report", "state": "this page", "duration": "", "summary": ""})
            continue
        rows.append({"stage": status.stage, "state": status.state, "duration": duration, "summary": summary})
    return rows


def models_section(cfg: RunConfig) -> list[dict[str, Any]]:
    rows = []
    for role in ("llm", "clip", "generator"):
        spec = getattr(cfg.models, role)
        rows.append(
            {
                "role": role,
                "backend": spec.backend,
                "model": spec.model,
                "revision": spec.revision,
                "options": json.dumps(spec.options, sort_keys=True) if spec.options else "",
            }
        )
    return rows


def _fmt(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else ""


def disambiguation_summary(run: RunDir) -> str:
    """The one-line count of ambiguous classes, how they were settled and how many were left bare."""
    if not run.resolved.exists():
        return ""
    with artifact(run.resolved, "disambiguate"):
        return ambiguity_summary(read_resolved(run.resolved))


def disambiguation_section(run: RunDir) -> list[dict[str, Any]]:
    """Per class: the chosen description, why the name was ambiguous, the runner-up, their margin and what settled
    it (older runs without these fields show blanks)."""
    if not run.resolved.exists():
        return []
    with artifact(run.resolved, "disambiguate"):
        return _disambiguation_rows(run)


def _disambiguation_rows(run: RunDir) -> list[dict[str, Any]]:
    rows = []
    for r in read_resolved(run.resolved):
        cands = r.get("candidates") or []
        chosen = next((c for c in cands if c.get("text") == r.get("description")), None)
        other = runner_up(r)
        rows.append(
            {
                "index": r["index"],
                "name": r["name"],
                "wnid": r.get("wnid"),
                "why": "; ".join((r.get("ambiguity") or {}).get("reasons", [])),
                "sense": sense_text(r) if r.get("sense") else "",
                "description": r.get("description"),
                "score": _fmt(chosen.get("score")) if chosen else "",
                "runner_up": other.get("text") if other else "",
                "runner_up_score": _fmt(other.get("score")) if other else "",
                "margin": _fmt(r.get("margin")),
                "chosen_by": r.get("chosen_by") or "",
                "status": r.get("status", ""),
            }
        )
    return rows


def _distinct_word_ratio(texts: list[str]) -> float:
    words = [w for t in texts for w in re.findall(r"[a-z0-9']+", t.lower())]
    return len(set(words)) / len(words) if words else 0.0


def prompts_section(run: RunDir, samples_per_kind: int = 3) -> list[dict[str, Any]]:
    if not run.prompts.exists():
        return []

    with artifact(run.prompts, "prompts"):
        table = read_prompts(run, ["class", "class_name", "kind", "text"]).to_pylist()
    planned: Counter[int] = Counter()
    img2img: Counter[int] = Counter()
    if run.plan.exists():
        import pyarrow.parquet as pq

        with artifact(run.plan, "plan"):
            with_source = "source" in pq.read_schema(run.plan).names  # only an img2img plan has the column
            plan = read_plan(run, ["class", "source"] if with_source else ["class"]).to_pydict()
            planned.update(plan["class"])
            if with_source:
                img2img.update(c for c, s in zip(plan["class"], plan["source"], strict=True) if s is not None)
    with artifact(run.prompts, "prompts"):
        return _prompt_rows(table, planned, img2img, samples_per_kind)


def _prompt_rows(table: list[dict[str, Any]], planned: Counter[int], img2img: Counter[int], samples_per_kind: int
                 ) -> list[dict[str, Any]]:
    by_class: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in table:
        by_class[row["class"]].append(row)
    out = []
    for cls in sorted(by_class):
        rows = by_class[cls]
        counts = Counter(r["kind"] for r in rows)
        samples = [s for kind in PROMPT_KINDS for s in [r for r in rows if r["kind"] == kind][:samples_per_kind]]
        out.append(
            {
                "class_name": rows[0]["class_name"],
                "counts": {k: counts.get(k, 0) for k in PROMPT_KINDS},
                "distinct_ratio": f"{_distinct_word_ratio([r['text'] for r in rows]):.2f}",
                "planned": int(planned.get(cls, 0)),
                "img2img": int(img2img.get(cls, 0)),
                "samples": [{"kind": s["kind"], "text": s["text"]} for s in samples],
            }
        )
    return out


def rounds_section(run: RunDir, top: int = 5) -> list[dict[str, Any]]:
    """One row per adaptive round recorded in the plan, with the classes it gave most images to."""
    if not run.plan.exists():
        return []

    names = class_names(run)
    with artifact(run.plan, "plan"):
        return round_rows(run.plan, [names[i] for i in sorted(names)], top)


def metrics_series(run: RunDir) -> dict[str, list[dict[str, Any]]]:
    """``{variant: [metric rows]}`` from every ``metrics.jsonl`` under ``train/`` (training rows and, with
    ``"split": "val"``, the validation rows of each epoch's end)."""
    out = {}
    if run.train.exists():
        for path in sorted(run.train.rglob("metrics.jsonl")):
            name = path.parent.name if path.parent != run.train else "model"
            out[name] = read_metrics(path)
    return out


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")

