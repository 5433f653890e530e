"""The run config: pydantic models, one per section, and the YAML loader (see :mod:`synthdiv.config.loader`)."""

from synthdiv.config.adapt import AdaptConfig
from synthdiv.config.classes import ClassesConfig
from synthdiv.config.disambiguate import DisambiguateConfig
from synthdiv.config.estimate import EstimateConfig
from synthdiv.config.generate import GenerateConfig, ScoreConfig
from synthdiv.config.loader import apply_override, config_from_dict, dump_config, load_config
from synthdiv.config.models import CLIPSpec, GeneratorSpec, LLMSpec, ModelsConfig, ModelSpec
from synthdiv.config.prompts import PlanConfig, PromptsConfig
from synthdiv.config.report import ReportConfig
from synthdiv.config.root import RunConfig
from synthdiv.config.train import EvaluateConfig, TrainConfig

__all__ = [
    "RunConfig",
    "ModelsConfig",
    "ModelSpec",
    "LLMSpec",
    "CLIPSpec",
    "GeneratorSpec",
    "ClassesConfig",
    "DisambiguateConfig",
    "PromptsConfig",
    "PlanConfig",
    "GenerateConfig",
    "ScoreConfig",
    "TrainConfig",
    "EvaluateConfig",
    "ReportConfig",
    "EstimateConfig",
    "AdaptConfig",
    "load_config",
    "config_from_dict",
    "apply_override",
    "dump_config",
]
