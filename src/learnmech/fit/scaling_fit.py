"""Fitting parametric scaling laws: Huber on log-loss, L-BFGS from a grid, bootstrap, hold-out.

Contract: float64 throughout (``jax.enable_x64`` is switched on inside every call, whatever the
caller's setting); inputs are 1-D arrays of positive values; results are plain numpy/Python.

Method (Hoffmann et al. 2022, arXiv:2203.15556, App. D.2; Besiroglu et al. 2024,
arXiv:2404.10102): with ``r_i = log L_hat(theta; x_i) - log L_i`` the objective is

    J(theta) = sum_i w_i Huber_delta(r_i)      (reduction "sum"; "mean" divides by sum_i w_i)
    Huber_delta(r) = r^2 / 2 if |r| <= delta else delta (|r| - delta / 2),   delta = 1e-3,

with unit weights for a fit and multinomial counts for a bootstrap resample. ``J`` is C^1 (its
second derivative jumps where ``|r_i| = delta``), so a vanishing gradient certifies a minimum.

1. **Grid stage**: an L-BFGS (history 10) run from every start of the form's grid (4,500 for
   Chinchilla, 3,888 for the data-constrained law) for ``max_iter`` iterations, all starts in one
   jitted ``vmap``. Each iteration takes the two-loop direction (steepest descent when it is not a
   descent direction) and evaluates ``J`` at the seven trial steps ``t = 0.2^j`` in parallel,
   keeping the largest that satisfies Armijo's condition: a line search without data-dependent
   loops, so that vectorisation costs nothing.
2. **Successive halving**: the best 256 continue for 60 iterations, the best ``n_refine`` of
   those for ``refine_iter``; at each cut a lane within ``BASIN_TOL`` of a better one is dropped
   (it has joined that descent), so the survivors are distinct.
3. **Polish**: the best ``npolish`` distinct survivors are polished by scipy's L-BFGS-B (float64,
   exact jax gradient, ``gtol = 1e-14``, ``ftol = 1e-15``) and Newton steps
   (:func:`~learnmech.fit.convergence.polish_reported`); the lowest objective wins. ``converged``
   says the winner is stationary (its gradient below ``GRAD_TOL`` relative to the objective's
   scale, or no step could lower ``J`` beyond float64 rounding: :mod:`learnmech.fit.convergence`)
   and no parameter is at a bound; ``stop_reason`` says which, or why not (:class:`FitResult`).
4. **Identification** (:mod:`learnmech.fit.identification`): the polished optima are grouped into
   basins; the other basins within 1% of the best objective are reported (``FitResult.basins``),
   and a parameter that runs to a bound of its parameterisation, or beyond any value the data
   resolve, is reported as unidentified (``FitResult.unidentified``).
5. **Diagnostics** (:mod:`learnmech.fit.diagnostics`): every rule that says the fit cannot be
   trusted as it stands (a bound, other basins, ``E`` far below the data, a runaway exponent, a
   local 95% interval wider than the data support, non-convergence with its reason) is an entry
   of ``FitResult.diagnostics``; the bootstrap adds its own interval entries
   (``Bootstrap.diagnostics``).

Fixed parameters (``fixed``): the fit runs on :func:`reduced_form`, over the free coordinates,
from the default starts restricted to them; the held values stay float64.

Large tables. Stages 1 and 2 and the refine only *screen* starts; when a table has more than
``SUBSAMPLE_ROWS`` points they run on a fixed-seed subsample of that many points (drawn without
replacement, ``SUBSAMPLE_SEED``), and the polish, its ranking and the ``converged`` check run on
*all* points: the returned optimum is a stationary point of the full objective, certified by the
full gradient. Tables of at most ``SUBSAMPLE_ROWS`` points are fitted exactly as without this rule.
(The refine stage runs on the subsample too: ``n_refine x refine_iter x 8`` fixed evaluations of
every point would be ``5e10`` point evaluations, minutes, on ``1e6`` points, where the polish
stops as soon as it has converged.)

Memory. Each solver call holds ``lanes x padded points`` per-point values about thirty times over
(seven parallel Armijo trials, the gradient, their temporaries: ~230 bytes per element measured on
CPU); lanes per call are chosen (:func:`lanes_per_call`) so that this product stays at most
``ELEMENT_BUDGET``, and both factors stay powers of two so that a few compiled shapes serve every
call. Peak memory is therefore ``O(points)`` (the table and its padded logs) plus a constant.

The objective is very flat along a valley that trades ``A, alpha`` against ``B, beta``: on the
Chinchilla table scipy's *default* stopping rule (relative reduction ``ftol = 2.2e-9``) stops
about ``1e-4`` (relative) above the minimum, with ``beta`` and ``B`` still 1e-3 and 3% away —
hence the tight tolerances here.

Bootstrap: resample the points with replacement (multinomial weights), refit every resample
from the full-data optimum — vmapped over resamples — and report percentile intervals. The counts
are drawn one solver call's worth of resamples at a time, in order, from one generator: the same
numbers as one ``(n_boot, points)`` draw, without ever holding it.

Progress: ``progress(label, done, total)``, when given, is called after each solver call and each
polished start (``label`` names the stage, ``done`` of ``total`` lanes or starts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import jax
import numpy as np

from learnmech.fit.convergence import convergence, objective_function, polish_reported
from learnmech.fit.diagnostics import (Diagnostic, bootstrap_diagnostics, fit_diagnostics, local_intervals,
                                      warnings_of)
from learnmech.fit.identification import Basin, basins, close_basins, distinct, unidentified
from learnmech.fit.scaling_solver import ELEMENT_BUDGET, LANE_CHUNK, MIN_POINTS, huber, lanes_per_call, run_lanes
from learnmech.theory.scaling_forms import ScalingForm, get_form, log_inputs, predict, reduced_form

__all__ = [
    "ELEMENT_BUDGET",
    "LANE_CHUNK",
    "MIN_POINTS",
    "Basin",
    "Bootstrap",
    "Diagnostic",
    "FitResult",
    "HoldoutReport",
    "bootstrap_fit",
    "fit_batch",
    "fit_form",
    "holdout_report",
    "huber",
    "lanes_per_call",
]

GRAD_TOL = 1e-8  # converged: ||grad||_inf <= GRAD_TOL * n_points * delta ("sum"; GRAD_TOL * delta for "mean")
REDUCTIONS = ("sum", "mean")
SUBSAMPLE_ROWS = 4096  # more points than this: the start screening runs on a subsample of this many
SUBSAMPLE_SEED = 0  # fixed, so that a fit is reproducible


@dataclass(frozen=True)
class FitResult:
    """A fitted law: ``params`` in natural units, the optimum's objective and its diagnostics.

    ``grad_norm`` is ``||grad J||_inf`` in fit coordinates at the returned optimum. ``converged``
    is stationarity, ``grad_norm <= GRAD_TOL * scale`` with ``scale = n_points * delta`` for
    ``"sum"`` (``delta`` for ``"mean"``), the size of ``grad J`` when residuals are of order
    ``delta``, or else no step along the gradient lowering ``J`` beyond float64 rounding
    (:mod:`learnmech.fit.convergence`), **and** no parameter unidentified. ``unidentified`` names the natural parameters that ran to a bound of
    their parameterisation or beyond any value the data resolve (:mod:`learnmech.fit.identification`).
    ``stop_reason`` says why it is (not) converged in words (:mod:`learnmech.fit.convergence`).
    ``intervals`` are the local (Gauss-Newton) 95% intervals of the free parameters and
    ``diagnostics`` every finding of :mod:`learnmech.fit.diagnostics` (``warnings``: those that are
    not notes; ``identified``: none of severity ``"unidentified"``).
    ``basins`` are the other distinct optima among the polished starts whose objective is within
    1% of ``objective`` (best first): when there are any, the data do not single out one law.
    ``n_agree`` counts the polished starts that reached the same optimum (within 1e-6 in ``J``,
    relative); ``runner_up`` is the objective of the best polished optimum in another basin (NaN if none).
    ``fixed`` holds the parameters held at given values (``coords`` are then the free coordinates).
    """

    form: str
    params: dict[str, float]
    objective: float
    n_points: int
    n_starts: int
    converged: bool
    grad_norm: float
    coords: tuple[float, ...] = field(default=(), repr=False)  # optimum in fit coordinates
    runner_up: float = math.nan  # objective of the best other polished start (a different basin, if any)
    n_agree: int = 1
    basins: tuple[Basin, ...] = ()  # other basins within 1% of the best objective
    unidentified: tuple[str, ...] = ()  # parameters the data cannot tell from a bound of their parameterisation
    fixed: dict[str, float] = field(default_factory=dict)
    stop_reason: str = ""  # why converged (gradient / float64 precision) or why not
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # local 95% (Gauss-Newton)
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        """The diagnostics that are warnings (all but notes)."""
        return warnings_of(self.diagnostics)

    @property
    def identified(self) -> bool:
        """No diagnostic of severity ``"unidentified"``."""
        return not any(d.severity == "unidentified" for d in self.diagnostics)


@dataclass(frozen=True)
class Bootstrap:
    """Bootstrap refits: ``samples[name]`` ``(n_boot,)``, percentile intervals ``ci[name]`` and the
    interval rules of :mod:`learnmech.fit.diagnostics` applied to them (``diagnostics``)."""

    samples: dict[str, np.ndarray]
    ci: dict[str, tuple[float, float]]
    level: float
    n_boot: int
    n_failed: int  # refits whose objective was not finite (dropped from the intervals)
    diagnostics: tuple[Diagnostic, ...] = ()


@dataclass(frozen=True)
class HoldoutReport:
    """Extrapolation error: fit on ``compute <= threshold``, errors on ``compute > threshold``."""

    threshold: float
    n_train: int
    n_test: int
    mean_abs_rel_error: float
    max_abs_rel_error: float
    rmse_log: float
    params: dict[str, float]


# ------------------------------------------------------------------ inputs


def _prepare(form: ScalingForm, inputs: Mapping, loss) -> tuple[dict, np.ndarray]:
    logs = log_inputs(form, inputs)
    y = np.asarray(loss, dtype=np.float64)
    n = y.shape[-1]
    if any(v.shape[0] != n for v in logs.values()):
        raise ValueError(f"loss: must have one value per point ({ {k: v.shape[0] for k, v in logs.items()} }), got {n}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("loss: must be finite and > 0")
    if n < form.n_params + 1:
        raise ValueError(f"loss: need at least {form.n_params + 1} points for {form.n_params} parameters, got {n}")
    return logs, np.log(y)


def _check(delta: float, reduction: str) -> None:
    if not delta > 0:
        raise ValueError(f"delta: must be > 0, got {delta}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: must be one of {REDUCTIONS}, got {reduction!r}")


def _starts(form: ScalingForm, starts) -> np.ndarray:
    if starts is None:
        return form.starts()
    if isinstance(starts, Mapping):  # {param natural name: values} for a user grid in natural units
        raise TypeError("starts: pass an array (S, k) of fit coordinates, or use user_form(starts=...)")
    out = np.atleast_2d(np.asarray(starts, dtype=np.float64))
    if out.shape[1] != form.n_params:
        raise ValueError(f"starts: must be (S, {form.n_params}) fit coordinates {form.coords}, got {out.shape}")
    return out


def _grad_scale(n: int, delta: float, reduction: str) -> float:
    return (max(1, n) if reduction == "sum" else 1.0) * delta


def _screening_points(logs: dict, log_y: np.ndarray) -> tuple[dict, np.ndarray]:
    """The points the start screening runs on: all of them, or ``SUBSAMPLE_ROWS`` drawn with ``SUBSAMPLE_SEED``."""
    n = log_y.size
    if n <= SUBSAMPLE_ROWS:
        return logs, log_y
    keep = np.sort(np.random.default_rng(SUBSAMPLE_SEED).choice(n, SUBSAMPLE_ROWS, replace=False))  # (SUBSAMPLE_ROWS,)
    return {k: v[keep] for k, v in logs.items()}, log_y[keep]


def _stage_report(progress, label: str):
    """``report(done, total)`` for :func:`run_lanes` that forwards to ``progress(label, done, total)``."""
    if progress is None:
        return None
    return lambda done, total: progress(label, done, total)


# ------------------------------------------------------------------ public fitting


def fit_form(
    form: str | ScalingForm,
    inputs: Mapping[str, np.ndarray],
    loss,
    *,
    delta: float = 1e-3,
    reduction: str = "sum",
    starts=None,
    max_iter: int = 15,
    n_refine: int = 16,
    refine_iter: int = 400,
    npolish: int = 8,
    fixed: Mapping[str, float] | None = None,
    progress=None,
) -> FitResult:
    """Fit ``form`` to ``(inputs, loss)`` by Huber on log-loss from a grid of starts (module docstring).

    Args:
      form: a name in ``FORMS`` or a :class:`ScalingForm`.
      inputs: ``{"n": (points,), "d": ..., ...}`` positive values, the columns the form reads.
      loss: ``(points,)`` positive losses.
      delta, reduction: the Huber threshold (on log-loss) and ``"sum"`` / ``"mean"``.
      starts: ``(S, k)`` starting points in fit coordinates (``form.coords``); default the form's grid.
      max_iter: L-BFGS iterations of the grid stage; ``refine_iter`` those of the best
        ``n_refine`` distinct starts; the best ``npolish`` distinct ones are polished.
      fixed: natural parameters held at given values (e.g. ``{"E": 1.87}``); only for forms whose
        fit coordinate of that parameter is one-to-one with it (every built-in form).
      progress: ``progress(label, done, total)`` after each solver call and polished start.

    More than ``SUBSAMPLE_ROWS`` points: the starts are screened on a fixed subsample and the
    polish runs on all points (module docstring), so the result is the full objective's optimum.

    >>> rng = np.random.default_rng(0)
    >>> n, d = 10 ** rng.uniform(7, 10, 40), 10 ** rng.uniform(9, 12, 40)
    >>> true = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.36}
    >>> fit = fit_form("chinchilla", {"n": n, "d": d}, predict("chinchilla", true, n=n, d=d))
    >>> round(fit.params["alpha"], 6), fit.converged
    (0.34, True)
    """
    form = get_form(form)
    _check(delta, reduction)
    if fixed:
        return _fit_fixed(form, inputs, loss, fixed, delta=delta, reduction=reduction, starts=starts,
                          max_iter=max_iter, n_refine=n_refine, refine_iter=refine_iter, npolish=npolish,
                          progress=progress)
    logs, log_y = _prepare(form, inputs, loss)
    grid = _starts(form, starts)
    screen_logs, screen_y = _screening_points(logs, log_y)
    tol = GRAD_TOL * _grad_scale(log_y.size, delta, reduction)
    with jax.enable_x64(True):
        theta, obj = _screen(form, reduction, grid, screen_logs, screen_y, delta,
                             ((grid.shape[0], max_iter), (256, 60), (n_refine, refine_iter)), progress)
        order = distinct(theta, [i for i in np.argsort(obj, kind="stable") if np.isfinite(obj[i])], npolish)
        reports = []
        for i in order:  # on all points
            reports.append(polish_reported(form, reduction, theta[i], logs, log_y, delta))
            if progress is not None:
                progress(f"polishing the best {len(order)} on all {log_y.size} points", len(reports), len(order))
        reports.sort(key=lambda p: p.objective)
        best = reports[0]
        x, f, g = best.theta, best.objective, best.grad_norm
        loose, loose_coords = unidentified(form, reduction, x, logs, log_y, delta, tol)
        verdict = convergence(best, tol, objective_function(form, reduction, logs, log_y, delta))
        params = form.to_natural(x)
        held = tuple(p for p in params if p not in form.params)  # a reduced form's held parameters
        intervals = local_intervals(form, x, logs, log_y, skip=held)
    found = basins(form, [(p.theta, p.objective, p.grad_norm) for p in reports], ignore=loose_coords)
    close = close_basins(found)
    return FitResult(
        form=form.name, params=params, objective=f, n_points=log_y.size, n_starts=grid.shape[0],
        converged=verdict.stationary and not loose, grad_norm=g, coords=tuple(float(v) for v in x),
        runner_up=found[1].objective if len(found) > 1 else math.nan, basins=close,
        n_agree=sum(abs(p.objective - f) <= 1e-6 * abs(f) for p in reports), unidentified=loose,
        stop_reason=(f"stationary ({verdict.reason}), but {', '.join(loose)} at a bound of the parameterisation"
                     if verdict.stationary and loose else verdict.reason), intervals=intervals,
        diagnostics=fit_diagnostics(params, loose, len(close), verdict, intervals, float(np.exp(log_y.min())), held),
    )


def _screen(form, reduction, grid, logs, log_y, delta, stages, progress):
    """Successive halving: for each ``(keep, n_iter)`` the best ``keep`` lanes so far run ``n_iter`` more
    L-BFGS iterations (every start first). From the second stage on, a lane within ``BASIN_TOL``
    (:mod:`learnmech.fit.identification`) of a better one is skipped: it has joined that lane's
    descent, and keeping it would only repeat it. Returns the last stage's ``theta (m, k)`` and
    objectives ``(m,)``.
    """
    theta, obj = grid, np.zeros(grid.shape[0])
    for stage, (keep, n_iter) in enumerate(stages):
        finite = [i for i in np.argsort(obj, kind="stable") if np.isfinite(obj[i])]
        best = np.asarray(distinct(theta, finite, max(1, keep)) if stage else finite[:max(1, keep)], dtype=int)
        if best.size == 0:
            raise FloatingPointError(f"{form.name}: the objective is not finite at any start")
        label = f"screening {best.size} starts, {n_iter} iterations on {log_y.size} points"
        theta, obj, _ = run_lanes(form, reduction, n_iter, theta[best], logs, log_y, np.ones(log_y.size), delta,
                                   report=_stage_report(progress, label))
    return theta, obj


def _fit_fixed(form: ScalingForm, inputs, loss, fixed, **kw) -> FitResult:
    """Fit with some natural parameters held fixed: :func:`fit_form` on :func:`reduced_form`.

    Default starts: the rows of ``form.starts()`` restricted to the free coordinates, each once
    (for a product grid, the product of the free axes; for dealt axes, every dealt combination).
    """
    reduced, free = reduced_form(form, fixed)
    starts = kw.pop("starts")
    grid = form.starts() if starts is None else _starts(form, starts)
    rows = np.array(list(dict.fromkeys(map(tuple, grid[:, free]))), dtype=np.float64).reshape(-1, free.size)
    return replace(fit_form(reduced, inputs, loss, starts=rows, **kw), fixed=dict(fixed))


def fit_batch(
    form: str | ScalingForm,
    inputs: Mapping[str, np.ndarray],
    loss,
    start,
    *,
    weights=None,
    delta: float = 1e-3,
    reduction: str = "sum",
    n_iter: int = 300,
    progress=None,
) -> dict[str, np.ndarray]:
    """Many fits at once, one L-BFGS lane each (no grid, no polish): the workhorse of the bootstrap.

    Args:
      inputs: shared design ``{name: (points,)}``.
      loss: ``(points,)`` or ``(lanes, points)`` losses (e.g. repeated noisy draws).
      start: ``(k,)`` or ``(lanes, k)`` starting points in fit coordinates.
      weights: ``(lanes, points)`` non-negative point weights (bootstrap counts); default ones.
      progress: ``progress("refits", done, lanes)`` after each solver call.

    Returns ``{param: (lanes,)}`` natural parameters plus ``"objective"``, ``"grad_norm"`` and
    ``"coords"`` ``(lanes, k)``; lanes whose objective is not finite have ``inf`` objective.
    """
    form = get_form(form)
    _check(delta, reduction)
    y = np.atleast_2d(np.asarray(loss, dtype=np.float64))
    logs, log_y = _prepare(form, inputs, y)
    w = np.ones(log_y.shape[1]) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
    th0 = np.atleast_2d(np.asarray(start, dtype=np.float64))
    lanes = max(log_y.shape[0], np.atleast_2d(w).shape[0], th0.shape[0])
    for name, a in (("loss", log_y), ("weights", np.atleast_2d(w)), ("start", th0)):
        if a.shape[0] not in (1, lanes):
            raise ValueError(f"{name}: must have 1 or {lanes} rows (one per lane), got {a.shape[0]}")
    log_y = log_y[0] if log_y.shape[0] == 1 else log_y  # (points,) shared or (lanes, points)
    w = w[0] if w.ndim == 2 and w.shape[0] == 1 else w
    return _refits(form, logs, log_y, w, np.broadcast_to(th0, (lanes, form.n_params)), delta, reduction, n_iter,
                   _stage_report(progress, "refits"))


def _refits(form, logs, log_y, w, th0, delta, reduction, n_iter, report) -> dict[str, np.ndarray]:
    """:func:`fit_batch` on prepared data: ``th0 (lanes, k)``; ``log_y``, ``w`` as :func:`run_lanes` takes them."""
    with jax.enable_x64(True):
        theta, obj, gnorm = run_lanes(form, reduction, n_iter, th0, logs, log_y, w, delta, report=report)
    lanes = th0.shape[0]
    out = {p: np.empty(lanes) for p in form.to_natural(th0[0])}  # a reduced form's held parameters too
    for i in range(lanes):
        for p, v in form.to_natural(theta[i]).items():
            out[p][i] = v
    return out | {"objective": obj, "grad_norm": gnorm, "coords": theta}


def bootstrap_fit(
    form: str | ScalingForm,
    inputs: Mapping[str, np.ndarray],
    loss,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    delta: float = 1e-3,
    reduction: str = "sum",
    fit: FitResult | None = None,
    n_iter: int = 300,
    progress=None,
    **fit_kw,
) -> Bootstrap:
    """Percentile bootstrap: ``n_boot`` resamples with replacement, each refitted from the optimum.

    Each resample is a multinomial count vector over the points (equivalent to drawing the
    points with replacement); every refit starts from the full-data optimum ``fit`` (fitted here
    when not given) and runs ``n_iter`` L-BFGS iterations, the resamples vmapped. The counts are
    drawn per solver call, in order, from ``default_rng(seed)`` (the numbers of one
    ``(n_boot, points)`` draw; memory one call's worth). The interval of each natural parameter is
    ``[q_{(1-level)/2}, q_{(1+level)/2}]`` of its refits (NaN when every refit failed). A fit with
    ``fixed`` parameters refits only the free ones; a held one keeps its value in every refit (its
    interval is that point).
    ``progress("bootstrap resamples", done, n_boot)`` after each solver call.
    """
    form = get_form(form)
    if not 0 < level < 1:
        raise ValueError(f"level: must be in (0, 1), got {level}")
    if n_boot < 2:
        raise ValueError(f"n_boot: must be >= 2, got {n_boot}")
    _check(delta, reduction)
    fit = fit or fit_form(form, inputs, loss, delta=delta, reduction=reduction, progress=progress, **fit_kw)
    if fit.fixed:  # refit the free parameters only, the others held as in the fit
        form = reduced_form(form, fit.fixed)[0]
    logs, log_y = _prepare(form, inputs, loss)
    n = log_y.size
    rng, uniform = np.random.default_rng(seed), np.full(n, 1.0 / n)

    def counts(i: int, j: int) -> np.ndarray:  # (j - i, n) resample counts of lanes i:j
        return rng.multinomial(n, uniform, size=j - i).astype(np.float64)

    th0 = np.broadcast_to(np.asarray(fit.coords, dtype=np.float64), (n_boot, form.n_params))
    out = _refits(form, logs, log_y, counts, th0, delta, reduction, n_iter,
                  _stage_report(progress, "bootstrap resamples"))
    ok = np.isfinite(out["objective"])
    samples = {p: out[p][ok] for p in fit.params}  # held parameters: their value in every refit
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    ci = {p: tuple(float(v) for v in np.percentile(s, q)) if s.size else (math.nan, math.nan)
          for p, s in samples.items()}
    n_failed = int((~ok).sum())
    return Bootstrap(samples=samples, ci=ci, level=level, n_boot=n_boot, n_failed=n_failed,
                     diagnostics=bootstrap_diagnostics(fit, ci, float(np.exp(log_y.min())), level, n_failed))


def holdout_report(
    form: str | ScalingForm,
    inputs: Mapping[str, np.ndarray],
    loss,
    compute,
    threshold: float,
    **fit_kw,
) -> HoldoutReport:
    """Fit on the points with ``compute <= threshold`` and report errors on those above it.

    Errors: mean and max of ``|L_hat / L - 1|`` and the RMSE of ``log L_hat - log L`` over the
    held-out points.
    """
    form = get_form(form)
    c = np.asarray(compute, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    if c.shape != y.shape:
        raise ValueError(f"compute: must have the shape of loss {y.shape}, got {c.shape}")
    train, test = c <= threshold, c > threshold
    if test.sum() == 0:
        raise ValueError(f"threshold: no point has compute > {threshold:g}")
    sub = {k: np.asarray(inputs[k])[train] for k in form.inputs if k in inputs}
    fit = fit_form(form, sub, y[train], **fit_kw)
    pred = predict(form, fit.params, **{k: np.asarray(inputs[k])[test] for k in form.inputs})
    rel = np.abs(pred / y[test] - 1)
    return HoldoutReport(
        threshold=float(threshold), n_train=int(train.sum()), n_test=int(test.sum()),
        mean_abs_rel_error=float(rel.mean()), max_abs_rel_error=float(rel.max()),
        rmse_log=float(np.sqrt(np.mean((np.log(pred) - np.log(y[test])) ** 2))), params=fit.params,
    )
