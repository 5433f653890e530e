"""The pipeline: its stages in order, and for each what it runs, reads, writes and fingerprints, and its help.

This is the one list of stages: the engine (:mod:`synthdiv.stages`), the CLI (one command per stage, help from
here), ``status`` and ``check`` all read it. Each stage's code is a real import inside a small function, so
importing this module (and ``synthdiv --help``) never imports torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdiv.errors import ConfigError

if TYPE_CHECKING:
    from synthdiv.config import RunConfig
    from synthdiv.run import RunDir

logger = logging.getLogger(__name__)

__all__ = ["StageSpec", "STAGES", "STAGE_NAMES", "get_spec", "producer_of"]

Impl = Callable[["RunConfig", "RunDir"], dict[str, Any]]


@dataclass(frozen=True)
class StageSpec:
    """What the engine knows of one stage.

    Attributes:
        name: The stage name (also the config section and CLI command).
        help: One line for ``synthdiv <name> --help``.
        impl: ``impl(cfg, run) -> summary``: the stage's work.
        inputs: RunDir attributes of artifacts that must exist before the stage runs.
        outputs: RunDir attributes of artifacts the stage writes (set aside by ``redo``).
        sections: Config key paths whose values enter the fingerprint.
        optional_inputs: RunDir attributes that enter the fingerprint when present.
        external: ``external(cfg) -> paths``: files outside the run that enter the fingerprint (a class file, real
            image folders).
        progress: ``progress(cfg, run) -> str | None``: counts for ``status``.
        complete: ``complete(cfg, run) -> bool``: whether all the stage's work is done (one worker of several can
            return while the others still work; a done stage that lost outputs is not complete).
        check: ``check(cfg, run)``: refuses bad inputs (raises a SynthdivError) before the engine writes anything.
        input_digests: ``input_digests(run) -> {input: digest}``: digests that stand for some inputs' file digests
            in the fingerprint (generate takes the plan's base digest, so a plan that only grew by adaptive rounds
            leaves its shards valid; see :mod:`synthdiv.prompts.rounds`).
        headline: ``headline(summary) -> str``: the summary on one line, for the log and ``status``, where its
            scalar entries do not say it (a summary per variant); default
            :func:`synthdiv.stage_state.summary_text`.
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


# -- each stage's code, imported when it is used ------------------------------------------------------------------


def _classes(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    from synthdiv.catalog import build_classes

    return build_classes(cfg, run)


def _classes_inputs(cfg: RunConfig) -> list[Path]:
    from synthdiv.catalog import external_inputs

    return external_inputs(cfg)


def _classes_check(cfg: RunConfig, run: RunDir) -> None:
    from synthdiv.catalog import check_classes

    check_classes(cfg, run)


def _disambiguate(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    from synthdiv.disambiguate import resolve_classes

    return resolve_classes(cfg, run)


def _prompts(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    from synthdiv.prompts import build_prompts

    return build_prompts(cfg, run)


def _prompts_inputs(cfg: RunConfig) -> list[Path]:
    from synthdiv.prompts import external_inputs

    return external_inputs(cfg)


def _plan(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    from synthdiv.prompts.plan import build_plan

    return build_plan(cfg, run)


def _generate(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    from synthdiv.generate import generate_images

    return generate_images(cfg, run)


def _generate_progress(cfg: RunConfig, run: RunDir) -> str | None:
    from synthdiv.generate import progress

    return progress(cfg, run)


def _generate_complete(cfg: RunConfig, run: RunDir) -> bool:
    from synthdiv.generate import is_complete

    return is_complete(cfg, run)


def _evaluate_check(cfg: RunConfig, run: RunDir) -> None:
    from synthdiv.evaluate.sets import check_sets

    check_sets(cfg.evaluate)


def _generate_check(cfg: RunConfig, run: RunDir) -> None:
    from synthdiv.generate.plan_check import check_plan

    check_plan(cfg, run)


def _generate_digests(run: RunDir) -> dict[str, str]:
    from synthdiv.prompts.rounds import plan_base_digest

    return {"plan": plan_base_digest(run.plan)} if run.plan.exists() else {}


def _score(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    from synthdiv.generate.scoring import score_images

    return score_images(cfg, run)


def _train(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    from synthdiv.train import fit

    return fit(cfg, run)


def _train_progress(cfg: RunConfig, run: RunDir) -> str | None:
    from synthdiv.train import progress

    return progress(cfg, run)


def _train_headline(summary: dict[str, Any]) -> str:
    from synthdiv.train import headline

    return headline(summary)


def _evaluate(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    from synthdiv.evaluate import evaluate_run

    return evaluate_run(cfg, run)


def _evaluate_headline(summary: dict[str, Any]) -> str:
    from synthdiv.evaluate.stage import headline

    return headline(summary)


def _report(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    from synthdiv.report import build_report

    return build_report(cfg, run)


STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "classes", "Build classes.jsonl from ImageNet ids, a class file or an ImageFolder.", _classes,
        outputs=("classes",), sections=("classes",), external=_classes_inputs, check=_classes_check,
    ),
    StageSpec(
        "disambiguate", "Give each class one unambiguous description (ambiguous names never stay bare).",
        _disambiguate, inputs=("classes",), outputs=("resolved",),
        sections=("disambiguate", "models.llm", "models.clip"),
    ),
    StageSpec(
        "prompts", "Write diverse contexts and styles with the LLM and compose prompts.parquet.", _prompts,
        inputs=("resolved",), outputs=("prompts", "styles"),
        sections=("prompts", "models.llm", "models.clip", "models.captioner"), external=_prompts_inputs,
    ),
    StageSpec(
        "plan", "Assign images to prompts, seeds and shards: plan.parquet.", _plan, inputs=("prompts",),
        outputs=("plan",), sections=("plan", "prompts.proportions", "models.generator", "train.synthetic_protocols"),
        optional_inputs=("resolved",),
    ),
    StageSpec(
        "generate", "Generate the planned images into WebDataset shards (resumable).", _generate, inputs=("plan",),
        outputs=("shards", "manifest"), sections=("generate.content", "models.generator"),
        progress=_generate_progress, complete=_generate_complete, check=_generate_check,
        input_digests=_generate_digests,
    ),
    StageSpec(
        "score", "Score every generated image with CLIP; filters are views, nothing is deleted.", _score,
        inputs=("manifest",), outputs=("scores",), sections=("score", "models.clip"),
    ),
    StageSpec(
        "train", "Train a timm classifier on real + synthetic images with auxiliary normalization.", _train,
        inputs=("classes",), outputs=("train", "export"),
        sections=("train", "score.min_similarity", "score.keep_quantile", "score.classifier", "filters"),
        optional_inputs=("manifest", "scores"), progress=_train_progress, headline=_train_headline,
    ),
    StageSpec(
        "evaluate", "Evaluate the trained model in-domain, out-of-domain and on long-tail splits.", _evaluate,
        inputs=("train",), outputs=("eval",), sections=("evaluate",), headline=_evaluate_headline,
        check=_evaluate_check,
    ),
    StageSpec(
        "report", "Write report/index.html.", _report, inputs=("classes",), outputs=("report",),
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
