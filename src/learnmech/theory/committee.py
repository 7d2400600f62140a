"""Online SGD in a soft committee machine: the order-parameter ODEs of Saad & Solla.

Model (Saad & Solla 1995, PRL 74:4337; Biehl & Schwarze 1995, J. Phys. A 28:643; Goldt, Advani,
Saxe, Krzakala & Zdeborova 2019, arXiv:1906.08632). Inputs ``x ~ N(0, I_N)``; a student with ``K``
units ``w_i`` and a teacher with ``M`` units ``B_n`` (rows of ``W`` ``(K, N)`` and ``B`` ``(M, N)``),

    f(x) = sum_i g(lambda_i),  y(x) = sum_n g(nu_n),  lambda_i = w_i.x / sqrt N,  nu_n = B_n.x / sqrt N,

with ``g(u) = erf(u / sqrt 2)``. Second-layer weights are fixed to 1 and not trained (the classic
soft committee machine). The per-example loss is ``(f - y)^2 / 2``; online SGD takes a fresh
example each step and moves ``w_i <- w_i + (eta / sqrt N) delta_i x`` with
``delta_i = g'(lambda_i) (y - f)``: a learning rate ``eta`` on the gradient of ``w``, which is
Saad & Solla's ``eta / N`` in their units ``J = w / sqrt N``. Time is ``alpha = steps / N``.

Order parameters: ``R = W B^T / N`` ``(K, M)``, ``Q = W W^T / N`` ``(K, K)``, ``T = B B^T / N``
``(M, M)``; ``(lambda, nu)`` is Gaussian with covariance ``C = [[Q, R], [R^T, T]]``. As
``N -> inf`` (each step changes ``R, Q`` by ``O(1/N)``; the fluctuations vanish like ``1/sqrt N``)

    dR_in/dalpha = eta E[delta_i nu_n],
    dQ_ik/dalpha = eta E[delta_i lambda_k + delta_k lambda_i] + eta^2 E[delta_i delta_k],

the ``eta^2`` term coming from ``|x|^2 / N -> 1``. With the signed units ``s_a = -1`` (student
``a < K``) and ``+1`` (teacher), ``y - f = sum_a s_a g(u_a)`` and every expectation is a sum of
three Gaussian integrals of erf units with closed forms (Saad & Solla 1995; derivation in Saad &
Solla 1995b, Phys. Rev. E 52:4225, appendix):

    I2(a, b)       = E[g(u_a) g(u_b)]
                   = (2/pi) arcsin(C_ab / sqrt((1 + C_aa)(1 + C_bb))),
    I3(a, b, c)    = E[g'(u_a) u_b g(u_c)]
                   = (2/pi) (C_bc (1 + C_aa) - C_ab C_ac) / ((1 + C_aa) sqrt(L3)),
                     L3 = (1 + C_aa)(1 + C_cc) - C_ac^2,
    I4(a, b, c, d) = E[g'(u_a) g'(u_b) g(u_c) g(u_d)]
                   = (4/pi^2) arcsin(L0 / sqrt(L1 L2)) / sqrt(L4),
                     L4 = (1 + C_aa)(1 + C_bb) - C_ab^2,
                     L0 = L4 C_cd - C_bc C_bd (1 + C_aa) - C_ac C_ad (1 + C_bb) + C_ab C_ac C_bd + C_ab C_ad C_bc,
                     L1 = L4 (1 + C_cc) - C_bc^2 (1 + C_aa) - C_ac^2 (1 + C_bb) + 2 C_ab C_ac C_bc,
                     L2 = L1 with c -> d.

So ``dR_in = eta sum_c s_c I3(i, n, c)``, ``dQ_ik = eta sum_c s_c (I3(i, k, c) + I3(k, i, c)) +
eta^2 sum_cd s_c s_d I4(i, k, c, d)`` (:func:`order_parameter_rhs`), and the generalisation error,
with the ``1/2`` of the loss, is ``eps_g = (1/2) E[(f - y)^2] = (1/2) sum_ab s_a s_b I2(a, b)``
(:func:`generalisation_error`; Saad & Solla's ``(1/pi) sum arcsin(...)``).

Plateau. For ``K = M``, ``T = I`` and small ``eta`` the dynamics is caught near the symmetric fixed
point ``R_in = 1 / sqrt(K (2K - 1))``, ``Q_ik = 1 / (2K - 1)`` (every student unit alike), where
``eps_g = (K / pi) (pi/6 - K arcsin(1 / (2K)))`` (Saad & Solla 1995, PRL; :func:`plateau_error_small_lr`),
until the small asymmetry of the initial overlaps grows and the units specialise.

Curve landmarks, one definition for theory and measurement: the plateau is the point, after the curve
first falls to half its initial value, where ``|d log eps_g / d log alpha|`` is smallest
(:func:`plateau_index`; in log-log coordinates the initial fall and the final exponential decay are
both steep, the plateau flat); the escape time is the first ``alpha`` after it at which ``eps_g`` falls
below ``(eps_plateau + eps_final) / 2``, ``eps_final`` the curve's last value (:func:`escape_time`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = [
    "OverlapPath",
    "erf_integrals",
    "escape_time",
    "generalisation_error",
    "integrate_overlaps",
    "joint_covariance",
    "order_parameter_rhs",
    "plateau_error_small_lr",
    "plateau_index",
    "symmetric_fixed_point",
]


class OverlapPath(NamedTuple):
    """ODE solution on a uniform grid: ``alpha`` ``(P,)``, ``R`` ``(..., P, K, M)``, ``Q`` ``(..., P, K, K)``,
    ``eps`` ``(..., P)``."""

    alpha: np.ndarray
    R: np.ndarray
    Q: np.ndarray
    eps: np.ndarray


def joint_covariance(R, Q, T) -> np.ndarray:
    """``C = [[Q, R], [R^T, T]]`` ``(..., K + M, K + M)``, the covariance of ``(lambda_1..K, nu_1..M)``.

    ``R`` ``(..., K, M)``, ``Q`` ``(..., K, K)``; ``T`` ``(M, M)`` is shared by the batch.
    """
    R, Q = np.asarray(R, np.float64), np.asarray(Q, np.float64)
    T = np.broadcast_to(np.asarray(T, np.float64), R.shape[:-2] + (R.shape[-1],) * 2)
    return np.concatenate([np.concatenate([Q, R], -1), np.concatenate([np.swapaxes(R, -1, -2), T], -1)], -2)


def erf_integrals(C) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(I2, I3, I4)`` of ``g(u) = erf(u / sqrt 2)`` for ``u ~ N(0, C)``, ``C`` ``(..., n, n)``.

    ``I2[..., a, b] = E[g(u_a) g(u_b)]``, ``I3[..., a, b, c] = E[g'(u_a) u_b g(u_c)]``,
    ``I4[..., a, b, c, d] = E[g'(u_a) g'(u_b) g(u_c) g(u_d)]``: the arcsin closed forms of the module
    docstring (Saad & Solla 1995, PRL 74:4337), valid for repeated indices too. Float64.

    >>> round(float(erf_integrals(np.eye(1))[0][0, 0]), 6)  # (2/pi) arcsin(1/2) = 1/3
    0.333333
    """
    C = np.asarray(C, np.float64)
    d = 1.0 + np.diagonal(C, axis1=-2, axis2=-1)  # (..., n)  1 + C_aa
    i2 = (2 / np.pi) * np.arcsin(C / np.sqrt(d[..., :, None] * d[..., None, :]))
    return i2, _i3(C, d), _i4(C, d)


