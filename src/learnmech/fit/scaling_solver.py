"""The vectorised solver calls of the scaling-law fits, under a memory budget.

Contract
--------
* ``huber`` and the objective ``J(theta) = sum_i w_i Huber_delta(log L_hat(theta; x_i) - log L_i)``
  (``"mean"`` divides by ``sum_i w_i``) are those of :mod:`learnmech.fit.scaling_fit`.
* ``run_lanes`` runs the vmapped fixed-iteration L-BFGS (:func:`learnmech.fit.lbfgs.lbfgs`) on
  many lanes (starts or resamples), ``lanes_per_call`` lanes per compiled call: lanes x padded
  points stays at most ``ELEMENT_BUDGET``, both factors powers of two, so memory is ``O(points)``
  plus a constant and a few compiled shapes serve every call. Points are padded to a power of two
  (at least ``MIN_POINTS``) with weight-0 copies of point 0.
* ``polish`` finishes one start with scipy's L-BFGS-B at tight tolerances on the exact jax gradient,
  then a few Newton steps (:func:`newton_steps`).
* Every call runs in float64; callers switch ``jax.enable_x64`` on.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from learnmech.fit.lbfgs import lbfgs
from learnmech.theory.scaling_forms import ScalingForm

__all__ = ["ELEMENT_BUDGET", "LANE_CHUNK", "MIN_POINTS", "POLISH_ITER", "huber", "lanes_per_call", "newton_steps",
           "objective_function", "point_bucket", "polish", "polish_with", "run_lanes", "value_and_grad"]

LANE_CHUNK = 256  # lanes per solver call at most; points padded to a power of two >= MIN_POINTS, so that
MIN_POINTS = 64  # one compiled solver serves every stage, resample count and similar data size
ELEMENT_BUDGET = 2**21  # lanes x padded points per solver call: ~0.5 GiB at ~230 B per element
NEWTON_STEPS = 8  # at most, after the L-BFGS-B polish (each costs 2k + 1 gradients)
NEWTON_RTOL = 1e-13  # relative change of J taken as float64 rounding (basins differ by >= 1e-4)


def huber(r, delta: float):
    """``Huber_delta(r)``: ``r^2/2`` for ``|r| <= delta``, else ``delta (|r| - delta/2)`` (elementwise)."""
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def objective(form: ScalingForm, reduction: str):
    """``J(theta, logs, log_y, w, delta)``: the weighted Huber objective on log-loss residuals."""

    def j(theta, logs, log_y, w, delta):
        total = jnp.sum(w * huber(form.log_loss(theta, logs) - log_y, delta))
        return total / jnp.sum(w) if reduction == "mean" else total

    return j


@functools.lru_cache(maxsize=64)
def lane_solver(form: ScalingForm, reduction: str):
    """Jitted ``(theta0 (L,k), logs, log_y (L,n), w (L,n), delta, n_iter) -> (theta (L,k), J (L,), |g| (L,))``."""
    j = objective(form, reduction)

    def one(theta0, logs, log_y, w, delta, n_iter):
        return lbfgs(lambda th: j(th, logs, log_y, w, delta), theta0, n_iter)

    return jax.jit(jax.vmap(one, in_axes=(0, None, 0, 0, None, None)))


@functools.lru_cache(maxsize=64)
def value_and_grad(form: ScalingForm, reduction: str):
    """Jitted ``J`` and its gradient in ``theta`` (for the scipy polish)."""
    return jax.jit(jax.value_and_grad(objective(form, reduction)))


def point_bucket(n: int) -> int:
    """The padded number of points: the next power of two, at least ``MIN_POINTS``."""
    return max(MIN_POINTS, 1 << (n - 1).bit_length())


def padded_points(logs, log_y, w):
    """Pad the point axis to :func:`point_bucket` with copies of point 0 at weight 0."""
    n = log_y.shape[-1]
    extra = point_bucket(n) - n
    if extra == 0:
        return logs, log_y, w
    logs = {k: np.concatenate([v, np.full(extra, v[0])]) for k, v in logs.items()}
    log_y = np.concatenate([log_y, np.repeat(log_y[..., :1], extra, axis=-1)], axis=-1)
    w = np.concatenate([w, np.zeros(w.shape[:-1] + (extra,))], axis=-1)
    return logs, log_y, w


def lanes_per_call(lanes: int, n_points: int) -> int:
    """Lanes per solver call: a power of two, at most ``LANE_CHUNK`` (at least 8 below it, so that
    few shapes compile), and at most ``ELEMENT_BUDGET`` over the padded number of points (at least 1).
    """
    wanted = min(LANE_CHUNK, max(8, 1 << (max(1, lanes) - 1).bit_length()))
    return max(1, min(wanted, ELEMENT_BUDGET // point_bucket(n_points)))


def lane_rows(a, i: int, j: int, n_points: int) -> np.ndarray:
    """Rows ``i:j`` of a per-lane ``(lanes, n)`` array, or a shared ``(n,)`` one repeated ``j - i`` times."""
    a = np.asarray(a)
    return a[i:j] if a.ndim == 2 else np.broadcast_to(a, (j - i, n_points))


def run_lanes(form, reduction, n_iter, theta0, logs, log_y, w, delta, report=None):
    """Run the vmapped L-BFGS on every lane, :func:`lanes_per_call` lanes per call (the last one padded).

    ``log_y`` and ``w`` are ``(n,)`` shared by every lane or ``(lanes, n)`` per lane; ``w`` may
    also be a function ``(i, j) -> (j - i, n)`` giving the weights of lanes ``i:j``, called once per
    solver call in lane order (the bootstrap counts). Only one call's ``(lanes, padded points)``
    arrays exist at a time. ``report(done, lanes)`` is called after each call.
    """
    lanes, n = theta0.shape[0], np.shape(log_y)[-1]
    chunk = lanes_per_call(lanes, n)
    extra = point_bucket(n) - n
    solver = lane_solver(form, reduction)
    jlogs = {k: jnp.asarray(np.concatenate([v, np.full(extra, v[0])])) for k, v in logs.items()}
    first = None  # lane 0's (theta, log_y, w): pads a short last call
    outs = []
    for i in range(0, lanes, chunk):
        j = min(i + chunk, lanes)
        rows = (theta0[i:j], lane_rows(log_y, i, j, n), w(i, j) if callable(w) else lane_rows(w, i, j, n))
        first = first or tuple(a[:1] for a in rows)
        th, y, wt = (np.concatenate([a, np.repeat(f, chunk - (j - i), axis=0)]) for a, f in zip(rows, first))
        y = np.concatenate([y, np.repeat(y[:, :1], extra, axis=1)], axis=1)  # (chunk, bucket)
        wt = np.concatenate([wt, np.zeros((chunk, extra))], axis=1)  # padded points weigh nothing
        outs.append(solver(jnp.asarray(th), jlogs, jnp.asarray(y), jnp.asarray(wt), delta, jnp.asarray(int(n_iter))))
        if report is not None:
            report(j, lanes)
    theta, obj, gnorm = (np.concatenate([np.asarray(o[k]) for o in outs])[:lanes] for k in range(3))
    return theta, np.where(np.isfinite(obj), obj, np.inf), gnorm


def objective_function(form, reduction: str, logs, log_y, delta: float):
    """``fun(theta) -> (J, grad J)`` in numpy on all points, padded to their bucket (non-finite ``J``: ``(inf, 0)``)."""
    vg = value_and_grad(form, reduction)
    logs, log_y, w = padded_points(logs, np.asarray(log_y), np.ones_like(log_y))
    jlogs = {k: jnp.asarray(v) for k, v in logs.items()}
    jy, jw = jnp.asarray(log_y), jnp.asarray(w)

    def fun(th):
        f, g = vg(jnp.asarray(th), jlogs, jy, jw, delta)
        f = float(f)
        return (f, np.asarray(g)) if math.isfinite(f) else (math.inf, np.zeros_like(np.asarray(th, dtype=float)))

    return fun


POLISH_ITER = 20000  # scipy L-BFGS-B iterations of one polish (function evaluations: twice that)


def polish_with(fun, theta0):
    """scipy's L-BFGS-B at tight tolerances from ``theta0``, then :func:`newton_steps`: ``(scipy result, x, J, g)``."""
    res = scipy.optimize.minimize(
        fun, np.asarray(theta0, dtype=np.float64), jac=True, method="L-BFGS-B",
        options={"maxiter": POLISH_ITER, "maxfun": 2 * POLISH_ITER, "gtol": 1e-14, "ftol": 1e-15, "maxcor": 20},
    )
    x, f, g = newton_steps(fun, np.asarray(res.x, dtype=np.float64))
    return res, x, f, g


