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
    "effective_u0_two_layer",
    "mode_trajectory_two_layer",
    "rise_time_two_layer",
    "stage_separation_two_layer",
    "t_half",
    "t_half_two_layer",
    "transition_time_two_layer",
    "typical_u0_two_layer",
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


# ---------------------------------------------------------------- stages from a small random init


def transition_time_two_layer(s, u0, fraction):
    """Time at which a two-layer mode reaches ``fraction x s``: ``t_q = t_half + ln(q/(1 - q)) / (2 s)``.

    From the logistic form of :func:`mode_trajectory_two_layer`, ``u/s = 1/(1 + exp(-2 s (t - t_half)))``;
    solving ``u/s = q`` gives the line above (Saxe, McClelland & Ganguli 2014, arXiv:1312.6120, with
    this module's loss normalisation). ``t_q`` is negative when ``u0 > q s`` (reached before ``t = 0``).

    >>> round(float(transition_time_two_layer(2.0, 1e-3, 0.5)), 4)  # q = 1/2 is t_half
    1.9001
    """
    q = np.asarray(fraction, dtype=np.float64)
    if np.any(q <= 0) or np.any(q >= 1):
        raise ValueError("fraction: must lie strictly between 0 and 1")
    s = np.asarray(s, dtype=np.float64)
    return t_half_two_layer(s, u0) + np.log(q / (1.0 - q)) / (2.0 * s)


def rise_time_two_layer(s, u0, lo: float = 0.1, hi: float = 0.9):
    """Width of a two-layer mode's transition: the time from ``u = lo s`` to ``u = hi s``.

    By :func:`transition_time_two_layer`, ``t_hi - t_lo = [ln(hi/(1-hi)) - ln(lo/(1-lo))] / (2 s)``, which
    for the 10%-90% rise is ``ln(81) / (2 s)``, independent of ``u0``: exact whenever ``u0 <= lo s`` (the
    logistic form holds for every ``u0``, so "small ``u0``" only needs the start below ``lo s``). A mode
    that starts above ``lo s`` rises from ``t = 0``: its width is ``max(t_hi, 0) - max(t_lo, 0)``.

    >>> bool(np.isclose(rise_time_two_layer(2.0, 1e-3), np.log(81) / 4))
    True
    """
    if not lo < hi:
        raise ValueError(f"lo, hi: need lo < hi, got {lo}, {hi}")
    t_lo = transition_time_two_layer(s, u0, lo)
    t_hi = transition_time_two_layer(s, u0, hi)
    return np.maximum(t_hi, 0.0) - np.maximum(t_lo, 0.0)


def stage_separation_two_layer(s, u0):
    """Plateau between consecutive stages over the earlier stage's width, ``(..., K - 1)``.

    For modes ordered by decreasing ``s`` (the order they are learned in), pair ``(a, a + 1)`` has the
    predicted plateau ``t_half(s_{a+1}, u0_{a+1}) - t_half(s_a, u0_a)`` (:func:`t_half_two_layer`) and the
    earlier mode's 10%-90% rise time ``ln(81)/(2 s_a)`` (:func:`rise_time_two_layer`); the ratio is returned.
    dln.saddle-to-saddle calls the stages separated where it is at least 2 (CLAIMS.md, rule revised in #9).

    Args:
      s: singular values, ``(K,)``, strictly decreasing.
      u0: initial strengths, ``(..., K)`` (e.g. one row per network), each ``0 < u0 < s``.
    """
    s = np.asarray(s, dtype=np.float64)
    if s.ndim != 1 or s.size < 2 or np.any(np.diff(s) >= 0):
        raise ValueError("s: need at least two strictly decreasing singular values")
    u0 = np.asarray(u0, dtype=np.float64)
    th = t_half_two_layer(s, u0)  # (..., K)
    return (th[..., 1:] - th[..., :-1]) / rise_time_two_layer(s[:-1], u0[..., :-1])