def _i3(C, d):
    """``I3[..., a, b, c]``; axes ``a, b, c`` broadcast as ``(n,1,1)``, ``(1,n,1)``, ``(1,1,n)``."""
    da, dc = d[..., :, None, None], d[..., None, None, :]
    cab, cac, cbc = C[..., :, :, None], C[..., :, None, :], C[..., None, :, :]
    return (2 / np.pi) * (cbc * da - cab * cac) / (da * np.sqrt(da * dc - cac**2))


def _i4(C, d):
    """``I4[..., a, b, c, d]`` on axes broadcast as ``(n,1,1,1)`` ... ``(1,1,1,n)``."""
    da, db = d[..., :, None, None, None], d[..., None, :, None, None]
    dc, dd = d[..., None, None, :, None], d[..., None, None, None, :]
    ab = C[..., :, :, None, None]
    ac, ad = C[..., :, None, :, None], C[..., :, None, None, :]
    bc, bd = C[..., None, :, :, None], C[..., None, :, None, :]
    cd = C[..., None, None, :, :]
    l4 = da * db - ab**2
    l0 = l4 * cd - bc * bd * da - ac * ad * db + ab * ac * bd + ab * ad * bc
    l1 = l4 * dc - bc**2 * da - ac**2 * db + 2 * ab * ac * bc
    l2 = l4 * dd - bd**2 * da - ad**2 * db + 2 * ab * ad * bd
    return (4 / np.pi**2) * np.arcsin(l0 / np.sqrt(l1 * l2)) / np.sqrt(l4)


