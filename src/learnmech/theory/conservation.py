"""How finite steps, weight decay and momentum break the conservation laws of gradient flow.

Contract: pure functions, no training, no randomness (numpy / jax arrays or floats). ``C`` is any of the
quadratic conserved quantities of :mod:`learnmech.observe.conservation` (a neuron's
``c_j = ||w_in_j||^2 + b_j^2 - ||w_out_j||^2``, a chain's ``B_l = W_l W_l^T - W_{l+1}^T W_{l+1}``, a scale-invariant
``||w||^2``) and ``D`` the same quadratic form evaluated at the gradient ``g = dL/dw`` of the loss *without* weight
decay (``||g_in_j||^2 + g_b_j^2 - ||g_out_j||^2``, ``G_l G_l^T - G_{l+1}^T G_{l+1}``, ``||g||^2``). Time is
``t = eta k`` after ``k`` steps (Kunin et al. 2021's convention), arrays of a trajectory are indexed by step
along axis 0.

**The exact discrete GD identity** (sign: ``Delta C_k = C_{k+1} - C_k``, the change made by the step from
``w_k``). GD with L2 weight decay ``lambda`` is ``w_{k+1} = (1 - eta lambda) w_k - eta g_k``. For the neuron,
expand the squares of each part:

    ||w_in'||^2 = (1 - eta lambda)^2 ||w_in||^2 - 2 eta (1 - eta lambda) <w_in, g_in> + eta^2 ||g_in||^2

(and likewise ``b``, ``w_out``). The first-order terms enter ``C`` as
``-2 eta (1 - eta lambda) (<w_in, g_in> + b g_b - <w_out, g_out>)``, which vanishes by Euler's identity of the
rescaling symmetry (:func:`learnmech.observe.conservation.neuron_euler_residual`). Hence, exactly,

    C_{k+1} = (1 - eta lambda)^2 C_k + eta^2 D_k,                                      (1)

``Delta C_k = eta^2 D_k`` without decay. The chain's matrix case is the same computation with
``W' W'^T = (1-eta lambda)^2 W W^T - eta (1-eta lambda)(G W^T + W G^T) + eta^2 G G^T`` and its identity
``G_l W_l^T = W_{l+1}^T G_{l+1}``: ``Delta B_l = eta^2 (G_l G_l^T - G_{l+1}^T G_{l+1})``; the scale case uses
``<w, g> = 0``: ``Delta ||w||^2 = eta^2 ||g||^2``.

**Kunin's modified equation with weight decay** (Kunin, Sagastuy-Brena, Ganguli, Yamins & Tanaka 2021,
arXiv:2012.04728, sec. 5, rescale symmetry): to first order in ``eta`` GD follows
``dw/dt = -g - lambda w - (eta/2) (H + lambda)(g + lambda w)``, and for a symmetric quantity
``dC/dt = -2 lambda C + eta D``, whose solution is

    C(t) = e^{-2 lambda t} C(0) + eta int_0^t e^{-2 lambda (t - s)} D(s) ds.          (2)

(2) and (1) relate as follows: unrolled, (1) is ``C_k = (1-eta lambda)^{2k} C_0 + eta^2 sum_{i<k}
(1-eta lambda)^{2(k-1-i)} D_i``, a left Riemann sum (step ``ds = eta``) of the integral in (2) with
``e^{-2 lambda t}`` replaced by ``(1 - eta lambda)^{2t/eta} = e^{-2 lambda t} (1 - eta lambda^2 t + O(eta^2))``.
So (2) is (1) up to relative errors ``O(eta lambda^2 t)`` in the decay and ``O(eta)`` in the quadrature.
:func:`decay_recursion` evaluates (1), :func:`kunin_weight_decay` evaluates (2) by the trapezoid rule on the
recorded ``D``.

**Momentum** (heavy ball, optax's convention ``v_k = g_k + lambda w_k + beta v_{k-1}``, ``v_{-1} = 0``,
``w_{k+1} = w_k - eta v_k``). Exact discrete recursion, derived like (1): with ``<.,.>_C`` the signed inner
product of ``C`` (incoming minus outgoing), ``P_k = <w_k, v_k>_C`` and ``V_k`` the quadratic form ``C`` at ``v_k``,
Euler's identity removes ``<w_k, g_k>_C`` and

    P_k = lambda C_k + beta (P_{k-1} - eta V_{k-1}),   C_{k+1} = C_k - 2 eta P_k + eta^2 V_k      (3)

(:func:`momentum_recursion`; ``beta = 0`` gives back (1)). Kunin et al.'s modified equation for momentum
(arXiv:2012.04728, sec. 5 and app. on momentum) is ``(1 - beta) dw/dt + (eta/2)(1 + beta) d^2w/dt^2 = -g - lambda w``;
the inner product with ``2w`` and the symmetry give the damped, driven oscillator

    (eta (1 + beta) / 2) C'' + (1 - beta) C' + 2 lambda C = eta (1 + beta) K(t),     K = ||dw/dt||^2_C,   (4)

which :func:`kunin_momentum` solves with its Green's function, taking ``K_k = V_k`` (``dw/dt = -v`` at leading
order) and the initial slope of the first discrete step, ``C'(0) = -2 lambda C_0 + eta V_0``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["QUADRATURES", "chain_step_change", "decay_recursion", "kunin_momentum", "kunin_weight_decay", "momentum_recursion",
           "neuron_step_change", "scale_step_change"]


def neuron_step_change(g_in, g_out, eta: float, g_b=None):
    """``Delta c_j = eta^2 (||g_in_j||^2 + g_b_j^2 - ||g_out_j||^2)``: one GD step's exact change of each neuron's ``c_j``.

    ``g_in`` ``(width, in)``, ``g_out`` ``(out, width)``, ``g_b`` ``(width,)`` or ``None``: the gradients at
    ``w_k`` (shapes of :func:`learnmech.observe.conservation.neuron_balance`); ``Delta c = c(w_{k+1}) - c(w_k)``.
    Identity (1) of the module with ``lambda = 0`` (Kunin et al. 2021, arXiv:2012.04728).

    >>> float(neuron_step_change(np.array([[1.0, 2.0]]), np.array([[1.0]]), 0.1)[0])
    0.04000000000000001
    """
    g_in, g_out = np.asarray(g_in), np.asarray(g_out)
    g_b = np.zeros(g_in.shape[0]) if g_b is None else np.asarray(g_b)
    return eta**2 * (np.sum(g_in**2, axis=1) + g_b**2 - np.sum(g_out**2, axis=0))


def chain_step_change(grads, eta: float) -> list:
    """``Delta B_l = eta^2 (G_l G_l^T - G_{l+1}^T G_{l+1})`` per adjacent pair: one GD step's exact change of the
    chain's balancedness (``G_l = dL/dW_l``, ``(out, in)`` as ``W_l``; module docstring, identity (1))."""
    gs = [np.asarray(g) for g in grads]
    return [eta**2 * (a @ a.T - b.T @ b) for a, b in zip(gs[:-1], gs[1:])]


