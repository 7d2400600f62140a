"""Deep linear networks: mode-by-mode learning dynamics under gradient flow.

Contract: every function here is a pure prediction in float64 numpy, vectorised over modes
(the last axis of ``s``/``u0``) and times, with no training, I/O or randomness.

Setting (Saxe, McClelland & Ganguli 2014, arXiv:1312.6120). A depth-``L`` linear network
``f(x) = W_L ... W_1 x`` is trained by gradient flow on

    L(W) = (1/2n) sum_i ||f(x_i) - y_i||^2

with whitened inputs (``Sigma_xx = I``) and input-output correlation
``Sigma_yx = U diag(s) V^T``. From a balanced initialisation aligned with ``U`` and ``V`` every
singular mode evolves on its own; its end-to-end strength ``u_a = [U^T W_L ... W_1 V]_aa`` obeys

    du/dt = L u^{2 - 2/L} (s - u),

where time is gradient-flow time ``t = eta * steps`` for plain GD with learning rate ``eta``.
With this loss normalisation the two-layer case is ``du/dt = 2 u (s - u)`` (the factor 2 and
the absence of Saxe's ``tau`` are conventions of this loss, not of the paper).
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

__all__ = [
    "mode_trajectory_two_layer",
    "t_half",
    "t_half_two_layer",
    "mode_trajectory",
    "predicted_loss",
]


def _broadcast(s, u0, t):
    """Float64 arrays shaped for (times, modes) evaluation."""
    s = np.atleast_1d(np.asarray(s, dtype=np.float64))
    u0 = np.broadcast_to(np.asarray(u0, dtype=np.float64), s.shape)
    t = np.asarray(t, dtype=np.float64)
    if np.any(s <= 0):
        raise ValueError("s: singular values must be positive")
    if np.any(u0 <= 0) or np.any(u0 >= s):
        raise ValueError("u0: initial mode strengths must satisfy 0 < u0 < s")
    return s, u0, t


def mode_trajectory_two_layer(t, s, u0):
    """Closed-form mode strength of a two-layer linear network.

    Solves ``du/dt = 2 u (s - u)``, ``u(0) = u0``:

        u(t) = s e^{2 s t} / (e^{2 s t} - 1 + s/u0)
             = s / (1 + exp(-2 s (t - t_half)))   with   t_half = ln(s/u0 - 1) / (2 s).

    The second (logistic) form is evaluated: it never overflows.

    Args:
      t: times, any shape ``T`` (gradient-flow time, ``eta * steps``).
      s: singular values of ``Sigma_yx``, shape ``(K,)``.
      u0: initial mode strengths, scalar or ``(K,)``, with ``0 < u0 < s``.

    Returns:
      ``u`` of shape ``T + (K,)``.

    >>> float(mode_trajectory_two_layer(t_half_two_layer(2.0, 1e-3), 2.0, 1e-3)[0])
    1.0
    """
    s, u0, t = _broadcast(s, u0, t)
    th = t_half_two_layer(s, u0)
    z = -2.0 * s * (t[..., None] - th)
    return s * np.exp(-np.logaddexp(0.0, z))


def t_half_two_layer(s, u0):
    """Time for a two-layer mode to go from ``u0`` to ``s/2``: ``ln(s/u0 - 1) / (2 s)``.

    Defined for ``0 < u0 < s`` (negative when ``u0 > s/2``: the mode passed half-way before
    ``t = 0``); other values raise ``ValueError``, as :func:`mode_trajectory_two_layer` does.

    >>> round(float(t_half_two_layer(2.0, 1e-3)), 4)
    1.9001
    """
    s = np.asarray(s, dtype=np.float64)
    u0 = np.asarray(u0, dtype=np.float64)
    _broadcast(*np.broadcast_arrays(s, u0), 0.0)  # the checks of every trajectory: s > 0, 0 < u0 < s
    return np.log(s / u0 - 1.0) / (2.0 * s)


def _check_depth(depth) -> None:
    if int(depth) != depth or depth < 1:
        raise ValueError("depth: must be an integer >= 1")


def _depth_rhs(depth: int, s: np.ndarray):
    """Right-hand side of the mode ODE in the variable ``z = ln u`` (well scaled near 0)."""
    power = 1.0 - 2.0 / depth  # dz/dt = (du/dt)/u = L u^{1 - 2/L} (s - u)

    def rhs(_t, z):
        u = np.exp(z)
        return depth * u**power * (s - u)

    return rhs


def mode_trajectory(t, s, u0, depth: int = 2, *, rtol: float = 1e-11, atol: float = 1e-12):
    """Mode strengths of a depth-``L`` linear network, ``du/dt = L u^{2-2/L} (s - u)``.

    Depth 2 uses the closed form. Other depths integrate the ODE in ``z = ln u`` with an
    8th-order Runge-Kutta method (DOP853) at tolerance ``rtol``; all modes are one vector
    system. For ``L = 1`` the closed form ``u = s - (s - u0) e^{-t}`` is used.

    Args:
      t: non-negative times, shape ``(T,)``, any order.
      s: singular values, ``(K,)``.
      u0: initial end-to-end strengths, scalar or ``(K,)`` with ``0 < u0 < s``.
      depth: number of weight matrices ``L >= 1``.

    Returns:
      ``u`` of shape ``(T, K)``.
    """
    _check_depth(depth)
    s, u0, t = _broadcast(s, u0, t)
    t = np.atleast_1d(t)
    if np.any(t < 0):
        raise ValueError("t: times must be non-negative")
    if depth == 2:
        return mode_trajectory_two_layer(t, s, u0)
    if depth == 1:
        return s - (s - u0) * np.exp(-t[:, None])
    if not np.any(t > 0):  # solve_ivp cannot integrate over an empty interval
        return np.broadcast_to(u0, (t.size, s.size)).copy()
    order = np.argsort(t)
    sol = solve_ivp(
        _depth_rhs(depth, s), (0.0, float(t.max(initial=0.0))), np.log(u0),
        method="DOP853", t_eval=t[order], rtol=rtol, atol=atol,
    )
    if not sol.success:
        raise RuntimeError(f"mode ODE integration failed: {sol.message}")
    u = np.empty((t.size, s.size))
    u[order] = np.exp(sol.y.T)
    return u


def t_half(s, u0, depth: int = 2):
    """Time for a depth-``L`` mode to reach ``s/2`` from ``u0``.

    Separating variables, ``t_half = int_{u0}^{s/2} du / (L u^{2-2/L} (s - u))``, computed by
    adaptive quadrature in ``z = ln u``. Depth 2 has the closed form ``ln(s/u0 - 1)/(2s)``.
    """
    _check_depth(depth)
    s, u0, _ = _broadcast(s, u0, 0.0)
    if depth == 2:
        return t_half_two_layer(s, u0)
    from scipy.integrate import quad

    power = 1.0 - 2.0 / depth

    def one(sa, ua):
        f = lambda z: 1.0 / (depth * np.exp(z) ** power * (sa - np.exp(z)))  # noqa: E731
        return quad(f, np.log(ua), np.log(sa / 2.0), epsabs=0.0, epsrel=1e-12, limit=200)[0]

    return np.array([one(sa, ua) for sa, ua in zip(s, u0)])


def predicted_loss(u, s, residual: float = 0.0):
    """Loss predicted from mode strengths: ``L = 1/2 sum_a (s_a - u_a)^2 + residual``.

    With whitened inputs and the network aligned with the teacher's singular vectors,
    ``W = U diag(u) V^T`` and ``L = 1/2 ||W - U diag(s) V^T||_F^2 + 1/2 (tr Sigma_yy - sum s^2)``;
    ``residual`` is that last, unlearnable term (0 for a noiseless rank-``K`` teacher).

    Args:
      u: mode strengths ``(..., K)``.
      s: singular values ``(K,)``.
    """
    u = np.asarray(u, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    return 0.5 * np.sum((s - u) ** 2, axis=-1) + residual