def _signs(k: int, m: int) -> np.ndarray:
    """``s_a``: ``-1`` for the ``k`` student units, ``+1`` for the ``m`` teacher units (``y - f = s . g(u)``)."""
    return np.concatenate([-np.ones(k), np.ones(m)])


def order_parameter_rhs(R, Q, T, eta: float) -> tuple[np.ndarray, np.ndarray]:
    """``(dR/dalpha, dQ/dalpha)`` of online SGD, shapes ``(..., K, M)`` and ``(..., K, K)``.

    ``dR_in = eta sum_c s_c I3(i, n, c)``, ``dQ_ik = eta sum_c s_c [I3(i, k, c) + I3(k, i, c)] +
    eta^2 sum_cd s_c s_d I4(i, k, c, d)``, indices over the ``K + M`` units of
    :func:`joint_covariance`, ``s = (-1)^K (+1)^M`` (Saad & Solla 1995, PRL 74:4337, eqs. 2-3 in these
    units; learning rate ``eta`` on ``w``, time ``alpha = steps / N``).
    """
    R = np.asarray(R, np.float64)
    k, m = R.shape[-2], R.shape[-1]
    _, i3, i4 = erf_integrals(joint_covariance(R, Q, T))
    s = _signs(k, m)
    d_r = eta * (i3[..., :k, k:, :] @ s)  # (..., K, M)
    a = i3[..., :k, :k, :] @ s  # (..., K, K)  E[delta_i lambda_k]
    d_q = eta * (a + np.swapaxes(a, -1, -2)) + eta**2 * ((i4[..., :k, :k, :, :] @ s) @ s)
    return d_r, d_q


def generalisation_error(R, Q, T) -> np.ndarray:
    """``eps_g = (1/2) E[(f - y)^2] = (1/2) sum_ab s_a s_b I2(a, b)`` (the 1/2 of the loss included).

    ``R`` ``(..., K, M)``, ``Q`` ``(..., K, K)``, ``T`` ``(M, M)``; returns ``(...)`` float64.
    Saad & Solla 1995 (PRL 74:4337), eq. 1, with ``g(u) = erf(u / sqrt 2)``.

    >>> round(float(generalisation_error(np.zeros((1, 1)), np.zeros((1, 1)), np.eye(1))), 12)  # zero student: 1/6
    0.166666666667
    """
    C = joint_covariance(R, Q, T)
    d = 1.0 + np.diagonal(C, axis1=-2, axis2=-1)
    i2 = (2 / np.pi) * np.arcsin(C / np.sqrt(d[..., :, None] * d[..., None, :]))
    s = _signs(np.shape(R)[-2], np.shape(R)[-1])
    return 0.5 * ((i2 @ s) @ s)