def effective_u0_two_layer(a, b):
    """The initial strength each mode of a two-layer network grows from, after a small random init.

    Setting: ``f(x) = W2 W1 x``, loss ``(1/2) ||U diag(s) V^T - W2 W1||_F^2`` (whitened inputs, module
    docstring), gradient flow. Write ``a_k = W1 v_k`` and ``b_k = W2^T u_k`` (hidden vectors, ``(h,)``), so
    the mode strength is ``u_k = [U^T W2 W1 V]_kk = a_k . b_k``. While ``W2 W1`` is small,
    ``da_k/dt = s_k b_k`` and ``db_k/dt = s_k a_k``: ``p_k = a_k + b_k`` grows like ``e^{s_k t}``, ``a_k - b_k``
    decays like ``e^{-s_k t}``, and ``u_k = (|p_k|^2 - |a_k - b_k|^2)/4 -> |p_k(0)|^2 e^{2 s_k t} / 4``: the
    small-``u`` limit ``u0 e^{2 s t}`` of the logistic with ``u0 = |p_k(0)|^2 / 4`` (Saxe, McClelland &
    Ganguli 2014, arXiv:1312.6120; the incremental regime of Jacot et al. 2021, arXiv:2106.15933).
    When an earlier (larger-``s``) mode ``c`` has been learned, ``W2^T W2`` and ``W1 W1^T`` hold
    ``s_c e_c e_c^T`` (``e_c`` its hidden direction, along ``p_c``), and the cubic terms ``-W2^T W2 a_k``,
    ``-W1 W1^T b_k`` damp the part of ``p_k`` along ``e_c`` at rate ``s_c``: mode ``k`` grows from the part of
    ``p_k(0)`` orthogonal to ``p_1 .. p_{k-1}``. Hence (derived here)

        u0_k = |P_{<k}^perp p_k(0)|^2 / 4 = R_kk^2 / 4,   [p_1 ... p_K] = Q R  (QR, columns in order of s).

    The projected initial product ``a_k . b_k = (|p_k|^2 - |a_k - b_k|^2)/4`` is not this: at ``t = 0`` the
    decaying part is as large as the growing one, so the product has either sign. The ``u0_k`` above
    predict when gradient descent learns each mode to better than 1% (tests/test_theory_dln.py).

    Args:
      a: ``W1 V`` at ``t = 0``, ``(..., h, K)``, columns in order of decreasing ``s``.
      b: ``W2^T U`` at ``t = 0``, ``(..., h, K)``.

    Returns:
      ``u0``, ``(..., K)``; zero for a mode with no direction left (``k > h``).

    >>> effective_u0_two_layer([[1.0, 1.0], [0.0, 1.0]], np.zeros((2, 2))).tolist()  # |p_2|^2/4 = 0.5, projected 0.25
    [0.25, 0.25]
    """
    p = np.asarray(a, dtype=np.float64) + np.asarray(b, dtype=np.float64)  # (..., h, K)
    if p.ndim < 2:
        raise ValueError("a, b: need (..., h, K) arrays")
    h, k = p.shape[-2:]
    r = np.linalg.qr(p[..., :, : min(h, k)], mode="r")  # (..., min(h, K), min(h, K))
    u0 = np.zeros(p.shape[:-2] + (k,))
    u0[..., : min(h, k)] = np.diagonal(r, axis1=-2, axis2=-1) ** 2 / 4.0
    return u0


def typical_u0_two_layer(sigma, hidden: int, modes: int):
    """Mean of :func:`effective_u0_two_layer` when every weight is ``N(0, sigma^2)``: ``sigma^2 (h - k) / 2``.

    With orthonormal ``U``, ``V`` the columns of ``W1 V`` and ``W2^T U`` are independent ``N(0, sigma^2 I_h)``,
    so ``p_k ~ N(0, 2 sigma^2 I_h)`` independently of ``p_1 .. p_{k-1}``, and its part orthogonal to them
    is ``2 sigma^2 chi^2_{h-k}`` in law (``k = 0, 1, ...``): the mean of ``u0_k`` is ``sigma^2 (h - k) / 2``.

    >>> typical_u0_two_layer(1e-2, 16, 3).tolist()
    [0.0008, 0.00075, 0.0007]
    """
    if int(hidden) != hidden or int(modes) != modes or not 1 <= modes <= hidden:
        raise ValueError(f"hidden, modes: need integers with 1 <= modes <= hidden, got {hidden}, {modes}")
    k = np.arange(int(modes))
    return float(sigma) ** 2 * (int(hidden) - k) / 2.0
