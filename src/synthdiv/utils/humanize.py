"""Durations, sizes and rates as people read them: ``"45 s"``, ``"12 min"``, ``"355.2 GB"``, ``"52 tokens/s"``."""

from __future__ import annotations

__all__ = ["human_duration", "human_bytes", "human_rate"]


def human_duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"3.4 h"``, ``"2,140 h (89 days)"``: never ``"0.00 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 1 or seconds == 0 else f"{seconds:.2g} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    hours = seconds / 3600
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours:,.0f} h ({hours / 24:,.0f} days)"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000:
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def human_rate(per_second: float, unit: str = "") -> str:
    """``"34,700 tokens/s"``, ``"12.3/s"``, ``"9.2/min"``, ``"1.5/h"``: digits without an exponent, per second,
    minute or hour, whichever puts one or more before the point (a rate below one per hour stays per hour)."""
    suffix = f" {unit}" if unit else ""
    if not per_second > 0:
        return f"0{suffix}/s"
    for per, span in ((1.0, "s"), (60.0, "min"), (3600.0, "h")):
        value = per_second * per
        if value >= 1 or span == "h":
            break
    if value >= 100:
        digits = f"{value:,.0f}"
    elif value >= 0.01:
        digits = f"{value:.3g}"
    else:
        digits = "<0.01"
    return f"{digits}{suffix}/{span}"
