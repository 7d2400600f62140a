"""A fixed-iteration L-BFGS without data-dependent control flow, made to be ``vmap``-ed over starts.

Each iteration takes the two-loop L-BFGS direction (Nocedal & Wright 2006, Algorithm 7.4; history
``HISTORY``, initial scaling ``s.y / y.y``; steepest descent when it is not a descent direction),
evaluates the objective at the trial steps ``t = 0.2^j``, ``j = 0..6``, in parallel and keeps the
largest that satisfies Armijo's condition ``f(x + t d) <= f(x) + c1 t g.d``, or the best trial if
none does; a step that does not lower ``f`` is rejected and the history cleared. A pair ``(s, y)``
enters the history only when ``s.y > 0`` (curvature condition), so the implied inverse Hessian stays
positive definite. Every lane therefore runs the same operations, so vectorising over thousands of
starts costs no more than their arithmetic. Non-finite objective values count as ``+inf``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ARMIJO_C1", "HISTORY", "TRIAL_STEPS", "lbfgs"]

HISTORY = 10  # L-BFGS memory
TRIAL_STEPS = 0.2 ** np.arange(7)  # parallel Armijo trial steps, 1 ... 6e-5
ARMIJO_C1 = 1e-4

def _two_loop(g, s_hist, y_hist, rho):
    """L-BFGS direction ``-H g`` from the history (newest last; empty slots have ``rho = 0``)."""
    q, alphas = g, []
    for i in reversed(range(HISTORY)):
        a = rho[i] * jnp.dot(s_hist[i], q)
        q = q - a * y_hist[i]
        alphas.append(a)
    yy = jnp.dot(y_hist[-1], y_hist[-1])
    gamma = jnp.where(rho[-1] > 0, jnp.dot(s_hist[-1], y_hist[-1]) / jnp.where(yy > 0, yy, 1.0), 0.0)
    gamma = jnp.where(rho[-1] > 0, gamma, 1.0 / jnp.maximum(jnp.max(jnp.abs(g)), 1e-300))
    r = gamma * q
    for i, a in zip(range(HISTORY), reversed(alphas)):
        b = rho[i] * jnp.dot(y_hist[i], r)
        r = r + (a - b) * s_hist[i]
    return -r


def lbfgs(fun, x0, n_iter):
    """Minimise ``fun: (k,) -> scalar`` from ``x0`` for ``n_iter`` iterations (one lane; vmap it).

    ``n_iter`` may be a traced integer: the loop is a ``fori_loop``, so one compiled program serves
    every iteration count.
    """
    value_and_grad = jax.value_and_grad(fun)
    k = x0.shape[0]
    ts = jnp.asarray(TRIAL_STEPS)

    def clean(f):
        return jnp.where(jnp.isfinite(f), f, jnp.inf)

    def step(_, state):
        x, fx, g, s_hist, y_hist, rho = state
        d = _two_loop(g, s_hist, y_hist, rho)
        gd = jnp.dot(g, d)
        steepest = -g / jnp.maximum(jnp.max(jnp.abs(g)), 1e-300)
        d = jnp.where(gd < 0, d, steepest)
        gd = jnp.dot(g, d)
        f_trial = clean(jax.vmap(lambda t: fun(x + t * d))(ts))  # (trials,)
        armijo = f_trial <= fx + ARMIJO_C1 * ts * gd
        idx = jnp.where(jnp.any(armijo), jnp.argmax(armijo), jnp.argmin(f_trial))
        accept = f_trial[idx] < fx
        x_new = jnp.where(accept, x + ts[idx] * d, x)
        f_new, g_new = value_and_grad(x_new)
        f_new = clean(f_new)
        s, y = x_new - x, g_new - g
        sy = jnp.dot(s, y)
        store = accept & (sy > 1e-10 * jnp.linalg.norm(s) * jnp.linalg.norm(y)) & jnp.all(jnp.isfinite(g_new))
        s_hist = jnp.where(store, jnp.roll(s_hist, -1, 0).at[-1].set(s), s_hist)
        y_hist = jnp.where(store, jnp.roll(y_hist, -1, 0).at[-1].set(y), y_hist)
        rho = jnp.where(store, jnp.roll(rho, -1).at[-1].set(1.0 / jnp.where(sy > 0, sy, 1.0)), rho)
        rho = jnp.where(accept, rho, jnp.zeros_like(rho))  # no progress: restart from steepest descent
        g_new = jnp.where(jnp.all(jnp.isfinite(g_new)), g_new, jnp.zeros_like(g_new))
        return x_new, jnp.where(accept, f_new, fx), jnp.where(accept, g_new, g), s_hist, y_hist, rho

    f0, g0 = value_and_grad(x0)
    finite = jnp.isfinite(f0) & jnp.all(jnp.isfinite(g0))
    state = (
        x0,
        jnp.where(finite, f0, jnp.inf),
        jnp.where(finite, g0, jnp.zeros_like(g0)),  # a non-finite start stays where it is (objective inf)
        jnp.zeros((HISTORY, k), x0.dtype),
        jnp.zeros((HISTORY, k), x0.dtype),
        jnp.zeros((HISTORY,), x0.dtype),
    )
    x, fx, g, *_ = jax.lax.fori_loop(0, n_iter, step, state)
    return x, fx, jnp.max(jnp.abs(g))
