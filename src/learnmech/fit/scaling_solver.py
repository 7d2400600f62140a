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
* ``polish`` finishes one start with scipy's L-BFGS-B at tight tolerances on the exact jax gradient.
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

__all__ = ["ELEMENT_BUDGET", "LANE_CHUNK", "MIN_POINTS", "huber", "lanes_per_call", "point_bucket", "polish",
           "run_lanes", "value_and_grad"]

LANE_CHUNK = 256  # lanes per solver call at most; points padded to a power of two >= MIN_POINTS, so that
MIN_POINTS = 64  # one compiled solver serves every stage, resample count and similar data size
ELEMENT_BUDGET = 2**21  # lanes x padded points per solver call: ~0.5 GiB at ~230 B per element


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


def polish(form, reduction, theta0, logs, log_y, delta):
    vg = value_and_grad(form, reduction)
    logs, log_y, w = padded_points(logs, np.asarray(log_y), np.ones_like(log_y))
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
