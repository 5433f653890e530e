"""The stage engine: no-op / refuse / redo, locking and the recorded state, over the stages of
:mod:`synthdiv.core.pipeline` (fingerprints and ``status`` are read in :mod:`synthdiv.core.status`).

A stage's implementation is a function ``impl(cfg, run) -> summary`` in its own module, imported only when the stage
runs. The engine wraps it: it checks the inputs exist, fingerprints the stage's config sections and input artifacts,
does nothing when a finished stage is asked again with the same fingerprint, refuses a changed fingerprint unless
``redo`` is given, and records the state. ``run_classes(cfg)`` ... ``run_report(cfg)`` are the public entry points.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any

from synthdiv.config.loader import dump_config
from synthdiv.config.root import RunConfig
from synthdiv.core import redo as aside
from synthdiv.core.lock import run_lock
from synthdiv.core.pipeline import STAGE_NAMES, STAGES, StageSpec, get_spec, producer_of
from synthdiv.core.rundir import RunDir
from synthdiv.core.status import (
    StageStatus,
    fingerprint,
    fingerprint_matches,
    is_done,
    lost_outputs,
    stage_status,
    summary_line,
)
from synthdiv.engine.preflight import preflight
from synthdiv.errors import ConfigError, FingerprintMismatchError, InputError, StageOrderError
from synthdiv.models.llm.progress import count_tokens
from synthdiv.utils.humanize import human_duration
from synthdiv.utils.io import atomic_write_bytes, atomic_write_text
from synthdiv.utils.progress import heartbeat

logger = logging.getLogger("synthdiv.stages")  # the channel of the stage start and done lines users filter on

__all__ = [
    "STAGES", "StageSpec", "StageStatus", "get_spec", "run_stage", "run_all", "stage_status", "fingerprint", "is_done",
]


def run_stage(
    cfg: RunConfig, name: str, redo: bool = False, *, hold: contextlib.ExitStack | None = None
) -> dict[str, Any]:
    """Run one stage through the engine; returns its summary (``{"skipped": True}`` for a no-op).

    Inputs and the stage's own check come first, before anything is written (a refused stage leaves no run
    directory behind and no changed ``config.yaml``); then the run's writer lock is taken (held in ``hold`` when
    given, so ``run`` keeps it across stages); then ``redo`` moves the old outputs aside, and they are deleted only
    when the new stage is done, or put back when it fails before writing anything.

    Raises:
        DiskFullError: A write of the stage found the disk full (one line: the file, the space left, how to resume;
            see :func:`synthdiv.core.lock.run_lock`).
        InputError: A folder of the run is a link (nothing is written), or the stage's state file is damaged.
    """
    spec = get_spec(name)
    run = RunDir(cfg.run_dir)
    missing = [i for i in spec.inputs if not getattr(run, i).exists()]
    if missing:
        first = producer_of(missing[0])
        raise StageOrderError(
            f"stage {name!r} needs {getattr(run, missing[0]).name} from stage {first!r}: run `synthdiv {first}` first"
        )
    if spec.check and (redo or not is_done(cfg, spec, run)):
        spec.check(cfg, run)
    with contextlib.ExitStack() as local:
        (hold or local).enter_context(run_lock(run, name))
        return _run_locked(cfg, spec, run, redo)


class DamagedStateError(InputError):
    """The stage's state file does not read as one (the message names it and says what to do)."""


