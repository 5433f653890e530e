"""The whole run config: top-level ``run_dir`` and ``seed``, the ``models`` section, one section per stage."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from synthdiv.config._base import ConfigPath, Section, path_name_problem
from synthdiv.config.adapt import AdaptConfig
from synthdiv.config.classes import ClassesConfig
from synthdiv.config.disambiguate import DisambiguateConfig
from synthdiv.config.estimate import EstimateConfig
from synthdiv.config.generate import GenerateConfig, ScoreConfig
from synthdiv.config.models import ModelsConfig
from synthdiv.config.prompts import PlanConfig, PromptsConfig
from synthdiv.config.publish import PublishConfig
from synthdiv.config.report import ReportConfig
from synthdiv.config.score import FilterSpec
from synthdiv.config.train import EvaluateConfig, TrainConfig

__all__ = ["RunConfig"]


class RunConfig(Section):
    """One run of synthdiv. Relative paths in a config file are relative to that file's folder."""

    run_dir: ConfigPath = Field(description="where every artifact of the run is written")
    seed: int = Field(0, ge=0, description="the root of every seed in the run")
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    classes: ClassesConfig = Field(default_factory=ClassesConfig)
    disambiguate: DisambiguateConfig = Field(default_factory=DisambiguateConfig)
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    plan: PlanConfig = Field(default_factory=PlanConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    filters: dict[str, FilterSpec] = Field(
        default_factory=dict, description="named filter views over the synthetic images; train.filters selects them"
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    estimate: EstimateConfig = Field(default_factory=EstimateConfig)
    adapt: AdaptConfig = Field(default_factory=AdaptConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)

    @field_validator("run_dir", mode="before")
    @classmethod
    def _run_dir_given(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError("expected a folder path ('.' for the config file's own folder)")
        return value

    @field_validator("filters")
    @classmethod
    def _filter_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            problem = path_name_problem(name, "filter name")
            if problem is not None:
                raise ValueError(problem)
        return value
