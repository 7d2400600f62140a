"""Signal propagation in deep random networks: length and correlation maps, order and chaos.

Setting (Poole, Lahiri, Raghu, Sohl-Dickstein & Ganguli 2016, arXiv:1606.05340; Schoenholz, Gilmer,
Ganguli & Sohl-Dickstein 2017, arXiv:1611.01232): a fully connected network of width ``N``,
``h^{l+1} = W^{l+1} phi(h^l) + b^{l+1}`` with ``W_ij ~ N(0, sigma_w^2 / N)`` and ``b_i ~ N(0, sigma_b^2)``.
As ``N -> infinity`` the pre-activations of two inputs ``a, b`` are jointly Gaussian per unit, with
variances ``q^l_aa = (1/N) sum_i (h^l_i(a))^2`` and correlation ``c^l = q^l_ab / sqrt(q^l_aa q^l_bb)``, and

- **length map** ``q^{l+1} = L(q^l) = sigma_w^2 E[phi(sqrt(q^l) z)^2] + sigma_b^2``, ``z ~ N(0, 1)``
  (Poole et al. eq. 3), with a fixed point ``q* = L(q*)`` approached at the depth scale
  ``xi_q = -1 / ln L'(q*)`` (Schoenholz et al. eq. 5: ``L'(q*) = chi_1 + sigma_w^2 E[phi'' phi]``);
- **correlation map** at ``q*``: ``c^{l+1} = C(c^l) = (sigma_w^2 E[phi(u_1) phi(u_2)] + sigma_b^2) / q*``,
  ``(u_1, u_2) ~ N(0, q* [[1, c], [c, 1]])`` (Poole et al. eq. 5). ``c = 1`` is always a fixed point;
- **chi_1** ``= sigma_w^2 E[phi'(sqrt(q*) z)^2] = C'(1)`` (Poole et al. eq. 7): ``chi_1 < 1`` is the
  ordered phase, where ``c* = 1`` is stable; ``chi_1 > 1`` the chaotic phase, where ``c = 1`` is
  unstable and a stable ``c* < 1`` exists;
- **chi_c** ``= C'(c*) = sigma_w^2 E[phi'(u_1) phi'(u_2)]`` at ``c*`` (Price's theorem,
  ``d E[phi(u_1) phi(u_2)] / d cov = E[phi'(u_1) phi'(u_2)]``), equal to ``chi_1`` in the ordered phase;
  ``|c^l - c*| ~ e^{-l / xi_c}`` with ``xi_c = -1 / ln chi_c`` (Schoenholz et al. eq. 9);
- **the critical line** ``sigma_w^2(sigma_b^2)`` where ``chi_1 = 1``: there ``xi_c`` diverges.

The expectations are the dual activation of :mod:`learnmech.theory.dual` (closed forms for erf and
the arc-cosine family, the polar quadrature of :mod:`learnmech.theory.quadrature` for tanh and the
rest): ``dual(q1, q2, cov) = (E[phi(u) phi(v)], E[phi'(u) phi'(v)])``. Every number here is float64.

Conventions: ``sigma_w2`` is ``sigma_w^2`` (the weight variance times the fan-in), ``sigma_b2`` is
``sigma_b^2``; ``q`` is the pre-activation variance, ``c`` a correlation in ``[-1, 1]``; depth ``l``
counts weight layers.

>>> round(critical_sigma_w2(0.05, "tanh"), 3)  # Schoenholz et al. Fig. 1: about 1.76
1.761
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import brentq

from learnmech.theory.dual import DualActivation, get_activation

__all__ = ["MeanField", "chi_1", "correlation_fixed_point", "correlation_map", "correlation_slope",
           "correlation_trajectory", "critical_sigma_w2", "length_fixed_point", "length_map",
           "length_slope", "length_trajectory", "mean_field"]

Q_MAX = 1e8  # a length map still above the diagonal here has no finite fixed point (e.g. ReLU, sigma_w^2 >= 2)
XTOL = 1e-13  # brentq's absolute tolerance on q and c


@functools.lru_cache(maxsize=32)
def _pair(dual: DualActivation):
    """``(q, cov) -> (E[phi(u1) phi(u2)], E[phi'(u1) phi'(u2)])`` for ``u_i`` of variance ``q``, jitted once per
    activation; at ``cov = q`` it gives ``(E[phi(sqrt(q) z)^2], E[phi'(sqrt(q) z)^2])``."""
    return jax.jit(lambda q, cov: dual.fn(q, q, cov))


def _moments(activation, q: float, cov: float) -> tuple[float, float]:
    """The two expectations of :func:`_pair` in float64, as Python floats."""
    with jax.enable_x64(True):
        a, b = _pair(get_activation(activation))(jnp.asarray(q, jnp.float64), jnp.asarray(cov, jnp.float64))
        return float(a), float(b)


def _check(sigma_w2: float, sigma_b2: float) -> None:
    if not (math.isfinite(sigma_w2) and sigma_w2 > 0):
        raise ValueError(f"sigma_w2: must be a finite number > 0, got {sigma_w2}")
    if not (math.isfinite(sigma_b2) and sigma_b2 >= 0):
        raise ValueError(f"sigma_b2: must be a finite number >= 0, got {sigma_b2}")


def length_map(q: float, sigma_w2: float, sigma_b2: float, activation="tanh") -> float:
    """``L(q) = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2`` (Poole et al. 2016, arXiv:1606.05340, eq. 3)."""
    _check(sigma_w2, sigma_b2)
    return sigma_w2 * _moments(activation, q, q)[0] + sigma_b2


def length_slope(q: float, sigma_w2: float, sigma_b2: float, activation="tanh") -> float:
    """``L'(q) = sigma_w^2 d/dq E[phi(sqrt(q) z)^2]``; at ``q*`` it equals ``chi_1 + sigma_w^2 E[phi'' phi]``
    (Schoenholz et al. 2017, arXiv:1611.01232, eq. 5).

    A central difference with step ``h = 1e-4 q`` (truncation ``~h^2 L'''/6``, about 1e-9 relative; rounding
    about ``1e-15 / h``): the dual carries no second derivative, and autodiff through the quadrature
    took seconds to compile.
    """
    _check(sigma_w2, sigma_b2)
    h = 1e-4 * q
    up, down = length_map(q + h, sigma_w2, sigma_b2, activation), length_map(q - h, sigma_w2, sigma_b2, activation)
    return (up - down) / (2 * h)


def length_fixed_point(sigma_w2: float, sigma_b2: float, activation="tanh") -> float:
    """``q* = L(q*)``, the largest root of ``L(q) - q`` (brentq to ``XTOL``).

    For ``sigma_b2 > 0``, ``L(0) > 0``; the root is bracketed by doubling ``q`` until ``L(q) < q``.
    ``ValueError`` when ``L(q) > q`` up to ``Q_MAX`` (no finite fixed point: ReLU at ``sigma_w^2 >= 2``).
    With ``sigma_b2 = 0`` and ``L(q) < q`` for every ``q > 0`` the fixed point is ``q* = 0``.
    """
    _check(sigma_w2, sigma_b2)
    gap = lambda q: length_map(q, sigma_w2, sigma_b2, activation) - q  # noqa: E731
    hi = 1.0
    while gap(hi) > 0:
        hi *= 2.0
        if hi > Q_MAX:
            raise ValueError(f"sigma_w2: the length map has no finite fixed point at sigma_w2={sigma_w2}, "
                             f"sigma_b2={sigma_b2} ({activation})")
    lo = hi / 2.0
    while gap(lo) <= 0:
        lo /= 2.0
        if lo < 1e-12:
            return 0.0  # sigma_b2 = 0 in the ordered phase: the signal dies out
    return float(brentq(gap, lo, hi, xtol=XTOL, rtol=4 * np.finfo(float).eps))


def chi_1(sigma_w2: float, sigma_b2: float, activation="tanh", q_star: float | None = None) -> float:
    """``chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]`` (Poole et al. 2016, eq. 7): the mean squared singular
    value of a layer's Jacobian, ``< 1`` ordered, ``> 1`` chaotic. ``q_star`` defaults to :func:`length_fixed_point`."""
    q = length_fixed_point(sigma_w2, sigma_b2, activation) if q_star is None else q_star
    return sigma_w2 * _moments(activation, q, q)[1]


def correlation_map(c: float, sigma_w2: float, sigma_b2: float, activation="tanh",
                    q_star: float | None = None) -> float:
    """``C(c) = (sigma_w^2 E[phi(u_1) phi(u_2)] + sigma_b^2) / q*``, ``(u_1, u_2) ~ N(0, q* [[1, c], [c, 1]])``
    (Poole et al. 2016, eq. 5), at ``q*`` (default :func:`length_fixed_point`)."""
    q = length_fixed_point(sigma_w2, sigma_b2, activation) if q_star is None else q_star
    return (sigma_w2 * _moments(activation, q, c * q)[0] + sigma_b2) / q


def correlation_slope(c: float, sigma_w2: float, sigma_b2: float, activation="tanh",
                      q_star: float | None = None) -> float:
    """``C'(c) = sigma_w^2 E[phi'(u_1) phi'(u_2)]`` at correlation ``c`` (Price's theorem; module docstring).

    At ``c = 1`` it is ``chi_1``; at ``c = c*`` it is ``chi_c`` (Schoenholz et al. 2017, eq. 8)."""
    q = length_fixed_point(sigma_w2, sigma_b2, activation) if q_star is None else q_star
    return sigma_w2 * _moments(activation, q, c * q)[1]


def correlation_fixed_point(sigma_w2: float, sigma_b2: float, activation="tanh",
                            q_star: float | None = None) -> float:
    """The stable fixed point ``c*`` of :func:`correlation_map`: 1 when ``chi_1 <= 1`` (ordered), else the
    root of ``C(c) - c`` in ``[0, 1)``.

    Bracket: ``C(0) = (sigma_w^2 E[phi]^2 + sigma_b^2)/q* >= 0`` and, with ``chi_1 > 1``,
    ``C(1 - d) - (1 - d) = d (1 - chi_1) + O(d^2) < 0`` for small ``d`` (halved until negative).
    """
    q = length_fixed_point(sigma_w2, sigma_b2, activation) if q_star is None else q_star
    if chi_1(sigma_w2, sigma_b2, activation, q) <= 1.0:
        return 1.0
    gap = lambda c: correlation_map(c, sigma_w2, sigma_b2, activation, q) - c  # noqa: E731
    if gap(0.0) <= 0.0:
        return 0.0
    d = 0.5
    while gap(1.0 - d) >= 0.0:
        d /= 2.0
        if d < 1e-14:
            return 1.0  # numerically at the critical line
    return float(brentq(gap, 0.0, 1.0 - d, xtol=XTOL, rtol=4 * np.finfo(float).eps))


class MeanField(NamedTuple):
    """The mean-field numbers of one ``(sigma_w^2, sigma_b^2, phi)`` (module docstring); depth scales in layers
    (``inf`` where the slope is 1 or more: no exponential approach)."""

    q_star: float
    c_star: float
    chi_1: float
    chi_c: float
    xi_c: float
    xi_q: float


def _depth_scale(slope: float) -> float:
    """``xi = -1 / ln(slope)`` for ``0 < slope < 1``, ``inf`` otherwise."""
    return -1.0 / math.log(slope) if 0.0 < slope < 1.0 else math.inf


def mean_field(sigma_w2: float, sigma_b2: float, activation="tanh") -> MeanField:
    """``q*, c*, chi_1, chi_c, xi_c = -1/ln chi_c, xi_q = -1/ln L'(q*)`` (Schoenholz et al. 2017, arXiv:1611.01232)."""
    q = length_fixed_point(sigma_w2, sigma_b2, activation)
    c = correlation_fixed_point(sigma_w2, sigma_b2, activation, q)
    x1 = chi_1(sigma_w2, sigma_b2, activation, q)
    xc = x1 if c == 1.0 else correlation_slope(c, sigma_w2, sigma_b2, activation, q)
    return MeanField(q, c, x1, xc, _depth_scale(xc), _depth_scale(length_slope(q, sigma_w2, sigma_b2, activation)))


def critical_sigma_w2(sigma_b2: float, activation="tanh", bracket: tuple[float, float] = (0.5, 8.0)) -> float:
    """The critical line: the ``sigma_w^2`` where ``chi_1(sigma_w^2, sigma_b^2) = 1`` (brentq on ``ln chi_1``
    within ``bracket``; ``ValueError`` when ``chi_1 - 1`` has no sign change there).

    Schoenholz et al. 2017 (arXiv:1611.01232, Fig. 1) place it near ``sigma_w^2 = 1.76`` for tanh at
    ``sigma_b^2 = 0.05``. At ``sigma_b^2 = 0`` (tanh) ``chi_1 - 1`` touches zero without changing sign
    (brentq fails): use ``sigma_b2 > 0``.
    """
    lo, hi = bracket
    g = lambda s: math.log(chi_1(s, sigma_b2, activation))  # noqa: E731
    g_lo, g_hi = g(lo), g(hi)
    if not g_lo < 0.0 < g_hi:
        raise ValueError(f"bracket: chi_1 - 1 must change sign on {bracket}, got ln chi_1 = {g_lo:.3g}, {g_hi:.3g}")
    return float(brentq(g, lo, hi, xtol=1e-12))


def length_trajectory(q0: float, depth: int, sigma_w2: float, sigma_b2: float, activation="tanh") -> np.ndarray:
    """``q^0 = q0, q^1 = L(q^0), ..., q^depth``: ``(depth + 1,)`` (the infinite-width prediction)."""
    out = [float(q0)]
    for _ in range(depth):
        out.append(length_map(out[-1], sigma_w2, sigma_b2, activation))
    return np.asarray(out)


def correlation_trajectory(c0: float, depth: int, sigma_w2: float, sigma_b2: float, activation="tanh",
                           q_star: float | None = None) -> np.ndarray:
    """``c^0 = c0, c^{l+1} = C(c^l)`` at ``q*``: ``(depth + 1,)`` (the infinite-width prediction, inputs at ``q*``)."""
    q = length_fixed_point(sigma_w2, sigma_b2, activation) if q_star is None else q_star
    out = [float(c0)]
    for _ in range(depth):
        out.append(min(1.0, correlation_map(out[-1], sigma_w2, sigma_b2, activation, q)))
    return np.asarray(out)
