"""Figure panels of hparams.linear-scaling (:mod:`learnmech.atlas.hparams.linear_scaling`).

Each panel draws on one axis from the claim's measurement and its summary ``s`` (the claim's
``_summary``: ``D_k`` with jackknife errors, ``B_simple(e)`` and ``B_crit``); the claim's ``plot``
lays them out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from learnmech.report import COLORS, theory_line

if TYPE_CHECKING:
    from learnmech.atlas.hparams.linear_scaling import Config

__all__ = ["ladder_colors", "plot_curves", "plot_discrepancy", "plot_noise_scale"]


def ladder_colors(n: int):
    """``n`` colours along viridis, one per run of the ladder ``k``."""
    import matplotlib.pyplot as plt

    return plt.get_cmap("viridis")(np.linspace(0.0, 0.9, n))


def plot_curves(ax, cfg: Config, measurement):
    """Mean over seeds of each run's excess risk; the base run dashed (the rule puts every run on it)."""
    colors = ladder_colors(len(cfg.ks))
    for i, k in enumerate(cfg.ks[1:], start=1):
        run = measurement[f"loss/{i}"]
        mean = np.mean(run.y, axis=0)
        keep = (run.x > 0) & np.isfinite(mean)
        label = f"k B0 = {k * cfg.base_batch}" + ("" if keep.sum() == (run.x > 0).sum() else " (diverged)")
        ax.plot(run.x[keep], mean[keep], color=colors[i], linewidth=1.1, label=label)
    base = measurement["loss/0"]
    keep = base.x > 0
    reference = np.mean(base.y, axis=0)[keep]
    theory_line(ax, base.x[keep], reference, color="black",
                label=f"B0 = {cfg.base_batch}, eta0 = {cfg.eta0:g}: the rule puts every run here")
    ax.axvspan(cfg.window_start, cfg.examples, color="gray", alpha=0.08, label="compared window")
    finite = reference[np.isfinite(reference)]
    if finite.size:  # runs that blow up leave the frame instead of squashing the others
        ax.set_ylim(0.5 * finite.min(), 8 * finite.max())
    ax.set(xscale="log", yscale="log", xlabel="examples seen e",
           ylabel="excess risk (1/2) E (f - f*)^2, mean over seeds")
    ax.legend(fontsize=5.5, ncol=2)


def plot_discrepancy(ax, cfg: Config, s, agree: float, separate_factor: float):
    """``D_k`` against the batch ``k B0`` with the ``agree`` threshold and the region ``>= separate_factor B_crit``."""
    batch, D, err = s["batch"][1:], s["D"][1:], s["D_err"][1:]
    finite = np.isfinite(D)
    top = max(0.2, float(np.max(D[finite], initial=0.2)))
    ax.errorbar(batch[finite], D[finite], yerr=err[finite], fmt="o-", color=COLORS[0], markersize=4,
                label="SGD, learning rate k eta0 (measured; jackknife error)")
    if (~finite).any():
        ax.plot(batch[~finite], np.full((~finite).sum(), 2 * top), "x", color=COLORS[3], label="diverged")
    ax.plot(batch, s["D_noisy"][1:], ".:", color=COLORS[2], label="same, noisy test loss (not judged)")
    if cfg.adam:
        ab, Da = np.asarray(cfg.adam_ks[1:], np.float64) * cfg.base_batch, s["D_adam"][1:]
        ok = np.isfinite(Da)
        ax.plot(ab[ok], Da[ok], "s--", color=COLORS[1], markersize=4, label="Adam, square-root rule (not judged)")
    theory_line(ax, batch, np.full(batch.size, 1e-4), color="gray", label="rule's prediction D = 0 (drawn at 1e-4)")
    ax.axhline(agree, color="black", linewidth=1.0, label="5%: agreement threshold")
    ax.axvline(s["b_crit"], color=COLORS[3], linewidth=1.0, label=f"B_crit = B_simple = {s['b_crit']:.0f}")
    ax.axvspan(separate_factor * s["b_crit"], max(batch[-1], separate_factor * s["b_crit"]) * 1.5,
               color=COLORS[3], alpha=0.08, label=f">= {separate_factor:g} B_crit: must separate")
    ax.set(xscale="log", yscale="log", ylim=(5e-5, 4 * top), xlabel="batch size k B0 (learning rate k eta0)",
           ylabel="D_k: mean |log L_k - log L_1| over the window")
    ax.legend(fontsize=5.5, loc="lower right")


def plot_noise_scale(ax, cfg: Config, measurement, s):
    """The pooled ``B_simple(e)`` of the base run and its window geometric mean ``B_crit``."""
    e = measurement["trace_cov"].x
    keep = e > 0
    ax.plot(e[keep], s["b_simple_curve"][keep], "o-", color=COLORS[4], markersize=3,
            label="B_simple = tr(Sigma) / |G|^2, base run (seeds pooled)")
    ax.axhline(s["b_crit"], color=COLORS[3], linewidth=1.0, label="B_crit: geometric mean over the window")
    ax.axvspan(cfg.window_start, cfg.examples, color="gray", alpha=0.08, label="compared window")
    ax.set(xscale="log", yscale="log", xlabel="examples seen e", ylabel="simple noise scale (examples)")
    ax.legend(fontsize=6)
