"""Figures for claims: theory curves against measured means with a band.

Contract. Every claim figure is built from these pieces so that the atlas looks the same
everywhere: theory is drawn as a dashed line, the measurement as a solid line (the mean over
members) with a shaded band (the 10-90% quantiles over members), log-time axes where training
time spans decades, axes labelled with their units. ``save_figure`` writes PNG and SVG and
returns the paths; the HTML atlas page embeds the same files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib

if os.environ.get("MPLBACKEND") is None:
    matplotlib.use("Agg")  # figures are files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from learnmech.store.files import write_files  # noqa: E402

__all__ = [
    "COLORS",
    "band",
    "figure_bytes",
    "finish_figure",
    "new_figure",
    "save_figure",
    "theory_line",
    "verdict_banner",
]

COLORS = plt.get_cmap("tab10").colors


def new_figure(n_panels: int = 1, *, title: str = "", width: float = 4.6, height: float = 3.6):
    """A figure with ``n_panels`` side-by-side axes (always returned as a list)."""
    fig, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, height), squeeze=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig, list(axes[0])


def theory_line(ax, x, y, *, color, label: str | None = None, **kwargs):
    """A prediction: dashed, drawn above the measurement."""
    return ax.plot(x, y, linestyle="--", linewidth=1.6, color=color, label=label, zorder=3, **kwargs)


def band(ax, x, ys, *, color, label: str | None = None, quantiles=(0.1, 0.9), **kwargs):
    """A measurement over members ``ys`` of shape ``(members, T)``: mean line and quantile band."""
    ys = np.atleast_2d(np.asarray(ys, dtype=float))
    with np.errstate(all="ignore"), _quiet():
        mean = np.nanmean(ys, axis=0)
        lo, hi = np.nanquantile(ys, quantiles, axis=0)
    ax.fill_between(x, lo, hi, color=color, alpha=0.22, linewidth=0, zorder=1)
    return ax.plot(x, mean, color=color, linewidth=1.4, alpha=0.9, label=label, zorder=2, **kwargs)


def verdict_banner(fig, verdict) -> None:
    """Write the verdict (status, metric, value vs threshold) along the bottom of the figure."""
    color = {"holds": "#1a7f37", "fails": "#cf222e"}.get(verdict.status, "#9a6700")
    fig.text(
        0.01, 0.01,
        f"{verdict.status.upper()}: {verdict.metric} = {verdict.value:.6g} (threshold {verdict.threshold:.4g})",
        color=color, fontsize=8.5, ha="left", va="bottom",
    )


def finish_figure(fig, verdict=None):
    """Add the verdict banner (when judged) and return the figure: the last line of every claim plot."""
    if verdict is not None:
        verdict_banner(fig, verdict)
    return fig


def figure_bytes(fig, formats: Sequence[str] = ("png", "svg")) -> dict[str, bytes]:
    """Render ``fig`` in each format ({"png": b"...", "svg": b"..."}) and close it.

    A worker of a distributed sweep returns these bytes, and the driver, the only writer,
    puts them beside the store: workers need no shared file system.
    """
    import io

    fig.tight_layout(rect=(0, 0.04, 1, 1))
    rendered = {}
    for fmt in formats:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=130 if fmt == "png" else None)
        rendered[fmt] = buffer.getvalue()
    plt.close(fig)
    return rendered


def save_figure(fig, directory: str | Path, stem: str, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Save ``fig`` as ``directory/stem.{png,svg}`` (created if needed) and close it."""
    return write_files(directory, stem, figure_bytes(fig, formats))


class _quiet:
    """Silence numpy's all-NaN-slice warnings while summarising diverged members."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
