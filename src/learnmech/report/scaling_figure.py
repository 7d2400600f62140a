"""The figure of a scaling-law fit: data against the fitted law, and the compute-optimal frontier.

Panels, left to right:

1. **parity**: measured loss against the fitted law's prediction (log-log), with the identity line;
   with a hold-out report, the prediction is that of the law fitted below the threshold and the
   points above it (the extrapolation) are drawn in a second colour;
2. **the law**: loss against the first size input (``N``, or ``x``/``D`` for one-input forms),
   points coloured by compute ``C = 6 N D`` when it is known, and the fitted law drawn along
   isoFLOP curves ``L(N, C/(6N))`` at a few of the data's budgets (forms of ``N`` and ``D`` only);
   for one-input forms the fitted curve itself;
3. **frontier** (Chinchilla-type forms only): ``N_opt(C)`` and ``D_opt(C)`` from the fit
   (:func:`learnmech.theory.scaling_fit.compute_optimal`) over the data's compute range and two
   decades beyond it, with the 10-90% band over bootstrap refits when they were run.
"""

from __future__ import annotations

import numpy as np

from learnmech.report.figures import COLORS, new_figure
from learnmech.theory.scaling_fit import HoldoutReport, compute_optimal
from learnmech.theory.scaling_forms import get_form, predict

__all__ = ["plot_scaling_fit"]

def _compute(inputs) -> np.ndarray | None:
    """``C = 6 N D`` per point when both ``n`` and ``d`` are inputs, else ``None``."""
    if "n" in inputs and "d" in inputs:
        return 6.0 * np.asarray(inputs["n"], float) * np.asarray(inputs["d"], float)
    return None


def _parity(ax, loss, predicted, held_out, title: str) -> None:
    ax.scatter(predicted[~held_out], loss[~held_out], s=9, color=COLORS[0], alpha=0.7, label="fitted points")
    if held_out.any():
        ax.scatter(predicted[held_out], loss[held_out], s=14, color=COLORS[3], marker="^", label="held out")
    lo, hi = float(min(loss.min(), predicted.min())), float(max(loss.max(), predicted.max()))
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=1.0, label="measured = predicted")
    ax.set(xscale="log", yscale="log", xlabel="fitted loss", ylabel="measured loss", title=title)
    ax.legend(fontsize=7)


def _law_two_inputs(ax, law, inputs, loss, compute) -> None:
    n = np.asarray(inputs["n"], float)
    points = ax.scatter(n, loss, c=np.log10(compute), s=9, cmap="viridis", alpha=0.8)
    ax.figure.colorbar(points, ax=ax, label="log10 compute C = 6ND")
    if get_form(law.form).name in ("chinchilla", "kaplan-joint"):
        budgets = np.unique(np.quantile(compute, [0.1, 0.5, 0.9]))
        cmap = points.get_cmap()
        norm = points.norm
        for c in budgets:
            grid = np.geomspace(n.min() / 2, n.max() * 2, 200)
            curve = law.predict({"n": grid, "d": c / (6.0 * grid)})
            ax.plot(grid, curve, "--", color=cmap(norm(np.log10(c))), linewidth=1.3,
                    label=f"fit at C = {c:.2g}")
        ax.legend(fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="loss", title="data and fitted law")


def _law_one_input(ax, law, inputs, loss) -> None:
    name = next(iter(inputs))
    x = np.asarray(inputs[name], float)
    ax.scatter(x, loss, s=9, color=COLORS[0], alpha=0.8, label="data")
    grid = np.geomspace(x.min() / 2, x.max() * 4, 200)
    ax.plot(grid, law.predict({name: grid}), "--", color=COLORS[1], linewidth=1.5, label="fit")
    ax.set(xscale="log", yscale="log", xlabel=name, ylabel="loss", title="data and fitted law")
    ax.legend(fontsize=7)


def _frontier(ax, law, compute) -> None:
    grid = np.geomspace(compute.min(), compute.max() * 100.0, 100)
    n_opt, d_opt = compute_optimal(law.params_, grid)
    for values, label, color in ((n_opt, "N_opt", COLORS[0]), (d_opt, "D_opt", COLORS[1])):
        ax.plot(grid, values, color=color, linewidth=1.6, label=label)
    boot = getattr(law, "bootstrap_", None)
    if boot is not None:
        samples = [dict(zip(boot.samples, row)) for row in zip(*boot.samples.values())]
        paths = np.array([np.stack(compute_optimal(p, grid)) for p in samples])  # (boot, 2, C)
        with np.errstate(all="ignore"):
            lo, hi = np.nanquantile(paths, [0.1, 0.9], axis=0)  # (2, C) each
        for i, color in enumerate((COLORS[0], COLORS[1])):
            ax.fill_between(grid, lo[i], hi[i], color=color, alpha=0.2, linewidth=0)
    ax.axvline(compute.max(), color="grey", linestyle=":", linewidth=1.0, label="largest budget in the data")
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOP)", ylabel="N_opt, D_opt",
           title="compute-optimal frontier")
    ax.legend(fontsize=7)


def plot_scaling_fit(law, inputs, loss, *, holdout: HoldoutReport | None = None, title: str = ""):
    """The figure of a fitted :class:`~learnmech.theory.scaling_law.ScalingLaw` on its data.

    ``inputs`` maps input names (``n``, ``d``, ``u``, ``x``) to arrays, ``loss`` is the measured
    loss; ``holdout`` (from ``law.holdout(threshold)``) switches the parity panel to the law fitted
    below the threshold, with the points above it marked as held out.
    """
    form = get_form(law.form)
    loss = np.asarray(loss, float)
    compute = _compute(inputs)
    held_out = np.zeros(loss.size, bool)
    predicted, parity_title = np.asarray(law.predict(inputs), float), "parity"
    if holdout is not None and compute is not None:
        held_out = compute > holdout.threshold
        predicted = np.asarray(predict(form, holdout.params, **inputs), float)
        parity_title = f"parity, fitted on C <= {holdout.threshold:.3g}"
    frontier = form.frontier and compute is not None
    fig, axes = new_figure(3 if frontier else 2, title=title or f"scaling-law fit: {form.name}")
    _parity(axes[0], loss, predicted, held_out, parity_title)
    if compute is not None:
        _law_two_inputs(axes[1], law, inputs, loss, compute)
    else:
        _law_one_input(axes[1], law, inputs, loss)
    if frontier:
        _frontier(axes[2], law, compute)
    return fig
