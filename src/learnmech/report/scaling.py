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
   (:func:`learnmech.theory.scaling_frontier.compute_optimal`) over the data's compute range and two
   decades beyond it, with the 10-90% band over bootstrap refits when they were run (refits
   without a frontier left out). A fit without a frontier (an exponent or coefficient not > 0)
   gets a panel that says so instead, and so does a fit that cannot be trusted (not identified
   or not converged, ``law.frontier_withheld_``: :mod:`learnmech.fit.diagnostics`): the panel
   says why the frontier is withheld, and the title names the warnings' count.

At most ``MAX_DRAWN`` points are drawn per scatter panel (a fixed-seed sample, said in the
title); the frontier panel spans the compute range of all points. Curves and axis limits stay in
``[1e-300, 1e300]`` (a log axis needs headroom for its margins and ticks), and only finite,
positive values reach the log axes, so data near ``1e308`` or a law that overflows still draws.
"""

from __future__ import annotations

import textwrap
import warnings

import numpy as np

from learnmech.fit.scaling_fit import HoldoutReport
from learnmech.report.figures import COLORS, new_figure
from learnmech.theory.scaling_forms import get_form, predict
from learnmech.theory.scaling_frontier import compute_optimal, frontier_problem

__all__ = ["plot_scaling_fit"]

MAX_DRAWN = 20_000  # points per scatter panel: a PNG/SVG of a million markers is slow and ~100 MB
DRAW_SEED = 0
_TINY, _HUGE = 1e-300, 1e300  # drawn ranges stay inside these: a log axis's ticks and margins need headroom


def _span(lo: float, hi: float, num: int) -> np.ndarray:
    """``num`` log-spaced values from ``lo`` to ``hi``, both first clipped into ``[_TINY, _HUGE]``."""
    return np.geomspace(float(np.clip(lo, _TINY, _HUGE)), float(np.clip(hi, _TINY, _HUGE)), num)


def _limits_in_doubles(ax) -> None:
    """Clip autoscaled log-axis limits (data plus margins) into ``[_TINY, _HUGE]`` when they leave it."""
    for get, put in ((ax.get_xlim, ax.set_xlim), (ax.get_ylim, ax.set_ylim)):
        with np.errstate(over="ignore", under="ignore"):
            lo, hi = get()
        if not _TINY <= lo <= hi <= _HUGE:
            put(float(np.clip(lo, _TINY, _HUGE)), float(np.clip(hi, _TINY, _HUGE)))


def _positive(values) -> np.ndarray:
    """``values`` as floats with every non-finite or non-positive entry NaN (not drawn on a log axis)."""
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)

def _drawn(n_points: int) -> np.ndarray | None:
    """Indices of the points drawn (sorted, seed ``DRAW_SEED``) when more than ``MAX_DRAWN``, else ``None``."""
    if n_points <= MAX_DRAWN:
        return None
    return np.sort(np.random.default_rng(DRAW_SEED).choice(n_points, MAX_DRAWN, replace=False))


def _compute(inputs) -> np.ndarray | None:
    """``C = 6 N D`` per point when both ``n`` and ``d`` are inputs, else ``None``."""
    if "n" in inputs and "d" in inputs:
        with np.errstate(over="ignore"):
            return np.asarray(inputs["n"], float) * np.asarray(inputs["d"], float) * 6.0  # N D first: 6 N may overflow
    return None


def _parity(ax, loss, predicted, held_out, title: str) -> None:
    ax.scatter(predicted[~held_out], loss[~held_out], s=9, color=COLORS[0], alpha=0.7, label="fitted points")
    if held_out.any():
        ax.scatter(predicted[held_out], loss[held_out], s=14, color=COLORS[3], marker="^", label="held out")
    shown = np.concatenate([loss, predicted[np.isfinite(predicted) & (predicted > 0)]])
    lo, hi = float(shown.min()), float(shown.max())
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
            with np.errstate(over="ignore"):
                grid = _span(n.min() / 2, n.max() * 2, 200)
            with np.errstate(over="ignore", under="ignore"):
                tokens = c / (6.0 * grid)
            grid = grid[np.isfinite(tokens) & (tokens > 0)]  # the isoFLOP curve where D is a double
            if grid.size == 0:
                continue
            curve = _positive(law.predict({"n": grid, "d": c / (6.0 * grid)}))
            ax.plot(grid, curve, "--", color=cmap(norm(np.log10(c))), linewidth=1.3,
                    label=f"fit at C = {c:.2g}")
        if ax.get_lines():
            ax.legend(fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="loss", title="data and fitted law")


def _law_one_input(ax, law, inputs, loss) -> None:
    name = next(iter(inputs))
    x = np.asarray(inputs[name], float)
    ax.scatter(x, loss, s=9, color=COLORS[0], alpha=0.8, label="data")
    with np.errstate(over="ignore"):
        grid = _span(x.min() / 2, x.max() * 4, 200)
    ax.plot(grid, _positive(law.predict({name: grid})), "--", color=COLORS[1], linewidth=1.5, label="fit")
    ax.set(xscale="log", yscale="log", xlabel=name, ylabel="loss", title="data and fitted law")
    ax.legend(fontsize=7)


def _no_frontier(ax, problem: str, head: str = "no compute-optimal frontier for this fit:") -> None:
    """The frontier panel of a law that has none (or whose frontier is withheld): the reason, in words."""
    ax.text(0.5, 0.5, head + "\n" + textwrap.fill(problem.split(";")[0], 44),
            ha="center", va="center", wrap=True, fontsize=9, transform=ax.transAxes)
    ax.set(xticks=[], yticks=[], title="compute-optimal frontier")


def _frontier_paths(samples: dict, grid) -> np.ndarray:
    """``(refits, 2, C)`` frontiers ``(N_opt, D_opt)`` of the bootstrap refits that have one."""
    refits = [dict(zip(samples, row)) for row in zip(*samples.values())]
    with np.errstate(all="ignore"):
        paths = [np.stack(compute_optimal(p, grid)) for p in refits if not frontier_problem(p)]
    return _positive(np.array(paths).reshape(-1, 2, grid.size))


def _frontier(ax, law, compute) -> None:
    withheld = getattr(law, "frontier_withheld_", "")
    if withheld:
        _no_frontier(ax, withheld.replace(";", ","), "compute-optimal frontier withheld:")
        return
    problem = frontier_problem(law.params_)
    if problem:
        _no_frontier(ax, problem)
        return
    with np.errstate(over="ignore"):
        grid = _span(compute.min(), compute.max() * 100.0, 100)
    with np.errstate(all="ignore"):
        n_opt, d_opt = (_positive(v) for v in compute_optimal(law.params_, grid))
    for values, label, color in ((n_opt, "N_opt", COLORS[0]), (d_opt, "D_opt", COLORS[1])):
        ax.plot(grid, values, color=color, linewidth=1.6, label=label)
    boot = getattr(law, "bootstrap_", None)
    paths = _frontier_paths(boot.samples, grid) if boot is not None else np.empty((0, 2, grid.size))
    if paths.shape[0] >= 2:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: a budget beyond float64
            lo, hi = np.nanquantile(paths, [0.1, 0.9], axis=0)  # (2, C) each
        for i, color in enumerate((COLORS[0], COLORS[1])):
            ax.fill_between(grid, lo[i], hi[i], color=color, alpha=0.2, linewidth=0)
    ax.axvline(compute.max(), color="grey", linestyle=":", linewidth=1.0, label="largest budget in the data")
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOP)", ylabel="N_opt, D_opt",
           title="compute-optimal frontier")
    ax.legend(fontsize=7)


def plot_scaling_fit(law, inputs, loss, *, holdout: HoldoutReport | None = None, title: str = ""):
    """The figure of a fitted :class:`~learnmech.fit.ScalingLaw` on its data.

    ``inputs`` maps input names (``n``, ``d``, ``u``, ``x``) to arrays, ``loss`` is the measured
    loss; ``holdout`` (from ``law.holdout(threshold)``) switches the parity panel to the law fitted
    below the threshold, with the points above it marked as held out.
    """
    form = get_form(law.form)
    compute = _compute(inputs)  # all points: the frontier panel spans their whole compute range
    title = title or f"scaling-law fit: {form.name}"
    warned = len(getattr(law, "warnings_", ()))
    if warned:
        title += f" ({warned} warning{'s' if warned > 1 else ''}: see the fit's diagnostics)"
    drawn = _drawn(np.size(loss))
    if drawn is not None:
        title += f" ({drawn.size:,} of {np.size(loss):,} points drawn, a fixed-seed sample)"
        inputs, loss = {k: np.asarray(v)[drawn] for k, v in inputs.items()}, np.asarray(loss)[drawn]
    loss = np.asarray(loss, float)
    held_out = np.zeros(loss.size, bool)
    predicted, parity_title = np.asarray(law.predict(inputs), float), "parity"
    if holdout is not None and compute is not None:
        held_out = _compute(inputs) > holdout.threshold
        predicted = np.asarray(predict(form, holdout.params, **inputs), float)
        parity_title = f"parity, fitted on C <= {holdout.threshold:.3g}"
    frontier = form.frontier and compute is not None
    fig, axes = new_figure(3 if frontier else 2, title=title)
    with np.errstate(over="ignore", under="ignore"):  # log-axis margins of data near 1e308 overflow: clipped below
        _parity(axes[0], loss, predicted, held_out, parity_title)
        if compute is not None:
            _law_two_inputs(axes[1], law, inputs, loss, _compute(inputs))
        else:
            _law_one_input(axes[1], law, inputs, loss)
        if frontier:
            _frontier(axes[2], law, compute)
        for ax in axes:
            _limits_in_doubles(ax)
    return fig
