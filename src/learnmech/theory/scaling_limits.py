"""Where the linear scaling rule of SGD stops: the noise limit and the stability limit.

Contract: pure float64 numpy/scipy functions of measured curvatures, noise scales and the base run's
``(eta0, B0)``; no training, no randomness.

The rule (Goyal et al. 2017, arXiv:1706.02677; its SDE form: Li, Malladi & Arora 2021,
arXiv:2102.12470): ``(eta0, B0) -> (k eta0, k B0)`` leaves SGD's loss-versus-examples curve unchanged
while the dynamics stay in the small-step regime. It stops at the first of two limits,

    k* = min(k_noise, k_stab),    k_noise = B_noise / B0,    k_stab = 2 / (eta0 h)

(:func:`noise_limit`, :func:`stability_limit`, :func:`first_limit`).

Noise limit (McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162, Sec. 2). A step changes the loss
by ``-eta |G|^2 + (eta^2 / 2)(G^T H G + tr(H Sigma) / B)`` on average (``G`` the true gradient, ``H`` the
Hessian, ``Sigma`` the covariance of one example's gradient). Per example seen, the noise term is
invariant under the rule and the ``G^T H G`` term grows ``k``-fold; they are equal at
``k B0 = B_noise = tr(H Sigma) / G^T H G``.

Stability limit: which curvature ``h``. Take the quadratic model of the loss near the compared loss,
``L = (1/2) d^T H d`` (``d = w - w*``), and SGD ``d' = (I - eta H) d - eta xi_B`` with ``E xi_B = 0`` and
``Cov xi_B = (Sigma_0 + C[d d^T]) / B``: ``Sigma_0`` the additive part of the noise, ``C`` a positive
linear map its multiplicative part (Gaussian linear regression, by Isserlis' theorem:
``C[M] = H M H + tr(H M) H``, :mod:`learnmech.theory.sgd_linear`). The second moments ``M = E d d^T``
obey (the linear-stability recursion of Wu, Ma & E 2018, NeurIPS, "How SGD selects the global minima in
over-parameterized learning: a dynamical stability perspective")

    M' = T[M] + (eta^2 / B) Sigma_0,    T[M] = (I - eta H) M (I - eta H) + (eta^2 / B) C[M].       (1)

SGD is mean-square stable iff the spectral radius of ``T`` is below 1. ``C`` is positive, so
``T[M] >= (I - eta H) M (I - eta H)`` for ``M >= 0`` and ``rho(T) >= max_i (1 - eta lambda_i)^2``:
mean-square stability needs ``eta lambda_max < 2``, the limit of the mean dynamics
``E d' = (I - eta H) E d``, and additive noise does not move it at all. The multiplicative part can only
lower it: for Gaussian linear regression, in the eigenbasis of ``H``, (1) is ``m' = A m`` on the
diagonal with ``A = diag((1 - x lambda)^2 + x c lambda^2) + x c lambda lambda^T`` (``x = eta``,
``c = eta / B``), a positive rank-one update of a diagonal, so (matrix determinant lemma at ``z = 1``)

    stable  iff  x < 2 / lambda_max - c  and  c sum_i lambda_i / (2 - x lambda_i - c lambda_i) < 1

(:func:`mean_square_limit_linear`). Under the rule ``c = eta0 / B0`` is the invariant, so the limit on
``x = k eta0`` is ``2 / lambda_max`` lowered by a relative ``O(c tr H)``: ``h = lambda_max``.

The noise-weighted curvature ``h_Sigma = tr(H Sigma_0) / tr(Sigma_0) <= lambda_max`` appears elsewhere:
the stationary solution of (1) with additive noise has excess loss
``(1/2) tr(H M_inf) = (eta / 2B) sum_i (Sigma_0)_ii / (2 - eta lambda_i)`` (exact, in the eigenbasis of
``H``; :func:`noise_floor`), which under the rule drifts with ``k`` by the relative amount
``k eta0 h_Sigma / 2 + O(k^2)`` (:func:`noise_floor_slope`): ``h_Sigma`` sets how fast the noise-dominated
part of the loss leaves the rule, smoothly, while the divergence stays at ``2 / lambda_max``; a limit
``2 / (eta0 h_Sigma)`` lies beyond where (1) already diverges.

Which applies to hparams.linear-scaling: square loss with label noise, where near the compared loss the
noise is mostly additive (``Sigma_0 ~ sigma^2`` times the Gauss-Newton matrix) and ``(eta0 / B0) tr(H)``
is about ``7e-3`` (``tr H ~ 15`` measured): ``h = lambda_max(H)`` at the base run's iterates. A network
can outlive ``2 / lambda_max`` by lowering its own sharpness (edge of stability, Cohen et al. 2021,
arXiv:2103.00065), but not while following the base run's path, which is what the rule asks of it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy.optimize import brentq

__all__ = ["BRACKET", "bracket_gap", "bracket_side", "first_limit", "mean_square_limit_linear", "noise_floor",
           "noise_floor_slope", "noise_limit", "stability_limit"]

BRACKET = 1.5  # CLAIMS.md: agreement for k <= k* / 1.5, the first disagreement in [k* / 1.5, 1.5 k*]


def stability_limit(eta0, curvature):
    """``k_stab = 2 / (eta0 h)``: the multiplier at which the scaled rate ``k eta0`` meets ``2 / h``.

    ``h = lambda_max(H)`` for mean-square stability of SGD (module docstring).

    >>> float(stability_limit(0.032, 2.5))
    25.0
    """
    return 2.0 / (np.asarray(eta0, np.float64) * np.asarray(curvature, np.float64))


def noise_limit(b_noise, base_batch):
    """``k_noise = B_noise / B0`` (McCandlish et al. 2018, arXiv:1812.06162, Sec. 2).

    >>> float(noise_limit(1280.0, 64))
    20.0
    """
    return np.asarray(b_noise, np.float64) / np.asarray(base_batch, np.float64)


def first_limit(limits: Mapping[str, float]) -> tuple[str, float]:
    """The limit met first, ``(name, k*)``: the smallest finite positive ``k``; ``("none", nan)`` if none is.

    >>> first_limit({"noise": 40.0, "stability": 21.6})
    ('stability', 21.6)
    """
    known = {name: float(k) for name, k in limits.items() if np.isfinite(k) and k > 0}
    if not known:
        return "none", float("nan")
    name = min(known, key=known.get)
    return name, known[name]


def bracket_side(k, k_star: float) -> int:
    """Where ``k`` falls against the bracket ``[k* / 1.5, 1.5 k*]``: -1 below, 0 inside, +1 above (NaN, inf: +1).

    >>> [bracket_side(k, 20.0) for k in (12, 24, 32, float("inf"))]
    [-1, 0, 1, 1]
    """
    ratio = k / k_star
    return -1 if ratio < 1 / BRACKET else (0 if ratio <= BRACKET else 1)


def bracket_gap(ks, k_star: float) -> float:
    """The largest ratio of consecutive ``k`` of a ladder from its largest ``1 < k <= k*/1.5`` to its smallest
    ``k >= 1.5 k*``; inf when a side has none. At most 1.5, the ladder resolves the bracket (2.25 wide): it
    holds a ``k``, and where the first disagreement falls is known to a factor 1.5.

    >>> bracket_gap((1, 2, 4, 6, 8, 12, 16, 24, 32, 48), 22.0), bracket_gap((1, 2, 4, 8, 16, 64), 22.0)
    (1.5, 4.0)
    """
    k = np.asarray(ks, np.float64)
    low, high = k[(k > 1) & (k <= k_star / BRACKET)], k[k >= BRACKET * k_star]
    if not (low.size and high.size):
        return float("inf")
    chain = k[(k >= low[-1]) & (k <= high[0])]
    return float(np.max(chain[1:] / chain[:-1]))


def mean_square_limit_linear(spectrum, eta_over_batch: float) -> float:
    """The largest mean-square stable rate ``x = k eta0`` of SGD on Gaussian linear regression at fixed ``eta / B``.

    The root of ``c sum_i lambda_i / (2 - x lambda_i - c lambda_i) = 1`` below ``2 / lambda_max - c``
    (``c = eta_over_batch``, ``lambda = spectrum``; derivation in the module docstring, the recursion of
    :func:`learnmech.theory.sgd_linear.sgd_second_moments`); 0 when even ``x -> 0`` is unstable
    (``c sum_i lambda_i / (2 - c lambda_i) >= 1``).

    >>> round(mean_square_limit_linear([1.0], 0.0), 12)  # no noise: the GD limit 2 / lambda
    2.0
    """
    lam, c = np.asarray(spectrum, np.float64), float(eta_over_batch)
    top = 2.0 / lam.max() - c

    def excess(x):
        return c * np.sum(lam / (2.0 - x * lam - c * lam)) - 1.0

    if top <= 0 or excess(0.0) >= 0:
        return 0.0
    if c == 0:
        return float(top)
    hi = top * (1 - 1e-15)
    while excess(hi) < 0:  # the sum diverges at x = top; step towards it until it crosses 1
        hi = top - (top - hi) / 1e3
        if top - hi <= 1e-300:  # pragma: no cover - only for lambda_max of zero weight
            return float(top)
    return float(brentq(excess, 0.0, hi, xtol=1e-14, rtol=1e-14))


def noise_floor(eta, batch, spectrum, noise_diagonal):
    """Stationary excess loss ``(eta / 2B) sum_i S_ii / (2 - eta lambda_i)`` of SGD with additive noise.

    Recursion (1) of the module docstring with ``C = 0``: ``M' = (I - eta H) M (I - eta H) + (eta^2/B) Sigma_0``;
    in the eigenbasis of ``H`` (``spectrum`` ``lambda``, ``noise_diagonal`` the diagonal ``S_ii`` of
    ``Sigma_0`` in that basis), ``M_ii = (eta / B) S_ii / (lambda_i (2 - eta lambda_i))`` and the excess
    loss is ``(1/2) sum_i lambda_i M_ii``. Infinite at and beyond ``eta lambda_max = 2``.

    >>> float(noise_floor(0.1, 10, [1.0], [2.0]))  # (0.01 / 2) 2 / 1.9
    0.005263157894736842
    """
    lam, s = np.asarray(spectrum, np.float64), np.asarray(noise_diagonal, np.float64)
    gap = 2.0 - float(eta) * lam
    if np.any(gap <= 0):
        return np.inf
    return float(eta) / (2.0 * float(batch)) * float(np.sum(s / gap))


def noise_floor_slope(spectrum, noise_diagonal) -> float:
    """``d log(noise floor) / d(k eta0)`` at ``k eta0 -> 0`` under the rule: ``h_Sigma / 2 = tr(H S) / (2 tr S)``.

    >>> noise_floor_slope([1.0, 3.0], [1.0, 1.0])  # h_Sigma = 2
    1.0
    """
    lam, s = np.asarray(spectrum, np.float64), np.asarray(noise_diagonal, np.float64)
    return float(np.sum(lam * s) / np.sum(s) / 2.0)
