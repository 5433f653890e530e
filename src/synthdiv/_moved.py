"""Import paths of synthdiv 0.1, kept for one release: each warns once and reads from where its names live now.

``import synthdiv.generate.engine`` (or ``from synthdiv.run import RunDir``) still works: a finder at the end of
``sys.meta_path`` answers for every old module name with a stand-in module that warns (``DeprecationWarning``) and
hands out the attributes of the module(s) that now hold them. The stand-in is not the module itself: patching an
attribute through an old path does not reach the code; use the new path. The names go in synthdiv 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

__all__ = ["MOVED", "install"]

# old module -> the module that holds its names now (several where one module became several)
MOVED: dict[str, str | tuple[str, ...]] = {
    "synthdiv._registry": "synthdiv.registry",
    "synthdiv.adapt": "synthdiv.engine.adapt",
    "synthdiv.aside": "synthdiv.core.redo",
    "synthdiv.captions": "synthdiv.models.captions",
    "synthdiv.captions.base": "synthdiv.models.captions.base",
    "synthdiv.captions.cache": "synthdiv.models.captions.cache",
    "synthdiv.captions.hf": "synthdiv.models.captions.hf",
    "synthdiv.captions.openai_backend": "synthdiv.models.captions.openai_backend",
    "synthdiv.catalog": "synthdiv.stages.classes.stage",
    "synthdiv.catalog.classfile": "synthdiv.stages.classes.classfile",
    "synthdiv.catalog.imagefolder": "synthdiv.stages.classes.imagefolder",
    "synthdiv.catalog.imagenet": "synthdiv.stages.classes.imagenet",
    "synthdiv.catalog.reader": "synthdiv.stages.classes.reader",
    "synthdiv.catalog.records": "synthdiv.stages.classes.records",
    "synthdiv.catalog.relatedness": "synthdiv.lexicon.relatedness",
    "synthdiv.catalog.wordnet": "synthdiv.lexicon.wordnet",
    "synthdiv.check": "synthdiv.engine.preflight",
    "synthdiv.clip": "synthdiv.models.clip",
    "synthdiv.clip._common": "synthdiv.models.clip._common",
    "synthdiv.clip.base": "synthdiv.models.clip.base",
    "synthdiv.clip.hf": "synthdiv.models.clip.hf",
    "synthdiv.clip.openclip": "synthdiv.models.clip.openclip",
    "synthdiv.data.decode": "synthdiv.utils.decode",
    "synthdiv.devices": "synthdiv.utils.devices",
    "synthdiv.disambiguate": ("synthdiv.stages.disambiguate", "synthdiv.stages.disambiguate.stage",
                              "synthdiv.stages.disambiguate.reader", "synthdiv.stages.disambiguate.table"),
    "synthdiv.disambiguate.ambiguity": "synthdiv.stages.disambiguate.ambiguity",
    "synthdiv.disambiguate.confusable": "synthdiv.stages.disambiguate.confusable",
    "synthdiv.disambiguate.grounded": "synthdiv.stages.disambiguate.grounded",
    "synthdiv.disambiguate.llm_sense": "synthdiv.stages.disambiguate.llm_sense",
    "synthdiv.disambiguate.propose": "synthdiv.stages.disambiguate.propose",
    "synthdiv.disambiguate.reader": "synthdiv.stages.disambiguate.reader",
    "synthdiv.disambiguate.rule": "synthdiv.stages.disambiguate.rule",
    "synthdiv.disambiguate.scoring": "synthdiv.stages.disambiguate.scoring",
    "synthdiv.disambiguate.senses": "synthdiv.stages.disambiguate.senses",
    "synthdiv.disambiguate.settle": "synthdiv.stages.disambiguate.settle",
    "synthdiv.disambiguate.stage": "synthdiv.stages.disambiguate.stage",
    "synthdiv.disambiguate.table": "synthdiv.stages.disambiguate.table",
    "synthdiv.disambiguate.unique": "synthdiv.stages.disambiguate.unique",
    "synthdiv.disambiguate.validate": "synthdiv.stages.disambiguate.validate",
    "synthdiv.config.quality": "synthdiv.config.score",
    "synthdiv.embedded": "synthdiv.models.embedded",
    "synthdiv.embedded_bpe": "synthdiv.models.embedded.bpe",
    "synthdiv.embedded_cache": "synthdiv.models.embedded.cache",
    "synthdiv.embedded_models": "synthdiv.models.embedded.builders",
    "synthdiv.evaluate": ("synthdiv.stages.evaluate", "synthdiv.stages.evaluate.stage", "synthdiv.metrics.accuracy",
                          "synthdiv.data.eval_sets"),
    "synthdiv.evaluate.metrics": "synthdiv.metrics.accuracy",
    "synthdiv.evaluate.predict": "synthdiv.data.predict",
    "synthdiv.evaluate.sets": "synthdiv.data.eval_sets",
    "synthdiv.evaluate.stage": "synthdiv.stages.evaluate.stage",
    "synthdiv.generate": ("synthdiv.stages.generate", "synthdiv.stages.generate.stage", "synthdiv.models.generators",
                          "synthdiv.models.generators.base", "synthdiv.stages.generate.shards"),
    "synthdiv.generate.base": "synthdiv.models.generators.base",
    "synthdiv.generate.diffusers_backend": "synthdiv.models.generators.diffusers",
    "synthdiv.generate.engine": "synthdiv.stages.generate.stage",
    "synthdiv.generate.estimate": "synthdiv.engine.estimate",
    "synthdiv.generate.filter": "synthdiv.stages.score.filters",
    "synthdiv.generate.img2img": ("synthdiv.stages.generate.img2img", "synthdiv.models.generators.image_fit"),
    "synthdiv.generate.plan_check": "synthdiv.stages.generate.plan_check",
    "synthdiv.generate.plan_file": "synthdiv.stages.plan.reader",
    "synthdiv.generate.producer": "synthdiv.stages.generate.producer",
    "synthdiv.generate.quality": "synthdiv.stages.generate.degenerate",
    "synthdiv.generate.registry": "synthdiv.models.generators",
    "synthdiv.generate.runners": "synthdiv.stages.generate.runners",
    "synthdiv.generate.samples": "synthdiv.stages.generate.contact_sheet",
    "synthdiv.generate.scoring": "synthdiv.stages.score.stage",
    "synthdiv.generate.shards": "synthdiv.stages.generate.shards",
    "synthdiv.generate.verify": "synthdiv.stages.generate.verify",
    "synthdiv.llm": "synthdiv.models.llm",
    "synthdiv.llm._gguf": "synthdiv.models.llm._gguf",
    "synthdiv.llm._grammar": "synthdiv.models.llm._grammar",
    "synthdiv.llm._sampling": "synthdiv.models.llm._sampling",
    "synthdiv.llm.base": "synthdiv.models.llm.base",
    "synthdiv.llm.cache": "synthdiv.models.llm.cache",
    "synthdiv.llm.llama_server": "synthdiv.models.llm.llama_server",
    "synthdiv.llm.openai_backend": "synthdiv.models.llm.openai_backend",
    "synthdiv.llm.structured": "synthdiv.models.llm.structured",
    "synthdiv.llm.templates": "synthdiv.models.llm.templates",
    "synthdiv.llm.transformers_backend": "synthdiv.models.llm.transformers_backend",
    "synthdiv.lock": "synthdiv.core.lock",
    "synthdiv.logs": "synthdiv.utils.logs",
    "synthdiv.names": "synthdiv.utils.names",
    "synthdiv.pipeline": "synthdiv.core.pipeline",
    "synthdiv.progress": ("synthdiv.utils.progress", "synthdiv.models.llm.progress"),
    "synthdiv.prompts": ("synthdiv.stages.prompts", "synthdiv.stages.prompts.stage"),
    "synthdiv.prompts.adaptive": "synthdiv.stages.plan.adaptive",
    "synthdiv.prompts.artifacts": "synthdiv.stages.prompts.reader",
    "synthdiv.prompts.budget": "synthdiv.stages.plan.budget",
    "synthdiv.prompts.compose": "synthdiv.stages.prompts.compose",
    "synthdiv.prompts.contexts": "synthdiv.stages.prompts.contexts",
    "synthdiv.prompts.debris": "synthdiv.lexicon.debris",
    "synthdiv.prompts.dedup": "synthdiv.stages.prompts.dedup",
    "synthdiv.prompts.diversity": "synthdiv.stages.prompts.diversity",
    "synthdiv.prompts.gather": "synthdiv.stages.prompts.gather",
    "synthdiv.prompts.grounded": "synthdiv.stages.prompts.grounded",
    "synthdiv.prompts.ids": "synthdiv.core.ids",
    "synthdiv.prompts.img2img": "synthdiv.stages.plan.img2img",
    "synthdiv.prompts.plan": "synthdiv.stages.plan.stage",
    "synthdiv.prompts.rounds": "synthdiv.stages.plan.rounds",
    "synthdiv.prompts.stage": "synthdiv.stages.prompts.stage",
    "synthdiv.prompts.styles": "synthdiv.stages.prompts.styles",
    "synthdiv.prompts.text": "synthdiv.stages.prompts.text",
    "synthdiv.quality": "synthdiv.stages.score",
    "synthdiv.quality.assess": "synthdiv.stages.score.assess",
    "synthdiv.quality.classifier": "synthdiv.stages.score.classifier",
    "synthdiv.quality.embeddings": "synthdiv.stages.score.embeddings",
    "synthdiv.quality.metrics": "synthdiv.metrics.diversity",
    "synthdiv.quality.near_duplicates": "synthdiv.metrics.near_duplicates",
    "synthdiv.rates": "synthdiv.engine.throughputs",
    "synthdiv.report": ("synthdiv.stages.report", "synthdiv.stages.report.stage"),
    "synthdiv.report.collect": "synthdiv.stages.report.collect",
    "synthdiv.report.plots": "synthdiv.stages.report.plots",
    "synthdiv.report.quality": "synthdiv.stages.report.quality",
    "synthdiv.report.results": "synthdiv.stages.report.results",
    "synthdiv.report.samples": "synthdiv.stages.report.samples",
    "synthdiv.run": ("synthdiv.core.rundir", "synthdiv.utils.io", "synthdiv.utils.hashing"),
    "synthdiv.schemas": "synthdiv.core.schemas",
    "synthdiv.stage_state": "synthdiv.core.status",
    "synthdiv.train": ("synthdiv.stages.train", "synthdiv.stages.train.stage"),
    "synthdiv.train.auxnorm": "synthdiv.stages.train.auxnorm",
    "synthdiv.train.checkpoint": "synthdiv.stages.train.checkpoint",
    "synthdiv.train.distributed": "synthdiv.stages.train.distributed",
    "synthdiv.train.export": "synthdiv.stages.train.export",
    "synthdiv.train.loop": "synthdiv.stages.train.loop",
    "synthdiv.train.mix": "synthdiv.stages.train.mix",
    "synthdiv.train.stage": "synthdiv.stages.train.stage",
    "synthdiv.train.validate": "synthdiv.stages.train.validate",
    "synthdiv.units": "synthdiv.utils.humanize",
}


class _OldPath(types.ModuleType):
    """A stand-in for an old module: attributes come from the new module(s), in order."""

    def __init__(self, name: str, targets: tuple[str, ...]) -> None:
        super().__init__(name, f"moved to {', '.join(targets)}")
        self.__path__: list[str] = []  # old packages had children, which are old paths too
        self._targets = targets

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                return getattr(module, attr)
        moved = ", ".join(self._targets)
        raise AttributeError(f"module {self.__name__!r} (moved to {moved}) has no attribute {attr!r}")

    def __dir__(self) -> list[str]:
        return sorted({n for t in self._targets for n in dir(importlib.import_module(t))})


class _OldRun(_OldPath):
    """``synthdiv.run`` was the run directory's module and, called, ran the stages; importing the old module puts
    this stand-in where the function was, so it still runs them."""

    def __call__(self, config: Any, until: str | None = None, redo: Any = ()) -> Any:
        from synthdiv.api import run

        return run(config, until=until, redo=redo)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        moved = MOVED[spec.name]
        targets = (moved,) if isinstance(moved, str) else moved
        warnings.warn(f"{spec.name} is now {' + '.join(targets)}; the old path goes in synthdiv 0.3",
                      DeprecationWarning, stacklevel=2)
        return (_OldRun if spec.name == "synthdiv.run" else _OldPath)(spec.name, targets)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install() -> None:
    """Put the finder last on ``sys.meta_path`` (once): real modules are always found first."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