def _run_locked(cfg: RunConfig, spec: StageSpec, run: RunDir, redo: bool) -> dict[str, Any]:
    name = spec.name
    fp = fingerprint(cfg, spec, run)
    state = run.read_state(name)
    set_aside = False
    if state is not None and state.status == "damaged" and not redo:
        raise DamagedStateError(run.damaged_text(state))
    if state is not None and not redo and state.fingerprint != fp and fingerprint_matches(cfg, spec, run, state, fp):
        logger.info("stage %s: recording its fingerprint as this synthdiv computes it (content digests)", name)
        state.fingerprint = fp  # made by an earlier synthdiv, unchanged since: its run stays done
        run.write_state(state)
    if state is not None and state.fingerprint != fp and not redo:
        raise FingerprintMismatchError(
            f"stage {name!r} in {run.root} was {'run' if state.status == 'done' else 'started'} with another "
            f"config or other inputs; to replace its outputs run `synthdiv {name} --redo`"
        )
    if redo:
        set_aside = aside.set_aside(run, name, spec.outputs)
        state = run.read_state(name)  # None once set aside; a rank's peer may have begun the redo already
    if state is not None and state.status == "done" and all(getattr(run, o).exists() for o in spec.outputs[:1]):
        if not lost_outputs(cfg, spec, run):
            logger.info("stage %s is done and its config and inputs are unchanged: nothing to do", name)
            return {"skipped": True, **(state.summary or {})}
        detail = spec.progress(cfg, run) if spec.progress else None
        logger.warning("stage %s was done, but its work is no longer complete%s (outputs lost or damaged, or planned "
                       "work added): making what is missing", name, f" ({detail})" if detail else "")
    if state is not None:
        logger.info("stage %s was started earlier with the same config: resuming", name)
    old_config = run.config.read_bytes() if run.config.is_file() else None
    atomic_write_text(run.config, dump_config(cfg))
    fresh = state is None
    state = state or run.begin(name, fp)
    started = time.monotonic()
    try:
        with heartbeat(run.root, name), count_tokens() as tokens:
            summary = spec.impl(cfg, run) or {}
        if tokens.total:  # what the LLM generated for this stage, where the backend reports it
            summary = {**summary, "llm_tokens": tokens.total}
    except BaseException:
        if fresh and not any(aside.has_files(getattr(run, o)) for o in spec.outputs):
            # failed before writing anything: leave no trace of a start, and put back what redo set aside
            _remove_outputs(run, spec)
            run.clear_state(name)
            aside.restore(run, name, spec.outputs)
            _restore_config(run, old_config)
        elif run.aside(name).exists():
            logger.warning("stage %s stopped part-way; the outputs it replaces stay in %s until it is done",
                           name, run.aside(name))
        raise
    if spec.complete and not spec.complete(cfg, run):
        logger.info("stage %s: this worker is done in %s; other workers still have work (%s)", name,
                    human_duration(time.monotonic() - started), summary_line(spec, summary))
        return summary
    logger.info("stage %s done in %s: %s", name, human_duration(time.monotonic() - started),
                summary_line(spec, summary))
    run.finish(state, summary)
    aside.drop(run, name)
    if set_aside:
        logger.info("stage %s redone; its earlier outputs are deleted", name)
    return summary


def _restore_config(run: RunDir, old: bytes | None) -> None:
    if old is None:
        with contextlib.suppress(FileNotFoundError):
            run.config.unlink()
    else:
        atomic_write_bytes(run.config, old)


def _remove_outputs(run: RunDir, spec: StageSpec) -> None:
    for out in spec.outputs:
        path = getattr(run, out)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:  # a file, or a link: the link goes, never what it points to
            path.unlink(missing_ok=True)


def run_all(cfg: RunConfig, redo: Sequence[str] = (), stop_after: str | None = None) -> dict[str, dict[str, Any]]:
    """Run every stage in order. A stage redone here lets the later stages that read it be redone too.

    The run's writer lock is held from the first stage that starts to the end, so no other writer slips in between.
    """
    asked = [("--redo", n) for n in redo] + ([("--until", stop_after)] if stop_after is not None else [])
    for option, name in asked:
        if name not in STAGE_NAMES:
            raise ConfigError(f"run {option}: unknown stage {name!r}; expected one of: {', '.join(STAGE_NAMES)}")

    preflight(cfg, stop_after, redo)  # paths, models, devices and disk of the stages to run, before any writes
    results: dict[str, dict[str, Any]] = {}
    cascade = False
    with contextlib.ExitStack() as hold:
        for spec in STAGES:
            run = RunDir(cfg.run_dir)
            state = run.read_state(spec.name)
            # a damaged state is refused below (never redone unasked: it cannot say which config made its outputs)
            changed = (cascade and state is not None and state.status != "damaged"
                       and not fingerprint_matches(cfg, spec, run, state))
            try:
                results[spec.name] = run_stage(cfg, spec.name, redo=spec.name in redo or changed, hold=hold)
            except (FingerprintMismatchError, DamagedStateError) as exc:
                until = f" --until {stop_after}" if stop_after else ""
                raise type(exc)(
                    str(exc).replace(f"`synthdiv {spec.name} --redo`", f"`synthdiv run --redo {spec.name}{until}`")
                ) from None
            if not results[spec.name].get("skipped"):
                cascade = True
            if spec.name == stop_after:
                break
    if results and all(r.get("skipped") for r in results.values()):
        logger.info("every stage is done and unchanged: nothing to do")
    return results


def _entry(name: str) -> Callable[..., dict[str, Any]]:
    def entry(cfg: RunConfig, redo: bool = False) -> dict[str, Any]:
        return run_stage(cfg, name, redo=redo)

    entry.__name__ = entry.__qualname__ = f"run_{name}"
    entry.__doc__ = f"Run the {name} stage of ``cfg`` through the engine (no-op when already done)."
    return entry


run_classes = _entry("classes")
run_disambiguate = _entry("disambiguate")
run_prompts = _entry("prompts")
run_plan = _entry("plan")
run_generate = _entry("generate")
run_score = _entry("score")
run_train = _entry("train")
run_evaluate = _entry("evaluate")
run_report = _entry("report")
__all__ += [f"run_{spec.name}" for spec in STAGES]
