"""The steps-examples trade-off of minibatch SGD: ``S = S_min (1 + B_noise / B)`` and its fit.

Contract: pure float64 numpy/scipy functions, no randomness.

Statement (McCandlish, Kaplan, Amodei et al. 2018, "An empirical model of large-batch training",
arXiv:1812.06162): the number of optimiser steps ``S`` and of examples ``E = B S`` needed to reach
a loss target trade off along the hyperbola ``S = S_min (1 + B_noise / B)``,
``E = E_min (1 + B / B_noise)`` -- equivalently ``(S / S_min - 1)(E / E_min - 1) = 1`` with
``E_min = B_noise S_min``.

Where the hyperbola comes from (their Sec. 2). For a quadratic model of the loss with Hessian
``H``, a step ``-eps G_B`` with a batch-``B`` gradient (``E G_B = G``, ``Cov G_B = Sigma / B``)
changes the loss by ``-eps |G|^2 + (eps^2 / 2)(G^T H G + tr(H Sigma) / B)`` on average; the best
step ``eps_opt = eps_max / (1 + B_noise / B)`` gains ``dL_opt = dL_max / (1 + B_noise / B)`` with
``B_noise = tr(H Sigma) / G^T H G`` (``= B_simple = tr(Sigma) / |G|^2`` when ``H`` is a multiple of
the identity). Summing ``1 / dL_opt`` over the way down to the target gives
``S(B) = S_min + (1 / B) int B_noise dS_min``: the hyperbola, with ``B_noise`` replaced by its
average over the steps of training when it changes along the way (:func:`run_average`).

Finite training set. Batches drawn i.i.d. (with replacement) from ``n`` training examples have
``Cov G_B = Sigma_n / B`` with ``Sigma_n = ((n-1)/n) Sigma`` (``Sigma`` normalised by ``1/(n-1)``, as
the two-batch estimator gives it): the hyperbola is the paper's up to the factor ``(n-1)/n``, which
:func:`steps_hyperbola` and :func:`fit_steps` carry when given ``n_train``. The fit is least
squares on ``log S`` (relative errors: the steps span decades and their scatter is
multiplicative), profiled over ``log B_noise``; ``E_min = B_noise S_min``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = ["fit_steps", "run_average", "steps_hyperbola"]


def steps_hyperbola(batch, s_min: float, b_noise: float, n_train: float | None = None) -> np.ndarray:
    """``S(B) = S_min (1 + B_noise / B)`` (McCandlish et al. 2018, arXiv:1812.06162, Sec. 2).

    With ``n_train`` the noise term carries ``(n-1)/n``: batches drawn with replacement from ``n``
    examples have covariance ``((n-1)/n) Sigma / B`` for ``Sigma`` normalised by ``1/(n-1)``.

    >>> steps_hyperbola([1.0, 4.0], 10.0, 4.0).tolist()
    [50.0, 20.0]
    """
    inv = 1.0 / np.asarray(batch, np.float64) * (1.0 if n_train is None else (n_train - 1.0) / n_train)
    return s_min * (1.0 + b_noise * inv)


def fit_steps(batch, steps, n_train: float | None = None) -> tuple[float, float, float]:
    """Least-squares fit of :func:`steps_hyperbola` in ``log S``: ``(S_min, B_noise, rms)``.

    For a given ``B_noise`` the best ``log S_min`` is the mean residual, so the fit is a 1-D
    minimisation over ``log B_noise`` (grid, then bounded Brent) within ``[B_min / 1e3, 1e3 B_max]``;
    ``rms`` is the root mean square residual in ``log S`` (McCandlish et al. 2018, arXiv:1812.06162).
    ``batch`` and ``steps`` are ``(K,)``, ``K >= 2``, finite and ``> 0`` (ValueError otherwise).
    """
    b, s = np.asarray(batch, np.float64), np.asarray(steps, np.float64)
    if b.ndim != 1 or b.size < 2:
        raise ValueError(f"batch: need a 1-D array of at least 2 batch sizes (S_min and B_noise), got shape {b.shape}")
    if s.shape != b.shape:
        raise ValueError(f"steps: must have one value per batch size {b.shape}, got shape {s.shape}")
    for name, v in (("batch", b), ("steps", s)):
        if not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise ValueError(f"{name}: must be finite and > 0")
    x = steps_hyperbola(b, 1.0, 1.0, n_train) - 1.0  # (K,): S / S_min - 1 per unit B_noise
    log_s = np.log(s)

    def sse(u):  # u: scalar or (G, 1) log B_noise
        r = log_s - np.log1p(np.exp(u) * x)  # (K,) or (G, K)
        return np.sum((r - r.mean(axis=-1, keepdims=True)) ** 2, axis=-1)

    grid = np.linspace(math.log(b.min() / 1e3), math.log(b.max() * 1e3), 400)
    i = int(np.argmin(sse(grid[:, None])))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    b_noise = math.exp(minimize_scalar(sse, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10}).x)
    residual = log_s - np.log1p(b_noise * x)
    return float(math.exp(residual.mean())), b_noise, float(np.std(residual))


def run_average(t, values, stop: float) -> float:
    """``(1 / stop) int_0^stop v(t) dt`` with ``v`` linear between its samples at ``t`` (``t[0] = 0``).

    The average over the steps of a run, e.g. of ``B_noise`` in ``S(B) = S_min + (1 / B) int B_noise dS_min``
    (McCandlish et al. 2018, arXiv:1812.06162, Sec. 2).

    >>> run_average([0, 1, 2], [0.0, 2.0, 4.0], 1.5)  # v = 2 t
    1.5
    """
    t, v = np.asarray(t, np.float64), np.asarray(values, np.float64)
    inside = t < stop
    tt = np.append(t[inside], stop)
    vv = np.append(v[inside], np.interp(stop, t, v))
    return float(np.trapezoid(vv, tt) / stop)