def polish(form, reduction, theta0, logs, log_y, delta):
    """Finish one start: scipy's L-BFGS-B at tight tolerances, then :func:`newton_steps`; ``(theta, J, |g|_inf)``.

    Along a flat valley L-BFGS-B stops where ``J`` stops falling in float64 (``ftol = 1e-15``), with
    a gradient that depends on where it came from (1e-9 to 2e-7 on the Chinchilla table, all at one
    ``J`` to 1e-13); the Newton steps take it to the stationary point itself.
    """
    _, x, f, g = polish_with(objective_function(form, reduction, logs, log_y, delta), theta0)
    return x, f, float(np.max(np.abs(g)))


def newton_steps(fun, x, max_steps: int = NEWTON_STEPS):
    """Newton steps ``x <- x - H^-1 g`` from ``x`` while each lowers ``J``, or ``|g|_inf`` at the same ``J``.

    ``H`` is the central difference of the exact gradient (``(g(x + h e_j) - g(x - h e_j)) / 2h``,
    ``h = 1e-5 max(1, |x_j|)``, symmetrised); a step is tried only where ``H`` is positive definite.
    It is kept when ``J`` falls, or when ``J`` stays within ``NEWTON_RTOL |J|`` (float64 rounding of a
    sum over the points) and the gradient shrinks. ``J`` is C^1 and its Hessian jumps where a
    residual crosses ``delta``, so these are quasi-Newton steps there; either way the point returned
    is never worse than ``x``. Returns ``(x, J, g)``.
    """
    f, g = fun(x)
    for _ in range(max_steps):
        if not math.isfinite(f):
            break
        h = 1e-5 * np.maximum(1.0, np.abs(x))  # (k,)
        cols = [(fun(x + h[j] * e)[1] - fun(x - h[j] * e)[1]) / (2 * h[j]) for j, e in enumerate(np.eye(x.size))]
        hess = np.array(cols).T
        hess = 0.5 * (hess + hess.T)  # (k, k)
        if not np.all(np.isfinite(hess)) or np.linalg.eigvalsh(hess)[0] <= 0:
            break
        try:
            x_new = x - np.linalg.solve(hess, g)
        except np.linalg.LinAlgError:  # positive but numerically singular (a flat direction): no Newton step
            break
        f_new, g_new = fun(x_new)
        noise = NEWTON_RTOL * abs(f)
        lower = f_new < f - noise
        flatter = f_new <= f + noise and np.max(np.abs(g_new)) < np.max(np.abs(g))
        if not (lower or flatter):
            break
        x, f, g = x_new, f_new, g_new
    return x, f, g
