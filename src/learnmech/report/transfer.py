"""The learning-rate transfer figure: loss against learning rate per width, and eta* against width.

Drawn for :func:`learnmech.transfer`'s results (one :class:`learnmech.width_transfer.Transfer` per
parameterisation, ``"sp"`` and/or ``"mup"``) by the ``hparams.mup-transfer`` claim and by
``learnmech transfer``; the theory lines are :func:`learnmech.theory.lr_transfer.predicted_lr_shift`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from learnmech.report.figures import COLORS, band, finish_figure, new_figure, theory_line
from learnmech.theory.lr_transfer import ADAM_LR_SLOPES, predicted_lr_shift

__all__ = ["plot_transfer"]


def _width_colors(n: int):
    import matplotlib.pyplot as plt

    return plt.get_cmap("viridis")(np.linspace(0.0, 0.85, n))


def _plot_losses(ax, result, zero: float, title: str):
    """Loss / L_0 against eta, one curve per width (mean and 10-90% band over seeds), eta* marked."""
    lrs = result.learning_rates
    colors = _width_colors(len(result.widths))
    for i, (w, c) in enumerate(zip(result.widths, colors)):
        band(ax, lrs, result.losses[i].T / zero, color=c, label=f"width {w}")
        means = result.mean_loss[i] / zero  # (K,)
        diverged = ~np.isfinite(means)
        if diverged.any():
            ax.plot(lrs[diverged], np.full(diverged.sum(), 1.0), "x", color=c, markersize=6)
        eta = result.eta_star[i]
        if np.isfinite(eta):
            finite = np.isfinite(means)
            at = np.exp(np.interp(np.log2(eta), np.log2(lrs[finite]), np.log(means[finite])))
            ax.plot([eta], [at], "v", color=c, markersize=8, markeredgecolor="black",
                    fillstyle="none" if result.at_edge[i] else "full")
    ax.plot([], [], "v", color="gray", markeredgecolor="black", label="eta* (parabola fit; hollow: grid edge)")
    if not np.all(np.isfinite(result.losses)):
        ax.plot([], [], "x", color="gray", label="a seed diverged (drawn at 1)")
    ax.set(yscale="log", xlabel="learning rate eta (Adam)", title=title,
           ylabel="final training loss / zero-function loss")
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=7)


def _plot_optima(ax, widths, results: Mapping, mup_band: float, sp_slope: float):
    """log2 eta* against log2 width: measured (dots), fitted line (solid), theory from the narrowest (dashed)."""
    x = np.log2(np.asarray(widths, np.float64))
    names = {"mup": "muP", "sp": "SP"}
    for j, (p, result) in enumerate(results.items()):
        color = COLORS[j]
        y = np.log2(result.eta_star)
        ax.plot(x, y, "o", color=color, markersize=7, label=f"{names[p]}: measured eta*")
        if np.isfinite(result.slope):
            ax.plot(x, result.intercept + result.slope * x, "-", color=color, linewidth=1.0,
                    label=f"{names[p]}: fit, slope {result.slope:.2f}")
        if np.isfinite(y[0]):
            theory_line(ax, x, y[0] + predicted_lr_shift(widths, p), color=color,
                        label=f"{names[p]}: theory, slope {ADAM_LR_SLOPES[p]:g}")
    y0 = np.log2(next(iter(results.values())).eta_star[0])  # the narrowest width: the same net in both
    if np.isfinite(y0):
        if "mup" in results:
            ax.axhspan(y0 - mup_band, y0 + mup_band, color=COLORS[0], alpha=0.1,
                       label=f"muP verdict: within +/- {mup_band:g}")
        if "sp" in results:
            ax.plot(x, y0 + sp_slope * (x - x[0]), ":", color=COLORS[1], linewidth=1.0,
                    label=f"SP verdict: slope <= {sp_slope:g}")
    ax.set(xlabel="log2 width", ylabel="log2 eta* (optimal learning rate)")
    ax.legend(fontsize=7)


def plot_transfer(results: Mapping, zero_loss: float, *, mup_band: float, sp_slope: float, verdict=None,
                  title: str = "muP transfer: the optimal learning rate across widths"):
    """Loss vs learning rate per width, SP and muP side by side, and ``log2 eta*`` vs ``log2 width``.

    ``results`` maps ``"sp"`` / ``"mup"`` to :class:`learnmech.width_transfer.Transfer`; ``zero_loss`` is
    ``L_0``, the y-axis unit; ``mup_band`` and ``sp_slope`` draw the claim's verdict thresholds (muP's
    ``eta*`` within ``+/- mup_band`` octaves of the narrowest width's, SP's slope at most ``sp_slope``).
    """
    order = [p for p in ("sp", "mup") if p in results]
    fig, axes = new_figure(len(order) + 1, title=title)
    names = {"mup": "muP (mup-adam, base = narrowest width)", "sp": "SP (standard)"}
    for ax, p in zip(axes, order):
        _plot_losses(ax, results[p], zero_loss, names[p])
    limits = np.array([ax.get_ylim() for ax in axes[:-1]])  # (panels, 2): one y range for SP and muP
    for ax in axes[:-1]:
        ax.set_ylim(limits[:, 0].min(), limits[:, 1].max())
    widths = next(iter(results.values())).widths
    _plot_optima(axes[-1], widths, {p: results[p] for p in ("mup", "sp") if p in results}, mup_band, sp_slope)
    return finish_figure(fig, verdict)
