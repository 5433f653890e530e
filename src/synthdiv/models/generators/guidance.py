"""Classifier-free guidance per image and over an interval of the schedule, for any diffusers pipeline that guides.

A diffusers text-to-image pipeline applies one ``guidance_scale`` to its whole batch on every step: it runs the
denoiser on ``[unconditional; conditional]`` (2B rows) and combines ``u + g (c - u)``. :func:`guided` wraps the
denoiser's ``forward`` for one pipeline call so that

- each image ``i`` gets its own scale ``g_i`` (the combination is done here, per row), and
- outside ``interval`` (fractions of the sampler's schedule, 0 = pure noise) only the conditional half is run:
  B rows instead of 2B, which is where the guidance interval saves time.

Both halves of what the wrapper returns hold the combined prediction, so the pipeline's own combination
``d + G (d - d)`` leaves it as it is, whatever its call-level scale ``G``. The pipeline must be called with ``G > 1``
so that it builds the doubled batch (:data:`CALL_SCALE`). A denoiser call that is not a doubled batch of the
expected size (a pipeline that does not guide: LCM, Turbo and FLUX are distilled) is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from synthdiv.errors import ConfigError

__all__ = ["CALL_SCALE", "guided", "guided_steps", "guides", "in_interval", "schedule_fraction"]

CALL_SCALE = 2.0  # any scale > 1 makes the pipeline double its batch; the wrapper replaces what it would combine


def guides(pipe: Any) -> bool:
    """Whether ``pipe`` is a pipeline that applies classifier-free guidance by doubling its batch."""
    return hasattr(type(pipe), "do_classifier_free_guidance")


def schedule_fraction(t: Any, timesteps: Any) -> float:
    """Where timestep ``t`` lies in the scheduler's ``timesteps`` (first = 0.0, pure noise), as a fraction."""
    import torch

    value = float(t.flatten()[0]) if isinstance(t, torch.Tensor) else float(t)
    steps = timesteps.float().cpu() if isinstance(timesteps, torch.Tensor) else torch.tensor(timesteps).float()
    index = int(torch.argmin((steps - value).abs()))
    return index / max(1, len(steps))


def in_interval(fraction: float, interval: tuple[float, float] | None) -> bool:
    """Whether a step at ``fraction`` of the schedule is guided (every step without an interval)."""
    return interval is None or interval[0] <= fraction < interval[1]


def guided_steps(steps: int, interval: tuple[float, float] | None) -> int:
    """How many of a schedule's ``steps`` are guided, placed as :func:`schedule_fraction` places them."""
    return sum(in_interval(i / max(1, steps), interval) for i in range(steps))


def _halve(value: Any, rows: int) -> Any:
    """``value`` with every tensor of ``2 * rows`` rows cut to its conditional half (nested dicts, lists too)."""
    import torch

    if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == 2 * rows:
        return value[rows:]
    if isinstance(value, dict):
        return {k: _halve(v, rows) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_halve(v, rows) for v in value)
    return value


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) else out.sample


def _with_first(out: Any, sample: Any) -> Any:
    if isinstance(out, tuple):
        return (sample, *out[1:])
    return type(out)(sample=sample)


@contextlib.contextmanager
def guided(
    denoiser: Any, scheduler: Any, guidances: Sequence[float], interval: tuple[float, float] | None,
    what: str = "models.generator.model",
) -> Iterator[dict[str, int]]:
    """Within the block, ``denoiser`` applies ``guidances[i]`` to row ``i`` of a doubled batch, and runs only the
    conditional rows at steps outside ``interval``. Yields a count of denoiser ``calls`` and the ``rows`` it ran."""
    import torch

    rows = len(guidances)
    own = "forward" in vars(denoiser)  # torch.compile's module keeps its compiled forward on the instance
    original = denoiser.forward
    count = {"calls": 0, "rows": 0}
    scale: dict[tuple[Any, Any], torch.Tensor] = {}

    def per_row(like: torch.Tensor) -> torch.Tensor:
        key = (like.device, like.dtype)
        if key not in scale:
            scale[key] = torch.tensor(list(guidances), device=like.device, dtype=like.dtype)
        return scale[key].view(-1, *([1] * (like.ndim - 1)))

    def forward(*args: Any, **kwargs: Any) -> Any:
        sample = args[0] if args else next(iter(kwargs.values()))
        if not isinstance(sample, torch.Tensor) or sample.shape[0] != 2 * rows:
            raise ConfigError(f"{what}: the pipeline did not run classifier-free guidance on a doubled batch; "
                              "generate.sampling needs a model that uses CFG (not a distilled Turbo/LCM/FLUX model)")
        t = args[1] if len(args) > 1 else kwargs.get("timestep")
        on = in_interval(schedule_fraction(t, scheduler.timesteps), interval)
        count["calls"] += 1
        if on:
            count["rows"] += 2 * rows
            out = original(*args, **kwargs)
            uncond, cond = _first(out).chunk(2)
            combined = uncond + per_row(uncond) * (cond - uncond)
        else:
            count["rows"] += rows
            out = original(*_halve(args, rows), **_halve(kwargs, rows))
            combined = _first(out)
        return _with_first(out, torch.cat([combined, combined]))

    denoiser.forward = forward
    try:
        yield count
    finally:
        if own:
            denoiser.forward = original
        else:
            del denoiser.forward  # back to the class's forward
