"""Figure panels of hparams.critical-batch (:mod:`learnmech.atlas.hparams.critical_batch`).

Each panel draws on one axis from the claim's summary ``s`` (its ``_summary``: tuned steps per batch,
per-seed steps, the fitted ``S_min`` and ``B_noise``, the pooled ``B_simple``) and the prediction's
curves; the claim's ``plot`` lays them out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from learnmech.report import COLORS, theory_line
from learnmech.theory.batch_tradeoff import steps_hyperbola

if TYPE_CHECKING:
    from learnmech.atlas.hparams.critical_batch import Config

__all__ = ["label_125", "plot_noise", "plot_pareto", "plot_steps"]


def label_125(ax):
    """Log axes spanning a decade or two: label 1-2-5 ticks in plain numbers, no minor labels."""
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())


def plot_steps(ax, cfg: Config, prediction, s):
    """Steps to target against the batch size: measured (tuned lr), exact theory, fitted hyperbola, knees."""
    b = s["batch"]
    with np.errstate(all="ignore"):
        lo, hi = np.nanmin(s["steps_seed"], axis=1), np.nanmax(s["steps_seed"], axis=1)
    bars = np.maximum(0.0, [s["steps"] - lo, hi - s["steps"]])  # single seeds may all cross before their mean
    ax.errorbar(b, s["steps"], yerr=bars, fmt="o", color=COLORS[0], capsize=2,
                label="measured, lr tuned (bars: single seeds)")
    untuned = np.isfinite(s["steps"]) & ~s["tuned"]
    if untuned.any():
        ax.plot(b[untuned], s["steps"][untuned], "x", color=COLORS[3], label="best lr at grid edge (not fitted)")
    theory_line(ax, prediction["steps"].x, prediction["steps"].y[0], color="black",
                label=f"exact theory (its fit: B_noise = {prediction['b_noise'].y[0, 0]:.1f})")
    if "b_noise" in s:
        bb = np.geomspace(b[0], b[-1], 200)
        ax.plot(bb, steps_hyperbola(bb, s["s_min"], s["b_noise"], cfg.n_train), color=COLORS[0], linewidth=1.2,
                label="fit S_min (1 + B_noise / B)")
        ax.axvline(s["b_noise"], color=COLORS[0], linestyle=":", linewidth=1.4, label=f"B_noise fit = {s['b_noise']:.1f}")
    ax.axvline(s["b_simple"], color=COLORS[1], linewidth=1.4, label=f"B_simple measured = {s['b_simple']:.1f}")
    if np.isfinite(s["b_simple_stderr"]):
        ax.axvspan(s["b_simple"] - 2 * s["b_simple_stderr"], s["b_simple"] + 2 * s["b_simple_stderr"],
                   color=COLORS[1], alpha=0.15, linewidth=0, label="B_simple +/- 2 s.e. (jackknife over seeds)")
    ax.set(xscale="log", yscale="log", xlabel="batch size B (examples)", ylabel="steps to target S")
    ax.legend(fontsize=7)


def plot_pareto(ax, cfg: Config, prediction, s):
    """Examples ``E = B S`` against steps ``S``: the hyperbola ``(S / S_min - 1)(E / E_min - 1) = 1``."""
    b = s["batch"]
    ax.plot(s["steps"], b * s["steps"], "o", color=COLORS[0], label="measured, lr tuned")
    for bi, si in zip(b, s["steps"]):
        if np.isfinite(si):
            ax.annotate(f"B={bi:g}", (si, bi * si), fontsize=6, xytext=(3, 2), textcoords="offset points")
    theory_line(ax, prediction["steps"].y[0], prediction["steps"].x * prediction["steps"].y[0], color="black",
                label="exact theory")
    if "b_noise" in s:
        bb = np.geomspace(b[0] / 4, b[-1] * 4, 200)
        sf = steps_hyperbola(bb, s["s_min"], s["b_noise"], cfg.n_train)
        ax.plot(sf, bb * sf, color=COLORS[0], linewidth=1.2, label="fit: (S/S_min - 1)(E/E_min - 1) = 1")
        ax.axvline(s["s_min"], color="gray", linewidth=0.8, linestyle=":", label="S_min and E_min (fit)")
        ax.axhline(s["s_min"] * s["b_noise"], color="gray", linewidth=0.8, linestyle=":")
    ax.set(xscale="log", yscale="log", xlabel="steps to target S", ylabel="examples to target E = B S")
    label_125(ax)
    ax.legend(fontsize=7)


def plot_noise(ax, cfg: Config, prediction, measurement, s, tuned_noise):
    """``B_simple`` against the excess loss along the smallest, knee and largest tuned runs.

    ``tuned_noise(i, j)`` returns ``tr(Sigma)`` and ``|G|^2``, ``(seeds, T)`` each, of member ``(batch i, lr j)``.
    """
    t = measurement["loss/0"].x
    tuned = np.flatnonzero(s["tuned"])
    if tuned.size:
        knee = tuned[np.argmin(np.abs(np.log(s["batch"][tuned] / s["b_simple"])))]
        for k, i in enumerate(sorted({tuned[0], knee, tuned[-1]})):
            j = s["best"][i]
            L = len(cfg.learning_rates)
            excess = measurement[f"loss/{i}"].y.reshape(L, cfg.seeds, -1)[j].mean(0) - s["floor"]
            tr, g2 = (a.mean(0) for a in tuned_noise(i, j))
            keep = t <= s["steps"][i]
            ax.plot(excess[keep], (tr / g2)[keep], "o-", markersize=2, linewidth=1.0, color=COLORS[2 + k],
                    label=f"measured, B = {cfg.batches[i]} (seed mean)")
            c = prediction[f"path/{i}"]
            theory_line(ax, c.x, c.y[0], color=COLORS[2 + k], label=f"exact theory, B = {cfg.batches[i]}")
    ax.axhline(s["b_simple"], color=COLORS[1], linewidth=1.4, label="B_simple, averaged over tuned runs")
    if "b_noise" in s:
        ax.axhline(s["b_noise"], color=COLORS[0], linestyle=":", linewidth=1.4, label="B_noise (fit)")
    ax.axvline(s["target"], color="gray", linewidth=0.8, label="target")
    ax.set(xscale="log", yscale="log", xlabel="excess training loss L - L_floor (falls to the right)",
           ylabel="B_simple = tr(Sigma) / |G|^2")
    label_125(ax)
    ax.invert_xaxis()
    ax.legend(fontsize=6)
