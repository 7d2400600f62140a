"""The steps-examples trade-off of minibatch SGD: ``S = S_min (1 + B_noise / B)``.

Contract: pure float64 numpy functions, no randomness, no fits (the hyperbola is fitted to a sweep by
:class:`learnmech.fit.StepsHyperbola`).

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
:func:`steps_hyperbola` carries when given ``n_train``; ``E_min = B_noise S_min``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["run_average", "steps_hyperbola"]


def steps_hyperbola(batch, s_min: float, b_noise: float, n_train: float | None = None) -> np.ndarray:
    """``S(B) = S_min (1 + B_noise / B)`` (McCandlish et al. 2018, arXiv:1812.06162, Sec. 2).

    With ``n_train`` the noise term carries ``(n-1)/n``: batches drawn with replacement from ``n``
    examples have covariance ``((n-1)/n) Sigma / B`` for ``Sigma`` normalised by ``1/(n-1)``.

    >>> steps_hyperbola([1.0, 4.0], 10.0, 4.0).tolist()
    [50.0, 20.0]
    """
    inv = 1.0 / np.asarray(batch, np.float64) * (1.0 if n_train is None else (n_train - 1.0) / n_train)
    return s_min * (1.0 + b_noise * inv)


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
