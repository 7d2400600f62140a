"""Fitting parametric scaling laws: Huber on log-loss, L-BFGS from a grid, bootstrap, frontier.

Contract: float64 throughout (``jax.enable_x64`` is switched on inside every call, whatever the
caller's setting); inputs are 1-D arrays of positive values; results are plain numpy/Python.

Method (Hoffmann et al. 2022, arXiv:2203.15556, App. D.2; Besiroglu et al. 2024,
arXiv:2404.10102): with ``r_i = log L_hat(theta; x_i) - log L_i`` the objective is

    J(theta) = sum_i w_i Huber_delta(r_i)      (reduction "sum"; "mean" divides by sum_i w_i)
    Huber_delta(r) = r^2 / 2 if |r| <= delta else delta (|r| - delta / 2),   delta = 1e-3,

with unit weights for a fit and multinomial counts for a bootstrap resample. ``J`` is C^1 (its
second derivative jumps where ``|r_i| = delta``), so a vanishing gradient certifies a minimum.

1. **Grid stage**: an L-BFGS (history 10) run from every start of the form's grid (4,500 for
   Chinchilla) for ``max_iter`` iterations, all starts in one jitted ``vmap``. Each iteration
   takes the two-loop direction (steepest descent when it is not a descent direction) and
   evaluates ``J`` at the seven trial steps ``t = 0.2^j`` in parallel, keeping the largest that
   satisfies Armijo's condition: a line search without data-dependent loops, so that
   vectorisation costs nothing.
2. **Successive halving**: the best 256 continue for 60 iterations, the best ``n_refine`` of
   those for ``refine_iter``.
3. **Polish**: the best ``n_polish`` are polished by scipy's L-BFGS-B (float64, exact jax
   gradient, ``gtol = 1e-14``, ``ftol = 1e-15``); the lowest objective wins. ``converged`` says
   the winner's gradient is below ``GRAD_TOL`` relative to the objective's scale (:class:`FitResult`).

The objective is very flat along a valley that trades ``A, alpha`` against ``B, beta``: on the
Chinchilla table scipy's *default* stopping rule (relative reduction ``ftol = 2.2e-9``) stops
about ``1e-4`` (relative) above the minimum, with ``beta`` and ``B`` still 1e-3 and 3% away —
hence the tight tolerances here.

Bootstrap: resample the points with replacement (multinomial weights), refit every resample
from the full-data optimum — vmapped over resamples — and report percentile intervals.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from learnmech.theory.lbfgs import lbfgs
from learnmech.theory.scaling_forms import ScalingForm, get_form, log_inputs, predict

__all__ = [
    "Bootstrap",
    "FitResult",
    "HoldoutReport",
    "bootstrap_fit",
    "compute_optimal",
    "fit_batch",
    "fit_form",
    "holdout_report",
    "huber",
    "tokens_per_parameter",
]

GRAD_TOL = 1e-8  # converged: ||grad||_inf <= GRAD_TOL * n_points * delta ("sum"; GRAD_TOL * delta for "mean")
REDUCTIONS = ("sum", "mean")
LANE_CHUNK = 256  # lanes per solver call; points padded to a power of two >= MIN_POINTS, so that one
MIN_POINTS = 64  # compiled solver serves every stage, resample count and similar data size


@dataclass(frozen=True)
class FitResult:
    """A fitted law: ``params`` in natural units, the optimum's objective and its diagnostics.

    ``grad_norm`` is ``||grad J||_inf`` in fit coordinates at the returned optimum; ``converged``
    is ``grad_norm <= GRAD_TOL * scale`` with ``scale = n_points * delta`` for ``"sum"`` (``delta``
    for ``"mean"``), the size of ``grad J`` when residuals are of order ``delta``. ``n_agree``
    counts the polished starts that reached the same optimum (within 1e-6 in ``J``, relative).
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


@dataclass(frozen=True)
class Bootstrap:
    """Bootstrap refits: ``samples[name]`` ``(n_boot,)`` and percentile intervals ``ci[name]``."""

    samples: dict[str, np.ndarray]
    ci: dict[str, tuple[float, float]]
    level: float
    n_boot: int
    n_failed: int  # refits whose objective was not finite (dropped from the intervals)


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


def huber(r, delta: float):
    """``Huber_delta(r)``: ``r^2/2`` for ``|r| <= delta``, else ``delta (|r| - delta/2)`` (elementwise)."""
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _objective(form: ScalingForm, reduction: str):
    def j(theta, logs, log_y, w, delta):
        total = jnp.sum(w * huber(form.log_loss(theta, logs) - log_y, delta))
        return total / jnp.sum(w) if reduction == "mean" else total

    return j


