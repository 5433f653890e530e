"""The pipeline: its stages in order, and for each what it runs, reads, writes and fingerprints, and its help.

This is the one list of stages: the engine (:mod:`synthdiv.engine.runner`), the CLI (one command per stage, help from
here), ``status`` and ``check`` all read it. It names each stage's code as ``"module:function"`` and imports it on
first use, so importing this module (and ``synthdiv --help``) imports no stage and never torch.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdiv.errors import ConfigError

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["StageSpec", "STAGES", "STAGE_NAMES", "get_spec", "producer_of"]

Impl = Callable[["RunConfig", "RunDir"], dict[str, Any]]


@dataclass(frozen=True)
class StageSpec:
    """What the engine knows of one stage. Its code is named, not imported: each function is a :class:`Hook` on
    ``"module:function"`` (any callable will do, as tests use), so the stage table imports no stage.

    Attributes:
        name: The stage name (also the config section and CLI command).
        help: One line for ``synthdiv <name> --help``.
        impl: ``impl(cfg, run) -> summary``: the stage's work (each stage's ``stage.build``).
        inputs: RunDir attributes of artifacts that must exist before the stage runs.
        outputs: RunDir attributes of artifacts the stage writes (set aside by ``redo``).
        sections: Config key paths whose values enter the fingerprint (``"key?"``: only when set, for an option
            added later, so runs made before it are not stale).
        optional_inputs: RunDir attributes that enter the fingerprint when present.
        external: ``external(cfg) -> paths``: files outside the run that enter the fingerprint (a class file, real
            image folders).
        progress: ``progress(cfg, run) -> str | None``: counts for ``status``.
        complete: ``complete(cfg, run) -> bool``: whether all the stage's work is done (one worker of several can
            return while the others still work; a done stage that lost outputs is not complete).
        check: ``check(cfg, run)``: refuses bad inputs (raises a SynthdivError) before the engine writes anything.
        input_digests: ``input_digests(run) -> {input: digest}``: digests that stand for some inputs' file digests
            in the fingerprint (generate takes the plan's base digest, so a plan that only grew by adaptive rounds
            leaves its shards valid; see :mod:`synthdiv.stages.plan.rounds`).
        headline: ``headline(summary) -> str``: the summary on one line, for the log and ``status``, where its
            scalar entries do not say it (a summary per variant); default
            :func:`synthdiv.core.status.summary_text`.
    """

    name: str
    help: str
    impl: Impl
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    optional_inputs: tuple[str, ...] = ()
    external: Callable[[RunConfig], list[Path]] | None = None
    progress: Callable[[RunConfig, RunDir], str | None] | None = None
    complete: Callable[[RunConfig, RunDir], bool] | None = None
    check: Callable[[RunConfig, RunDir], None] | None = None
    input_digests: Callable[[RunDir], dict[str, str]] | None = None
    headline: Callable[[dict[str, Any]], str] | None = None


class Hook:
    """A stage function named as ``"module:function"``: imported when first called, so the stage table imports no
    stage (and ``synthdiv --help`` no torch)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, _, attr = self.ref.partition(":")  # looked up at every call: a patched module attribute is seen
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Hook({self.ref!r})"


def _stage(name: str, hook: str = "build") -> Hook:
    return Hook(f"synthdiv.stages.{name}.stage:{hook}")


STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "classes", "Build classes.jsonl from ImageNet ids, a class file or an ImageFolder.", _stage("classes"),
        outputs=("classes",), sections=("classes",), external=_stage("classes", "external_inputs"),
        check=_stage("classes", "check_classes"),
    ),
    StageSpec(
        "disambiguate", "Give each class one unambiguous description (ambiguous names never stay bare).",
        _stage("disambiguate"), inputs=("classes",), outputs=("resolved",),
        sections=("disambiguate", "models.llm", "models.clip"),
    ),
    StageSpec(
        "prompts", "Write diverse contexts and styles with the LLM and compose prompts.parquet.", _stage("prompts"),
        inputs=("resolved",), outputs=("prompts", "styles"),
        sections=("prompts", "models.llm", "models.clip", "models.captioner"),
        external=_stage("prompts", "external_inputs"),
    ),
    StageSpec(
        "plan", "Assign images to prompts, seeds and shards: plan.parquet.", _stage("plan"), inputs=("prompts",),
        outputs=("plan",), sections=("plan", "prompts.proportions", "models.generator", "train.synthetic_protocols",
                                   "models.mixture?"),
        optional_inputs=("resolved",),
    ),
    StageSpec(
        "generate", "Generate the planned images into WebDataset shards (resumable).", _stage("generate"),
        inputs=("plan",), outputs=("shards", "manifest"),
        sections=("generate.content", "models.generator", "models.mixture?"),
        progress=_stage("generate", "progress"), complete=_stage("generate", "is_complete"),
        check=_stage("generate", "check"), input_digests=_stage("generate", "input_digests"),
    ),
    StageSpec(
        "score", "Score every generated image with CLIP; filters are views, nothing is deleted.", _stage("score"),
        inputs=("manifest",), outputs=("scores",), sections=("score", "models.clip"),
    ),
    StageSpec(
        "train", "Train a timm classifier on real + synthetic images with auxiliary normalization.", _stage("train"),
        inputs=("classes",), outputs=("train", "export"),
        sections=("train", "score.min_similarity", "score.keep_quantile", "score.classifier", "filters"),
        optional_inputs=("manifest", "scores"), progress=_stage("train", "progress"),
        headline=_stage("train", "headline"),
    ),
    StageSpec(
        "evaluate", "Evaluate the trained model in-domain, out-of-domain and on long-tail splits.", _stage("evaluate"),
        inputs=("train",), outputs=("eval",), sections=("evaluate",), headline=_stage("evaluate", "headline"),
        check=_stage("evaluate", "check"),
    ),
    StageSpec(
        "report", "Write report/index.html.", _stage("report"), inputs=("classes",), outputs=("report",),
        sections=("report",), optional_inputs=("resolved", "prompts", "plan", "manifest", "scores", "train", "eval"),
    ),
)

STAGE_NAMES: tuple[str, ...] = tuple(spec.name for spec in STAGES)
_BY_NAME = {spec.name: spec for spec in STAGES}
_PRODUCER = {out: spec.name for spec in STAGES for out in spec.outputs}


def get_spec(name: str) -> StageSpec:
    """The spec of stage ``name``.

    Raises:
        ConfigError: No stage of that name (the message lists them).
    """
    if name not in _BY_NAME:
        raise ConfigError(f"unknown stage {name!r}; expected one of: {', '.join(STAGE_NAMES)}")
    return _BY_NAME[name]


def producer_of(artifact: str) -> str:
    """The stage that writes the RunDir attribute ``artifact`` (the attribute itself when none does)."""
    return _PRODUCER.get(artifact, artifact)