def _rk4_step(R, Q, T, eta, h):
    """One classical Runge-Kutta step of ``(R, Q)`` over ``dalpha = h``."""
    k1 = order_parameter_rhs(R, Q, T, eta)
    k2 = order_parameter_rhs(R + h / 2 * k1[0], Q + h / 2 * k1[1], T, eta)
    k3 = order_parameter_rhs(R + h / 2 * k2[0], Q + h / 2 * k2[1], T, eta)
    k4 = order_parameter_rhs(R + h * k3[0], Q + h * k3[1], T, eta)
    return tuple(x + h / 6 * (a + 2 * b + 2 * c + d) for x, a, b, c, d in zip((R, Q), k1, k2, k3, k4))


def integrate_overlaps(R0, Q0, T, eta: float, alpha_max: float, points: int, dalpha: float = 0.01) -> OverlapPath:
    """The ODE solution from ``(R0, Q0)`` at ``alpha = j alpha_max / points``, ``j = 0..points``, by fixed-step RK4.

    ``R0`` ``(..., K, M)`` and ``Q0`` ``(..., K, K)`` may carry leading batch axes (one ODE each,
    e.g. one per seed's initial overlaps), integrated together; ``T`` ``(M, M)``. The step is the
    largest ``h <= dalpha`` that divides the grid spacing. Float64; ``eps`` is
    :func:`generalisation_error` along the path.
    """
    if not (alpha_max > 0 and points >= 1 and dalpha > 0 and eta > 0):
        raise ValueError("alpha_max, points, dalpha, eta: must be positive")
    substeps = max(1, math.ceil(alpha_max / points / dalpha - 1e-9))
    h = alpha_max / points / substeps
    R, Q = np.asarray(R0, np.float64), np.asarray(Q0, np.float64)
    rs, qs = [R], [Q]
    for _ in range(points):
        for _ in range(substeps):
            R, Q = _rk4_step(R, Q, T, eta, h)
        rs.append(R)
        qs.append(Q)
    rs, qs = np.stack(rs, -3), np.stack(qs, -3)  # (..., P, K, M), (..., P, K, K)
    return OverlapPath(np.linspace(0.0, alpha_max, points + 1), rs, qs, generalisation_error(rs, qs, T))


def plateau_error_small_lr(k: int) -> float:
    """Height of the symmetric plateau for ``K = M = k``, ``T = I``, as ``eta -> 0``.

    ``eps_g* = (K / pi) (pi / 6 - K arcsin(1 / (2K)))`` at ``R_in = 1/sqrt(K (2K - 1))``,
    ``Q_ik = 1 / (2K - 1)`` (Saad & Solla 1995, PRL 74:4337): ``0.01161`` for ``K = 2``.

    >>> round(plateau_error_small_lr(2), 5)
    0.01161
    """
    if k < 1:
        raise ValueError(f"k: must be >= 1, got {k}")
    return k / math.pi * (math.pi / 6 - k * math.asin(1 / (2 * k)))


def _symmetric(k: int, r: float, q: float, c: float):
    """``R = r 1 1^T`` ``(k, k)`` and ``Q`` with ``q`` on the diagonal and ``c`` off it."""
    return np.full((k, k), r), np.full((k, k), c) + (q - c) * np.eye(k)