@functools.lru_cache(maxsize=64)
def _lane_solver(form: ScalingForm, reduction: str):
    """Jitted ``(theta0 (L,k), logs, log_y (L,n), w (L,n), delta, n_iter) -> (theta (L,k), J (L,), |g| (L,))``."""
    objective = _objective(form, reduction)

    def one(theta0, logs, log_y, w, delta, n_iter):
        return lbfgs(lambda th: objective(th, logs, log_y, w, delta), theta0, n_iter)

    return jax.jit(jax.vmap(one, in_axes=(0, None, 0, 0, None, None)))


@functools.lru_cache(maxsize=64)
def _value_and_grad(form: ScalingForm, reduction: str):
    return jax.jit(jax.value_and_grad(_objective(form, reduction)))


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


def _point_bucket(n: int) -> int:
    """The padded number of points: the next power of two, at least ``MIN_POINTS``."""
    return max(MIN_POINTS, 1 << (n - 1).bit_length())


def _padded_points(logs, log_y, w):
    """Pad the point axis to :func:`_point_bucket` with copies of point 0 at weight 0."""
    n = log_y.shape[-1]
    extra = _point_bucket(n) - n
    if extra == 0:
        return logs, log_y, w
    logs = {k: np.concatenate([v, np.full(extra, v[0])]) for k, v in logs.items()}
    log_y = np.concatenate([log_y, np.repeat(log_y[..., :1], extra, axis=-1)], axis=-1)
    w = np.concatenate([w, np.zeros(w.shape[:-1] + (extra,))], axis=-1)
    return logs, log_y, w


def _run_lanes(form, reduction, n_iter, theta0, logs, log_y, w, delta):
    """Run the vmapped L-BFGS on every lane, in chunks of ``chunk`` lanes (the last one padded).

    ``chunk`` is ``LANE_CHUNK``, or the next power of two (at least 8) for fewer lanes, and points
    are padded to :func:`_point_bucket`: a handful of compiled shapes per form serve every number
    of starts, stages, bootstrap resamples and similar data sizes.
    """
    lanes = theta0.shape[0]
    chunk = min(LANE_CHUNK, max(8, 1 << (lanes - 1).bit_length()))
    pad = -lanes % chunk
    theta0, log_y, w = (np.concatenate([a, np.repeat(a[:1], pad, axis=0)]) if pad else a for a in (theta0, log_y, w))
    logs, log_y, w = _padded_points(logs, log_y, w)
    solver = _lane_solver(form, reduction)
    jlogs = {k: jnp.asarray(v) for k, v in logs.items()}
    outs = [solver(jnp.asarray(theta0[i:i + chunk]), jlogs, jnp.asarray(log_y[i:i + chunk]),
                   jnp.asarray(w[i:i + chunk]), delta, jnp.asarray(int(n_iter)))
            for i in range(0, theta0.shape[0], chunk)]
    theta, obj, gnorm = (np.concatenate([np.asarray(o[j]) for o in outs])[:lanes] for j in range(3))
    return theta, np.where(np.isfinite(obj), obj, np.inf), gnorm


def _polish(form, reduction, theta0, logs, log_y, delta):
    vg = _value_and_grad(form, reduction)
    logs, log_y, w = _padded_points(logs, np.asarray(log_y), np.ones_like(log_y))
    jlogs = {k: jnp.asarray(v) for k, v in logs.items()}
    jy, jw = jnp.asarray(log_y), jnp.asarray(w)

    def fun(th):
        f, g = vg(jnp.asarray(th), jlogs, jy, jw, delta)
        f = float(f)
        return (f, np.asarray(g)) if math.isfinite(f) else (math.inf, np.zeros_like(th))

    res = scipy.optimize.minimize(
        fun, theta0, jac=True, method="L-BFGS-B",
        options={"maxiter": 20000, "maxfun": 40000, "gtol": 1e-14, "ftol": 1e-15, "maxcor": 20},
    )
    f, g = fun(res.x)
    return res.x, f, float(np.max(np.abs(g)))