def scale_step_change(g, eta: float):
    """``Delta ||w||^2 = eta^2 ||g||^2``: one GD step's exact growth of a scale-invariant weight's squared norm."""
    return eta**2 * np.sum(np.asarray(g) ** 2)


def _check_rates(eta: float, lam: float, beta: float = 0.0) -> None:
    if not eta > 0:
        raise ValueError(f"eta: must be positive, got {eta}")
    if not lam >= 0:
        raise ValueError(f"lam: must be >= 0, got {lam}")
    if not 0 <= beta < 1:
        raise ValueError(f"beta: must be in [0, 1), got {beta}")


def decay_recursion(c0, d, eta: float, lam: float = 0.0) -> np.ndarray:
    """Identity (1): ``C_{k+1} = (1 - eta lam)^2 C_k + eta^2 D_k`` from ``C_0 = c0``; returns ``C_0 .. C_K``.

    ``d``: ``(K, ...)`` the gradient quadratic form at ``w_0 .. w_{K-1}``; ``c0`` shaped as ``d[0]``. Exact for GD
    with L2 weight decay ``lam`` (Kunin et al. 2021, arXiv:2012.04728; derivation in the module docstring).
    """
    _check_rates(eta, lam)
    d = np.asarray(d, np.float64)
    factors = (1.0 - eta * lam) ** 2
    out = np.empty((d.shape[0] + 1,) + d.shape[1:])
    out[0] = c0
    for k in range(d.shape[0]):
        out[k + 1] = factors * out[k] + eta**2 * d[k]
    return out


QUADRATURES = ("trapezoid", "left")  # how the integral over the recorded D is evaluated


def _exp_convolution(rate: complex, f: np.ndarray, h: float, rule: str = "trapezoid") -> np.ndarray:
    """``E(t_k) = int_0^{t_k} e^{rate (t_k - s)} f(s) ds`` on the grid ``t_k = h k``; ``rule`` ``"trapezoid"``
    (``E_{k+1} = e^{rate h} E_k + (h/2)(e^{rate h} f_k + f_{k+1})``) or ``"left"``, the left Riemann sum of the
    step that ``f_k`` drives (``E_{k+1} = e^{rate h} (E_k + h f_k)``)."""
    if rule not in QUADRATURES:
        raise ValueError(f"rule: must be one of {QUADRATURES}, got {rule!r}")
    step = np.exp(rate * h)
    out = np.zeros(f.shape, dtype=np.result_type(f, step))
    for k in range(f.shape[0] - 1):
        if rule == "trapezoid":
            out[k + 1] = step * out[k] + 0.5 * h * (step * f[k] + f[k + 1])
        else:
            out[k + 1] = step * (out[k] + h * f[k])
    return out


