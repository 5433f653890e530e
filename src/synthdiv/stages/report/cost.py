"""What each accuracy gain cost: per training variant, the synthetic images it trained on, the device time that made
them, the LLM requests behind the prompts, and its top-1 gain over the real-only baseline per thousand images and
per device-hour, with the gain's paired-bootstrap interval scaled the same way.

The device time is measured, never assumed: this run's generate stage records the seconds it spent and the images
it made on its device (one worker's numbers; every worker of a multi-GPU run makes images at that rate), so a
variant that trained on ``k`` synthetic images cost ``k * seconds / made_images`` device-seconds. A run whose images
all came from an earlier invocation (nothing made in the last one) has no measured rate: its time stays blank. The
device is named as generate recorded it (``cuda:0`` is GPU time, ``cpu`` CPU time), so no CPU hour reads as a GPU
hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from synthdiv.stages.report.results import EvalResult, main_set, pick_baseline, set_order, top1_delta
from synthdiv.stages.train.reader import read_data_info

if TYPE_CHECKING:
    from synthdiv.config.root import RunConfig
    from synthdiv.core.rundir import RunDir

__all__ = ["VariantCost", "generation_rate", "llm_requests", "variant_costs", "cost_section"]

_LLM_STAGES = ("disambiguate", "prompts")


@dataclass(frozen=True)
class VariantCost:
    """One training variant against the baseline on the main evaluation set (fractions, not percent)."""

    variant: str
    images: int
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


def llm_requests(run: RunDir) -> int | None:
    """LLM requests the disambiguate and prompts stages made (answers from the LLM cache included), or None when
    neither recorded any."""
    counts = []
    for stage in _LLM_STAGES:
        state = run.read_state(stage)
        value = (state.summary or {}).get("llm_requests") if state is not None else None
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
    rate = generation_rate(run)
    out = []
    for variant in sorted(results):
        info = read_data_info(run, variant) or {}
        images = info.get("synthetic_images")
        if variant == baseline or name not in results[variant] or not isinstance(images, int) or images <= 0:
            continue
        delta, ci = top1_delta(cfg, results[variant][name], results[baseline][name], seed)
        hours = images * rate[1] / 3600 if rate is not None else None
        out.append(VariantCost(variant, images, rate[0] if rate else None, hours, delta, ci))
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
            "variant": cost.variant, "images": f"{cost.images:,}", "device": cost.device or "",
            "hours": "" if cost.device_hours is None else f"{cost.device_hours:.3g}",
            "delta": delta, "delta_ci": delta_ci, "per_k": per_k, "per_k_ci": per_k_ci,
            "per_hour": per_h, "per_hour_ci": per_h_ci,
        })
    requests = llm_requests(run)
    return {"rows": rows, "baseline": pick_baseline(cfg, sorted(results)) or "", "main_set": main_set(results) or "",
            "llm_requests": "" if requests is None else f"{requests:,}"}