def _grad_scale(n: int, delta: float, reduction: str) -> float:
    return (max(1, n) if reduction == "sum" else 1.0) * delta


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
    n_polish: int = 4,
    fixed: Mapping[str, float] | None = None,
) -> FitResult:
    """Fit ``form`` to ``(inputs, loss)`` by Huber on log-loss from a grid of starts (module docstring).

    Args:
      form: a name in ``FORMS`` or a :class:`ScalingForm`.
      inputs: ``{"n": (points,), "d": ..., ...}`` positive values, the columns the form reads.
      loss: ``(points,)`` positive losses.
      delta, reduction: the Huber threshold (on log-loss) and ``"sum"`` / ``"mean"``.
      starts: ``(S, k)`` starting points in fit coordinates (``form.coords``); default the form's grid.
      max_iter: L-BFGS iterations of the grid stage; ``refine_iter`` those of the best
        ``n_refine`` starts; ``n_polish`` of them are polished with scipy.
      fixed: natural parameters held at given values (e.g. ``{"E": 1.87}``); only for forms whose
        fit coordinate of that parameter is one-to-one with it (every built-in form).

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
                          max_iter=max_iter, n_refine=n_refine, refine_iter=refine_iter, n_polish=n_polish)
    logs, log_y = _prepare(form, inputs, loss)
    grid = _starts(form, starts)
    theta, obj = grid, np.zeros(grid.shape[0])
    # successive halving: every start for max_iter iterations, the best 256 for 60 more,
    # the best n_refine for refine_iter more, then a scipy polish of the best n_polish
    with jax.enable_x64(True):
        for keep, n_iter in ((grid.shape[0], max_iter), (256, 60), (n_refine, refine_iter)):
            best = np.argsort(obj, kind="stable")[: max(1, min(keep, theta.shape[0]))]
            best = best[np.isfinite(obj[best])]
            if best.size == 0:
                raise FloatingPointError(f"{form.name}: the objective is not finite at any start")
            m = best.size
            theta, obj, _ = _run_lanes(form, reduction, n_iter, theta[best], logs,
                                       np.broadcast_to(log_y, (m, log_y.size)), np.ones((m, log_y.size)), delta)
        order = np.argsort(obj, kind="stable")[:n_polish]
        polished = [_polish(form, reduction, theta[i], logs, log_y, delta) for i in order if np.isfinite(obj[i])]
    lanes = grid.shape[0]
    polished.sort(key=lambda p: p[1])
    x, f, g = polished[0]
    others = [p[1] for p in polished[1:] if np.max(np.abs(p[0] - x)) > 1e-3]
    return FitResult(
        form=form.name, params=form.to_natural(x), objective=f, n_points=log_y.size, n_starts=lanes,
        converged=bool(g <= GRAD_TOL * _grad_scale(log_y.size, delta, reduction)), grad_norm=g,
        coords=tuple(float(v) for v in x), runner_up=min(others) if others else math.nan,
        n_agree=sum(abs(p[1] - f) <= 1e-6 * abs(f) for p in polished),
    )


def _fit_fixed(form: ScalingForm, inputs, loss, fixed, **kw) -> FitResult:
    """Fit with some natural parameters held fixed, through a reduced form over the free coordinates."""
    unknown = set(fixed) - set(form.params)
    if unknown:
        raise ValueError(f"fixed: unknown parameters {sorted(unknown)}; allowed {form.params}")
    reference = {p: 1.0 for p in form.params} | dict(fixed)
    full = form.from_natural(reference)
    probe = {p: 2.0 for p in form.params} | dict(fixed)
    held = np.isclose(form.from_natural(probe), full)  # coordinates set by the fixed parameters
    if held.sum() != len(fixed):
        raise ValueError(f"fixed: {sorted(fixed)} are not one-to-one with fit coordinates of {form.name!r}")
    free = np.flatnonzero(~held)
    base = jnp.asarray(full)

    def log_loss(theta, logs):
        return form.log_loss(base.at[free].set(theta), logs)

    def to_natural(theta):
        x = np.array(full)
        x[free] = theta
        return form.to_natural(x)

    reduced = ScalingForm(
        name=form.name, inputs=form.inputs, params=tuple(form.params[i] for i in free),
        coords=tuple(form.coords[i] for i in free), log_loss=log_loss, to_natural=to_natural,
        from_natural=lambda p: form.from_natural(reference | dict(p))[free],
        grid=tuple(form.grid[i] for i in free), equation=form.equation, reference=form.reference,
    )
    starts = kw.pop("starts")
    if starts is not None:
        starts = _starts(form, starts)[:, free]
    return fit_form(reduced, inputs, loss, starts=starts, **kw)


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
) -> dict[str, np.ndarray]:
    """Many fits at once, one L-BFGS lane each (no grid, no polish): the workhorse of the bootstrap.

    Args:
      inputs: shared design ``{name: (points,)}``.
      loss: ``(points,)`` or ``(lanes, points)`` losses (e.g. repeated noisy draws).
      start: ``(k,)`` or ``(lanes, k)`` starting points in fit coordinates.
      weights: ``(lanes, points)`` non-negative point weights (bootstrap counts); default ones.

    Returns ``{param: (lanes,)}`` natural parameters plus ``"objective"``, ``"grad_norm"`` and
    ``"coords"`` ``(lanes, k)``; lanes whose objective is not finite have ``inf`` objective.
    """
    form = get_form(form)
    _check(delta, reduction)
    y = np.atleast_2d(np.asarray(loss, dtype=np.float64))
    logs, log_y = _prepare(form, inputs, y)
    w = np.ones_like(log_y) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
    th0 = np.atleast_2d(np.asarray(start, dtype=np.float64))
    lanes = max(log_y.shape[0], w.shape[0], th0.shape[0])
    log_y, w = np.broadcast_to(log_y, (lanes, log_y.shape[1])), np.broadcast_to(w, (lanes, log_y.shape[1]))
    th0 = np.broadcast_to(th0, (lanes, form.n_params))
    with jax.enable_x64(True):
        theta, obj, gnorm = _run_lanes(form, reduction, n_iter, th0, logs, log_y, w, delta)
    out = {p: np.empty(lanes) for p in form.params}
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
    **fit_kw,
) -> Bootstrap:
    """Percentile bootstrap: ``n_boot`` resamples with replacement, each refitted from the optimum.

    Each resample is a multinomial count vector over the points (equivalent to drawing the
    points with replacement); every refit starts from the full-data optimum ``fit`` (fitted here
    when not given) and runs ``n_iter`` L-BFGS iterations, all resamples in one vmap. The interval
    of each natural parameter is ``[q_{(1-level)/2}, q_{(1+level)/2}]`` of its refits.
    """
    form = get_form(form)
    if not 0 < level < 1:
        raise ValueError(f"level: must be in (0, 1), got {level}")
    if n_boot < 2:
        raise ValueError(f"n_boot: must be >= 2, got {n_boot}")
    fit = fit or fit_form(form, inputs, loss, delta=delta, reduction=reduction, **fit_kw)
    n = np.asarray(loss).shape[-1]
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot)  # (n_boot, n)
    out = fit_batch(form, inputs, loss, np.asarray(fit.coords), weights=counts, delta=delta,
                    reduction=reduction, n_iter=n_iter)
    ok = np.isfinite(out["objective"])
    samples = {p: out[p][ok] for p in form.params}
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    ci = {p: tuple(float(v) for v in np.percentile(s, q)) for p, s in samples.items()}
    return Bootstrap(samples=samples, ci=ci, level=level, n_boot=n_boot, n_failed=int((~ok).sum()))


# ------------------------------------------------------------------ frontier and extrapolation


def compute_optimal(params: Mapping[str, float], flops) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal ``(N_opt, D_opt)`` of ``L = E + A/N^alpha + B/D^beta`` under ``C = 6 N D``.

    ``N_opt = G (C/6)^a``, ``D_opt = G^-1 (C/6)^b``, ``G = (alpha A / (beta B))^(1/(alpha+beta))``,
    ``a = beta/(alpha+beta)``, ``b = alpha/(alpha+beta)`` (Hoffmann et al. 2022, arXiv:2203.15556, eq. 4).

    >>> n, d = compute_optimal({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}, 5.76e23)
    >>> round(float(n) / 1e9, 1), round(float(d) / 1e12, 2)
    (32.2, 2.98)
    """
    for key in ("A", "B", "alpha", "beta"):
        if key not in params or not params[key] > 0:
            raise ValueError(f"params: {key} must be given and > 0 for the compute-optimal frontier")
    c = np.asarray(flops, dtype=np.float64)
    if np.any(~np.isfinite(c)) or np.any(c <= 0):
        raise ValueError("flops: must be finite and > 0")
    alpha, beta, a_, b_ = params["alpha"], params["beta"], params["A"], params["B"]
    g = (alpha * a_ / (beta * b_)) ** (1.0 / (alpha + beta))
    return g * (c / 6) ** (beta / (alpha + beta)), (c / 6) ** (alpha / (alpha + beta)) / g


def tokens_per_parameter(params: Mapping[str, float], flops) -> np.ndarray:
    """``D_opt / N_opt`` along the compute-optimal frontier (see :func:`compute_optimal`)."""
    n, d = compute_optimal(params, flops)
    return d / n


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