def kunin_weight_decay(c0, d, eta: float, lam: float, rule: str = "trapezoid") -> np.ndarray:
    """Kunin's formula (2): ``C(t_k) = e^{-2 lam t_k} C(0) + eta int_0^{t_k} e^{-2 lam (t_k - s)} D(s) ds``, ``t_k = eta k``.

    ``d``: ``(K, ...)`` the gradient quadratic form recorded at ``t_0 .. t_{K-1}``; returns ``C(t_0) .. C(t_{K-1})``
    with the integral by ``rule`` on that grid (Kunin et al. 2021, arXiv:2012.04728, sec. 5): ``"trapezoid"``, or
    ``"left"`` (``D_k`` held over the step it drives, the sum the exact recursion unrolls to). Against the exact
    discrete recursion (:func:`decay_recursion`) ``"left"`` differs only by ``e^{-2 lam eta}`` against
    ``(1 - eta lam)^2`` per step, ``O(eta lam^2 t)`` relative; ``"trapezoid"`` adds an ``O(eta)`` quadrature error
    where ``D`` changes within a few steps (early training).

    >>> kunin_weight_decay(1.0, np.zeros(3), 0.5, 1.0).round(4).tolist()
    [1.0, 0.3679, 0.1353]
    """
    _check_rates(eta, lam)
    d = np.asarray(d, np.float64)
    t = eta * np.arange(d.shape[0]).reshape((-1,) + (1,) * (d.ndim - 1))
    return np.exp(-2.0 * lam * t) * np.asarray(c0) + eta * _exp_convolution(-2.0 * lam, d, eta, rule)


def momentum_recursion(c0, v, eta: float, beta: float, lam: float = 0.0) -> np.ndarray:
    """Recursion (3), exact for heavy ball (optax convention) with L2 weight decay; returns ``C_0 .. C_K``.

    ``P_k = lam C_k + beta (P_{k-1} - eta V_{k-1})``, ``C_{k+1} = C_k - 2 eta P_k + eta^2 V_k``, with
    ``P_{-1} = V_{-1} = 0``; ``v``: ``(K, ...)`` the quadratic form ``C`` evaluated at the velocities
    ``v_0 .. v_{K-1}`` (module docstring). ``beta = 0`` is :func:`decay_recursion`.
    """
    _check_rates(eta, lam, beta)
    v = np.asarray(v, np.float64)
    out = np.empty((v.shape[0] + 1,) + v.shape[1:])
    out[0] = c0
    p, v_prev = np.zeros(v.shape[1:]), np.zeros(v.shape[1:])
    for k in range(v.shape[0]):
        p = lam * out[k] + beta * (p - eta * v_prev)
        out[k + 1] = out[k] - 2.0 * eta * p + eta**2 * v[k]
        v_prev = v[k]
    return out


def kunin_momentum(c0, v, eta: float, beta: float, lam: float = 0.0) -> np.ndarray:
    """Kunin's modified equation (4) for heavy ball, solved on the grid ``t_k = eta k``; returns ``C(t_0 .. t_{K-1})``.

    ``a C'' + b C' + c C = f(t)`` with ``a = eta (1 + beta)/2``, ``b = 1 - beta``, ``c = 2 lam``,
    ``f = eta (1 + beta) K`` and ``K_k = v[k]`` (the velocity quadratic form, ``(K, ...)``). With the roots
    ``r_+- = (-b +- sqrt(b^2 - 4ac)) / (2a)`` (complex when underdamped), the Green's function is
    ``G(tau) = (e^{r_+ tau} - e^{r_- tau}) / (a (r_+ - r_-))`` and
    ``C(t) = A_+ e^{r_+ t} + A_- e^{r_- t} + int_0^t G(t - s) f(s) ds`` with ``C(0) = c0`` and
    ``C'(0) = -2 lam c0 + eta v[0]`` (the first discrete step); the integral by the trapezoid rule. Kunin et al.
    2021, arXiv:2012.04728 (modified equation for momentum); this is their equation multiplied by ``2w`` (module
    docstring), written as one ODE in ``C`` driven by the measured ``K``.
    """
    _check_rates(eta, lam, beta)
    v = np.asarray(v, np.float64)
    a, b, c = eta * (1 + beta) / 2, 1.0 - beta, 2.0 * lam
    root = np.sqrt(complex(b * b - 4 * a * c))
    r_plus, r_minus = (-b + root) / (2 * a), (-b - root) / (2 * a)
    c0 = np.asarray(c0, np.float64) * np.ones(v.shape[1:])
    slope0 = -2.0 * lam * c0 + eta * v[0]
    a_plus = (slope0 - r_minus * c0) / (r_plus - r_minus)  # C(0) = A+ + A-, C'(0) = r+ A+ + r- A-
    a_minus = c0 - a_plus
    t = eta * np.arange(v.shape[0]).reshape((-1,) + (1,) * (v.ndim - 1))
    f = eta * (1 + beta) * v
    forced = (_exp_convolution(r_plus, f, eta) - _exp_convolution(r_minus, f, eta)) / (a * (r_plus - r_minus))
    return np.real(a_plus * np.exp(r_plus * t) + a_minus * np.exp(r_minus * t) + forced)
