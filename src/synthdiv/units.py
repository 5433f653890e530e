"""Durations and sizes as people read them: ``"45 s"``, ``"12 min"``, ``"3.4 h"``, ``"355.2 GB"``."""

from __future__ import annotations

__all__ = ["human_duration", "human_bytes"]


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
