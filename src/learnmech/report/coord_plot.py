"""The coordinate-check figure: activation size against width, one panel per step, one line per layer.

Drawn from a :class:`learnmech.observe.coords.CoordCheck` in one call. The first panel is the
activation RMS at initialisation, ``rms_l(n)``; panel ``t`` (``t = 1..k``) is the RMS of the
change ``h_l(t) - h_l(0)`` on the probe. Both axes are logarithmic, so a layer whose size scales
like ``n^a`` is a straight line of slope ``a``; muP predicts slope 0 for every change and every
init but the readout's (-1/2) (Yang et al. 2022, TP-V, arXiv:2203.03466, Appendix "coordinate
check", whose plots show the same quantities in the same layout). Each line is the mean over seeds,
with the band between the lowest and highest seed when per-seed values are present; the legend
gives each layer's slope in that panel.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.ticker import NullLocator

from learnmech.report.figures import COLORS

__all__ = ["coord_check_figure", "plot_coord_check"]

_PANELS_PER_ROW = 4


def _log_slope(widths: np.ndarray, values: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = np.log(widths), np.log(values)
        xc = x - x.mean()
        return float(xc @ (y - y.mean()) / (xc @ xc))


def _panel(ax, widths: np.ndarray, mean: np.ndarray, per_seed: np.ndarray | None, names, ylabel: str, title: str):
    """One panel: ``mean (W, L)`` against width, the seeds' range ``per_seed (W, S, L)`` shaded."""
    for l, name in enumerate(names):
        color = COLORS[l % len(COLORS)]
        if per_seed is not None:
            with np.errstate(all="ignore"):
                lo, hi = np.nanmin(per_seed[:, :, l], axis=1), np.nanmax(per_seed[:, :, l], axis=1)
            ax.fill_between(widths, lo, hi, color=color, alpha=0.15, linewidth=0)
        ax.plot(widths, mean[:, l], marker="o", markersize=3.5, color=color,
                label=f"{name} (slope {_log_slope(widths, mean[:, l]):+.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(widths, [str(int(w)) for w in widths])
    ax.xaxis.set_minor_locator(NullLocator())  # only the measured widths on x; y keeps its minor labels
    ax.set(xlabel="width n", ylabel=ylabel, title=title)
    ax.legend(fontsize=7)


def coord_check_figure(check, *, title: str | None = None):
    """The figure of :func:`plot_coord_check`, returned open (``k + 1`` axes: init, then step 1..k)."""
    import matplotlib.pyplot as plt

    widths = np.asarray(check.widths, np.float64)
    steps = [int(t) for t in check.steps]
    panels = len(steps) + 1
    cols = min(panels, _PANELS_PER_ROW)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False, layout="constrained")
    axes = list(axes.ravel())
    for ax in axes[panels:]:
        fig.delaxes(ax)
    names = check.names
    rms_seed = None if check.rms_per_seed is None else np.asarray(check.rms_per_seed)
    _panel(axes[0], widths, np.asarray(check.rms), rms_seed, names, "RMS of h_0 on the probe", "initialisation")
    change = np.asarray(check.change)  # (W, K, L)
    for k, t in enumerate(steps):
        seed = None if check.change_per_seed is None else np.asarray(check.change_per_seed)[:, :, k]
        _panel(axes[k + 1], widths, change[:, k], seed, names, "RMS of h_t - h_0 on the probe", f"step {t}")
    fig.suptitle(title or "coordinate check: activation size against width (muP: flat)", fontsize=11)
    return fig


def plot_coord_check(check, path: str | Path, *, title: str | None = None) -> Path:
    """Draw ``check`` (a :class:`learnmech.observe.coords.CoordCheck`) and save it as a PNG at ``path``.

    One panel for the activation RMS at initialisation and one per recorded step for the RMS of
    its change, each against width on log-log axes with one line per layer (module docstring).
    ``path`` must end in ``.png``; its directory is created if needed. Returns the path written.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path: must end in .png (the figure is saved as PNG), got {str(path)!r}")
    fig = coord_check_figure(check, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, format="png", dpi=130)
    finally:
        plt.close(fig)
    return path
