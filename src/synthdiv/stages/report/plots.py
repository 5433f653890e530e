"""Matplotlib figures of a run, rendered to PNG bytes (Agg backend: no display needed)."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence

logger = logging.getLogger(__name__)

__all__ = ["histogram_png", "curves_png"]


def _figure(width: float = 5.3, height: float = 3.0):  # noqa: ANN202 - (figure, axes)
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=100)


def _png(fig) -> bytes:  # noqa: ANN001 - a matplotlib Figure
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def histogram_png(
    values: Mapping[str, Sequence[float]],
    title: str,
    xlabel: str,
    threshold: float | None = None,
    threshold_label: str | None = None,
    bins: int = 30,
) -> bytes:
    """Overlaid histograms, one per label, with an optional vertical line at ``threshold``."""
    fig, ax = _figure()
    for label, vals in values.items():
        if len(vals):
            ax.hist(list(vals), bins=bins, alpha=0.55, label=label)
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label=threshold_label or f"filter {threshold:g}")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    if values:
        ax.legend(fontsize=7)
    return _png(fig)


def curves_png(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str, xlabel: str,
               ylabel: str) -> bytes:
    """Line plots, one per label, of ``(x, y)`` pairs."""
    fig, ax = _figure()
    for label, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), label=label, marker="." if len(xs) < 30 else None)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if series:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)
