"""What each accuracy gain cost: per training variant, the synthetic images it trained on, the device time that made
them, the LLM requests behind the prompts, and its top-1 gain over the real-only baseline per thousand images and
per device-hour, with the gain's paired-bootstrap interval scaled the same way.

The device time is measured, never assumed: this run's generate stage records the seconds it spent and the images
it made on its device (one worker's numbers; every worker of a multi-GPU run makes images at that rate), so a
variant that trained on ``k`` synthetic images cost ``k * seconds / made_images`` device-seconds. A run whose images
all came from an earlier invocation (nothing made in the last one) has no measured rate: its time stays blank. The
device is named as generate recorded it (``cuda:0`` is GPU time, ``cpu`` CPU time), so no CPU hour reads as a GPU
hour. Pooled adaptive rounds made more images than any variant trains on: the ones their learner selection left out
count in every synthetic variant's device time (they were made for it), not in its images.

An adaptive run also gets a row per round: the images it made and kept, their device time, and the change of the
variant's class-mean top-1 on the round's evaluate set from the round's planning (its recorded per-class errors) to
the next round's (or, for the last, to the current result), per 1,000 kept images and per device-hour. That change is
a plain difference of two measurements without an interval (the errors of earlier rounds are not kept per image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.stages.evaluate.reader import read_result
from synthdiv.stages.plan.reader import plan_rounds
from synthdiv.stages.report.results import EvalResult, main_set, pick_baseline, set_order, top1_delta
from synthdiv.stages.score.reader import pool_discards
from synthdiv.stages.train.reader import read_data_info

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

__all__ = ["VariantCost", "RoundCost", "generation_rate", "llm_requests", "variant_costs", "round_costs",
           "cost_section"]

_LLM_STAGES = ("disambiguate", "prompts")


@dataclass(frozen=True)
class VariantCost:
    """One training variant against the baseline on the main evaluation set (fractions, not percent)."""

    variant: str
    images: int  # synthetic images trained on
    generated: int  # images made for it: those, and pooled images the learner selection left out
    device: str | None
    device_hours: float | None
    delta: float | None
    delta_ci: tuple[float, float] | None

    def per_thousand_images(self) -> tuple[float | None, tuple[float, float] | None]:
        """The top-1 gain per 1,000 synthetic images, and its interval."""
        return _per(self.delta, self.delta_ci, self.images / 1000)

    def per_device_hour(self) -> tuple[float | None, tuple[float, float] | None]:
        """The top-1 gain per device-hour of generation, and its interval."""
        return _per(self.delta, self.delta_ci, self.device_hours)


@dataclass(frozen=True)
class RoundCost:
    """One adaptive round: what it made and kept, and the variant's class-mean top-1 before and after it."""

    round: int
    variant: str
    eval_set: str
    generated: int
    kept: int
    device_hours: float | None
    before: float | None
    after: float | None

    @property
    def gain(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before

    def per_thousand_images(self) -> float | None:
        """The class-mean top-1 change per 1,000 images the round kept."""
        return _per(self.gain, None, self.kept / 1000)[0]

    def per_device_hour(self) -> float | None:
        return _per(self.gain, None, self.device_hours)[0]


def _per(delta: float | None, ci: tuple[float, float] | None, cost: float | None
         ) -> tuple[float | None, tuple[float, float] | None]:
    if delta is None or not cost:
        return None, None
    return delta / cost, None if ci is None else (ci[0] / cost, ci[1] / cost)


def generation_rate(run: RunDir) -> tuple[str, float] | None:
    """``(device, seconds per image)`` measured by the generate stage's last invocation, or None when it made no
    image (or has not run)."""
    state = run.read_state("generate")
    summary = state.summary if state is not None and state.status == "done" else None
    if not summary:
        return None
    made, seconds = summary.get("made_images"), summary.get("seconds")
    if not isinstance(made, int) or made <= 0 or not isinstance(seconds, int | float) or seconds <= 0:
        return None
    return str(summary.get("device", "unknown")), float(seconds) / made


def llm_requests(run: RunDir, key: str = "llm_requests") -> int | None:
    """LLM requests the disambiguate and prompts stages made (answers from the LLM cache included), or None when
    neither recorded any; ``key="llm_tokens"``: the tokens the LLM generated for them (recorded by the stage runner
    where the backend reports tokens, as the transformers backend does; a cached answer costs none)."""
    counts = []
    for stage in _LLM_STAGES:
        state = run.read_state(stage)
        value = (state.summary or {}).get(key) if state is not None else None
        if isinstance(value, int):
            counts.append(value)
    return sum(counts) if counts else None


def variant_costs(cfg: RunConfig, run: RunDir, results: dict[str, dict[str, EvalResult]]) -> list[VariantCost]:
    """The cost of every evaluated variant that trained on synthetic images, against the baseline on the main set
    (the same delta and interval as the accuracy table)."""
    baseline, name = pick_baseline(cfg, sorted(results)), main_set(results)
    if baseline is None or name is None or name not in results.get(baseline, {}):
        return []
    seed = cfg.seed + set_order(results).index(name)
    rate, discarded = generation_rate(run), pool_discards(run)
    out = []
    for variant in sorted(results):
        info = read_data_info(run, variant) or {}
        images = info.get("synthetic_images")
        if variant == baseline or name not in results[variant] or not isinstance(images, int) or images <= 0:
            continue
        delta, ci = top1_delta(cfg, results[variant][name], results[baseline][name], seed)
        hours = (images + discarded) * rate[1] / 3600 if rate is not None else None
        out.append(VariantCost(variant, images, images + discarded, rate[0] if rate else None, hours, delta, ci))
    return out


def _class_mean_top1(per_class: Any) -> float | None:
    values = [float(v) for v in (per_class or {}).values() if isinstance(v, int | float)]
    return float(np.mean(values)) if values else None


def round_costs(run: RunDir) -> list[RoundCost]:
    """One :class:`RoundCost` per adaptive round of the plan (none for a run without rounds)."""
    rounds = plan_rounds(run.plan) if run.plan.exists() else []
    rate = generation_rate(run)
    out = []
    for i, record in enumerate(rounds):
        errors = record.get("errors")
        before = 1.0 - float(np.mean(errors)) if errors else None
        if i + 1 < len(rounds):
            later = rounds[i + 1].get("errors")
            after = 1.0 - float(np.mean(later)) if later else None
        else:
            result = read_result(run.eval / str(record.get("variant")) / f"{record.get('eval_set')}.json")
            after = _class_mean_top1((result or {}).get("per_class"))
        generated = int(record.get("images", 0))
        kept = int(sum(record.get("keep", record.get("counts", [generated]))))
        out.append(RoundCost(int(record.get("round", i + 1)), str(record.get("variant", "")),
                             str(record.get("eval_set", "")), generated, kept,
                             generated * rate[1] / 3600 if rate is not None else None, before, after))
    return out


def _points(value: float | None, ci: tuple[float, float] | None, digits: int = 2) -> tuple[str, str]:
    """A gain in accuracy points (percent) and its interval, as the report shows them."""
    if value is None:
        return "", ""
    shown = f"{100 * value:+.{digits}f}"
    return shown, "" if ci is None else f"[{100 * ci[0]:+.{digits}f}, {100 * ci[1]:+.{digits}f}]"


def cost_section(cfg: RunConfig, run: RunDir, results: dict[str, dict[str, EvalResult]]) -> dict[str, Any]:
    """The report's cost table: one row per variant that trained on synthetic images."""
    rows = []
    for cost in variant_costs(cfg, run, results):
        delta, delta_ci = _points(cost.delta, cost.delta_ci)
        per_k, per_k_ci = _points(*cost.per_thousand_images(), digits=3)
        per_h, per_h_ci = _points(*cost.per_device_hour(), digits=3)
        rows.append({
            "variant": cost.variant, "images": f"{cost.images:,}", "generated": f"{cost.generated:,}",
            "device": cost.device or "",
            "hours": "" if cost.device_hours is None else f"{cost.device_hours:.3g}",
            "delta": delta, "delta_ci": delta_ci, "per_k": per_k, "per_k_ci": per_k_ci,
            "per_hour": per_h, "per_hour_ci": per_h_ci,
        })
    requests, tokens = llm_requests(run), llm_requests(run, "llm_tokens")
    return {"rows": rows, "baseline": pick_baseline(cfg, sorted(results)) or "", "main_set": main_set(results) or "",
            "llm_requests": "" if requests is None else f"{requests:,}",
            "llm_tokens": "" if tokens is None else f"{tokens:,}", "rounds": _round_rows(run)}


def _round_rows(run: RunDir) -> list[dict[str, str]]:
    rows = []
    for r in round_costs(run):
        gain, per_k, per_h = r.gain, r.per_thousand_images(), r.per_device_hour()
        rows.append({
            "round": str(r.round), "measured_on": f"{r.variant} on {r.eval_set}", "generated": f"{r.generated:,}",
            "kept": f"{r.kept:,}", "hours": "" if r.device_hours is None else f"{r.device_hours:.3g}",
            "before": "" if r.before is None else f"{100 * r.before:.2f}",
            "after": "" if r.after is None else f"{100 * r.after:.2f}",
            "gain": _points(gain, None)[0], "per_k": _points(per_k, None, 3)[0], "per_hour": _points(per_h, None, 3)[0],
        })
    return rows