def symmetric_fixed_point(k: int, eta: float) -> tuple[float, float, float, float]:
    """``(r, q, c, eps_g)`` of the symmetric fixed point for ``K = M = k``, ``T = I``, learning rate ``eta``.

    In the subspace ``R_in = r``, ``Q_ii = q``, ``Q_ik = c`` (``i != k``) the ODEs of
    :func:`order_parameter_rhs` reduce to three equations ``dR_11 = dQ_11 = dQ_12 = 0``, solved by
    :func:`scipy.optimize.fsolve` from the ``eta -> 0`` point ``r = 1/sqrt(k(2k-1))``,
    ``q = c = 1/(2k-1)`` (Saad & Solla 1995, PRL 74:4337). The ``eta^2`` term lifts the plateau:
    ``eps_g = 0.01209`` at ``eta = 0.1``, ``0.02116`` at ``eta = 1`` for ``k = 2``. Raises ``ValueError``
    when no root is found, or the root is not a valid covariance (``eta`` near the largest stable
    learning rate, e.g. ``k = 2, eta = 2``).
    """
    from scipy.optimize import fsolve

    if k < 1 or not eta > 0:
        raise ValueError(f"k, eta: need k >= 1 and eta > 0, got {k}, {eta}")
    T = np.eye(k)

    def rhs(v):
        d_r, d_q = order_parameter_rhs(*_symmetric(k, *v), T, eta)  # divided by eta: O(1) residuals
        return [float(d_r[0, 0]) / eta, float(d_q[0, 0]) / eta, float(d_q[0, 1]) / eta if k > 1 else v[2] - v[1]]

    start = [1 / math.sqrt(k * (2 * k - 1)), 1 / (2 * k - 1), 1 / (2 * k - 1)]
    (r, q, c), info, _, _ = fsolve(rhs, start, xtol=1e-13, full_output=True)
    R, Q = _symmetric(k, r, q, c)
    solved = np.max(np.abs(info["fvec"])) < 1e-10
    if not solved or np.min(np.linalg.eigvalsh(np.block([[Q, R], [R.T, T]]))) < -1e-9:  # singular when q = c
        raise ValueError(f"eta: no symmetric fixed point with a valid covariance at eta = {eta}")
    return float(r), float(q), float(c), float(generalisation_error(R, Q, T))


def _curve(alpha, eps) -> tuple[np.ndarray, np.ndarray]:
    a, e = np.asarray(alpha, np.float64), np.asarray(eps, np.float64)
    if a.ndim != 1 or a.shape != e.shape or a.size < 3 or np.any(np.diff(a) <= 0) or a[0] < 0:
        raise ValueError("alpha/eps: must be 1-d, the same length >= 3, alpha >= 0 strictly increasing")
    return a, e


FLOOR = 1e-3  # plateau_index searches only above FLOOR x the value where the search starts


def plateau_index(alpha, eps) -> int:
    """Index of the plateau: after ``eps`` first falls to half of ``eps[0]``, the point where
    ``|d log eps / d log alpha|`` (central differences, :func:`numpy.gradient`) is smallest.

    Only points before the curve falls below :data:`FLOOR` times its value at the start of the search
    are candidates, so a converged tail (flat at round-off) is never taken for a plateau; symmetric
    plateaus of ``K = M`` erf machines lie 10 to 40 times below the initial error, far above it.

    Returns ``-1`` when the curve never halves or is not positive there (no plateau to locate).
    """
    a, e = _curve(alpha, eps)
    start = np.flatnonzero((e <= e[0] / 2) & (a > 0))
    if start.size == 0:
        return -1
    i0 = start[0]
    low = np.flatnonzero(e[i0:] <= FLOOR * e[i0])
    i1 = i0 + (low[0] if low.size else e.size - i0)  # search [i0, i1): before the curve reaches the floor
    if i1 - i0 < 1 or np.any(e[i0:i1] <= 0):
        return -1
    positive = a > 0
    slope = np.gradient(np.log(e[positive]), np.log(a[positive]))[i0 - int(np.sum(~positive)):]
    return int(i0 + np.argmin(np.abs(slope[: i1 - i0])))


def escape_time(alpha, eps, plateau: int | None = None) -> float:
    """First ``alpha`` after the plateau at which ``eps <= (eps[plateau] + eps[-1]) / 2``; NaN if never.

    ``plateau`` defaults to :func:`plateau_index`; between the bracketing samples ``alpha`` is
    interpolated linearly in ``eps``.
    """
    a, e = _curve(alpha, eps)
    p = plateau_index(a, e) if plateau is None else int(plateau)
    if p < 0:
        return float("nan")
    level = 0.5 * (e[p] + e[-1])
    below = np.flatnonzero(e[p:] <= level)
    if below.size == 0 or below[0] == 0:
        return float("nan")
    j = p + below[0]
    return float(a[j - 1] + (a[j] - a[j - 1]) * (e[j - 1] - level) / (e[j - 1] - e[j]))
