"""Finite-width fluctuations of the NNGP and NTK: the constant ``c`` of the ``c / sqrt(n)`` error.

Network and kernels (the conventions of :mod:`learnmech.theory.kernels`, NTK parameterisation):
``L = depth`` hidden layers of width ``n``, weights ``W^l`` of layer ``l = 0..L`` with entries of
variance ``sigma_w,l^2 / fan_in`` (``W^0`` reads the input, ``W^L`` is the readout), biases of
variance ``sigma_b,l^2``, activation ``phi``. Hidden layer ``m = 1..L`` has pre-activations
``h^m_i(x)``, ``i = 1..n``. The analytic kernels are::

    K^0       = sigma_w,0^2 x.x'/d + sigma_b,0^2
    K^m       = sigma_w,m^2 E[phi(u) phi(u')] + sigma_b,m^2        u ~ N(0, K^{m-1})
    Kdot^m    = sigma_w,m^2 E[phi'(u) phi'(u')]
    Theta^m   = K^m + Kdot^m Theta^{m-1},     Theta^0 = K^0        (elementwise)

``K^L`` is the NNGP and ``Theta^L`` the NTK of the scalar output.

**What fluctuates.** ``K^0`` is the covariance of the first pre-activations given the inputs,
exact at any width (it is not an average over units). Given layer ``m - 1`` the ``n`` units of
layer ``m`` are i.i.d. with ``h^m_i ~ N(0, K_hat^{m-1})``, and the network's kernel of layer ``m``
is their average::

    K_hat^m(x_a, x_b) = (sigma_w,m^2 / n) sum_i phi(h^m_i(x_a)) phi(h^m_i(x_b)) + sigma_b,m^2.

``K_hat^L`` is the readout-integrated kernel of one network, ``E_readout[f(x) f(x')] =
sigma_w,L^2 z(x).z(x')/n`` with ``z`` the last hidden post-activations: the "empirical NNGP".

**Fluctuation recursion** (first order in ``1/n``; Yaida 2020, arXiv:1910.00019; Roberts, Yaida &
Hanin 2022, "The Principles of Deep Learning Theory", ch. 4). Write ``K_hat^m = K^m + dK^m``.
Conditioning on layer ``m - 1``, ``dK^m = F_m(K_hat^{m-1}) - K^m + (fresh noise of layer m)``, with
``F_m(K) = sigma_w,m^2 E_{u ~ N(0, K)}[phi(u) phi(u)^T] + sigma_b,m^2`` the dual-activation map,
so to first order ``dK^m = J^m dK^{m-1} + xi^m``, ``dK^0 = 0``, with ``J^m = dF_m/dK`` at
``K^{m-1}`` and ``xi^m`` of covariance ``V^m / n``, independent across layers,
``V^m_{ab,cd} = sigma_w,m^4 Cov[phi(u_a) phi(u_b), phi(u_c) phi(u_d)]``, ``u ~ N(0, K^{m-1})``.
Hence ``C^m = Cov(dK^m) = V^m / n + J^m C^{m-1} (J^m)^T``, ``C^0 = 0``: with one hidden layer
``C^1 = V^1 / n`` (no Jacobian term); each further layer adds its own noise and carries the
earlier noise through ``J``. Neglected terms (the ``O(1/n)`` mean shift, third cumulants, the
change of ``V`` with ``dK``) change ``E||dK||^2`` at order ``n^{-2}``.

**Locality.** ``F_m(K)_ab`` depends only on ``(K_aa, K_bb, K_ab)``, so ``dK^m_ab`` depends only on
the entries ``(aa, bb, ab)`` of earlier layers, and the noise of those entries involves only the
two Gaussians ``(u_a, u_b)``. The variance of every entry of ``dK^L`` is therefore a sum over
layers of bivariate expectations, one ``3 x 3`` Jacobian and one ``4 x 4`` noise covariance per
input pair: ``O(n_inputs^2)`` work, not the ``n_inputs^4`` of the full ``C``. The Jacobian row of
``K^m_ab`` is ``sigma_w,m^2 dV(q_a, q_b, c)/d(q_a, q_b, c)`` by autodiff through the dual
activation (:mod:`learnmech.theory.dual`). Where ``|rho_ab| = 1`` (the diagonal, a duplicated
input, an antiparallel pair of an odd network) the two units are locked, ``u_b = s sqrt(q_b/q_a)
u_a``, every realisation keeps the pair on the boundary of the PSD cone, and the row is the
derivative along it: of ``F(q_a, q_b) = sigma_w,m^2 V(q_a, q_b, s sqrt(q_a q_b))``, with no
``c`` term (the partial in ``c`` alone leaves the cone and is infinite for ReLU's ``V'``).

**NTK.** Back-propagated signals ``g^m_i(x) = df/dh^m_i``, ``G^m_ab = sum_i g^m_i(x_a) g^m_i(x_b)``,
``G^{L+1} = 1``. The tangent kernel of the weights and biases of layer ``l`` is
``K_hat^l G^{l+1}`` (``K_hat^0 = K^0``), so ``Theta_hat = sum_{l=0..L} K_hat^l G^{l+1}``, and
``G^m_ab = (sigma_w,m^2 / n) sum_i phi'(h^m_i(x_a)) phi'(h^m_i(x_b)) omega_i(x_a) omega_i(x_b)`` with
``omega_i = sum_k W^m_ki g^{m+1}_k``. The part of ``W^m`` seen by ``h^{m+1}`` is a projection on
the span of the ``n_inputs`` feature vectors; the rest is independent of everything upstream
and downstream, so ``omega_i ~ N(0, G^{m+1})`` i.i.d. over ``i`` up to terms that move ``G`` by
``O(1/n)``. Then ``G^m = Kdot_hat^m G^{m+1} + N^m`` with ``N^m`` a fresh noise,
``Var(N^m_ab) = (sigma_w,m^4 / n) E[(phi'_a phi'_b)^2] (G^{m+1}_aa G^{m+1}_bb + (G^{m+1}_ab)^2)``,
uncorrelated with the forward noise. Linearising ``Theta_hat`` gives the forward recursion::

    dTheta^m = dK^m + Theta^{m-1} (dKdot^m + N^m) + Kdot^m dTheta^{m-1},   dTheta^0 = 0,
    dKdot^m  = Jdot^m dK^{m-1} + xidot^m

with ``Jdot^m`` the autodiff Jacobian of ``sigma_w,m^2 V'`` and ``xidot^m`` the noise of
``(sigma_w,m^2 / n) sum_i phi'_a phi'_b``, jointly Gaussian with ``xi^m`` (same units). With one
hidden layer this is exact at first order: the per-unit summand is
``sigma_w^2 (phi_a phi_b + w_i^2 phi'_a phi'_b K^0_ab)``, ``w_i`` the readout weight.
(The NTK prediction beyond one hidden layer rests on the projection argument above; the tests
check it against networks.)

**The constant.** The Frobenius error is ``E||dK^L||_F^2 = tr C^L = sum_{a,b} Var(dK^L_ab)``, so the
predicted RMS over initialisations of ``||K_hat^L - K^L||_F / ||K^L||_F`` is
``sqrt(tr C^L) / ||K^L||_F = c / sqrt(n)``, and ``c^2 = sum_m c_m^2``, hidden layer ``m``'s share
``c_m^2`` (``sum_m c_m^2 / n_m`` for unequal widths). This is the RMS, not the mean: a mean of
``||dK||_F`` over seeds is smaller by a factor ``E||X|| / sqrt(E||X||^2) <= 1`` (about 0.8 when a
single direction dominates ``C``). Same for the NTK with ``Theta``.

**Four-point expectations** are bivariate: each is ``E[g(u_a) h(u_b)]`` for products ``g, h`` of
``phi`` and ``phi'`` (``phi_a^2 . phi_a phi_b = phi_a^3 . phi_b``, ...), so they are integrated by the
polar quadrature of :func:`learnmech.theory.quadrature.cross_expectations`, deterministically (no
sampling), at the quadrature's default rule: against its finer rule
(:data:`learnmech.theory.quadrature.FINE`) ``c`` moves by 2e-9 (ReLU's NTK, whose derivative jumps at 0)
and below 1e-14 (ReLU's NNGP, tanh, erf) on 16 inputs at depth 2; the Monte Carlo this replaces
(1e6 draws) had a standard error of 1e-3 and agreed within it (3.2954 against 3.2969 +- 0.003).

Example: one hidden ReLU layer (``sigma_w^2 = 2``) on three orthogonal inputs of squared norm
``d``. Closed form: ``K^0 = 2 I``, ``K^1 = [[2, 2/pi, ..]]``, and the unit variances
``Var(2 relu(u)^2) = 20``, ``Var(2 relu(u_a) relu(u_b)) = 4 (1 - 1/pi^2)``, so
``c^2 = (3 * 20 + 6 * 4 (1 - 1/pi^2)) / (12 + 24/pi^2)`` and ``c = 2.37740``::

    >>> import numpy as np
    >>> c = kernel_fluctuations(np.sqrt(3.0) * np.eye(3), depth=1, activation="relu", weight_var=2.0)
    >>> round(c.nngp, 4)
    2.3774
"""

from __future__ import annotations

import math
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.theory.dual import Activation, named_activation
from learnmech.theory.kernels import layer_coefficients
from learnmech.theory.quadrature import cross_expectations, Rule, RULE

__all__ = ["FluctuationConstants", "MeanKernels", "kernel_fluctuations", "mean_kernels"]

_LOCKED = 1e-9  # |rho| >= 1 - _LOCKED: the pair moves on the PSD boundary (diagonal, duplicated inputs)


class FluctuationConstants(NamedTuple):
    """``c`` for the NNGP and the NTK: RMS relative Frobenius error ``= c / sqrt(width)``.

    ``*_layers`` are the shares ``c_m^2`` of hidden layers ``m = 1..L`` (``c^2 = sum_m c_m^2``; with
    widths ``n_m`` the RMS relative error is ``sqrt(sum_m c_m^2 / n_m)``); deterministic (quadratures).
    """

    nngp: float
    ntk: float
    nngp_layers: np.ndarray
    ntk_layers: np.ndarray


class MeanKernels(NamedTuple):
    """Infinite-width kernels per layer: ``nngp[m] = K^m`` and ``ntk[m] = Theta^m`` for ``m = 0..L``,
    ``dot[m] = Kdot^m`` for ``m = 1..L`` (``dot[0]`` is unused, zeros); each ``(n, n)`` float64."""

    nngp: list
    ntk: list
    dot: list


def _activation(activation: str | Activation) -> Activation:
    return activation if isinstance(activation, Activation) else named_activation(activation)


def _dual_full(fn, k):
    """``(E[phi phi], E[phi' phi'])`` on a full ``(n, n)`` covariance ``k``, elementwise."""
    q = jnp.diag(k)
    return fn(q[:, None], q[None, :], k)


def mean_kernels(x, *, depth: int, activation="relu", weight_var=1.0, bias_var=0.0) -> MeanKernels:
    """``K^m``, ``Kdot^m`` and ``Theta^m`` of every layer (module docstring), float64.

    The last layer's ``K^L`` and ``Theta^L`` are :func:`learnmech.theory.kernels.nngp_ntk`'s NNGP
    and NTK (NTK parameterisation, bias tangent ``sigma_b^2``).
    """
    x = _inputs(x)
    co = layer_coefficients(_depth(depth), x.shape[1], weight_var, bias_var, "ntk")
    fn = _activation(activation).dual.fn
    with jax.enable_x64(True):
        k = co.weight_var[0] * (x @ x.T) / x.shape[1] + co.bias_var[0]
        ks, thetas, dots = [k], [k], [np.zeros_like(k)]
        for m in range(1, depth + 1):
            v, dv = (np.asarray(a, np.float64) for a in _dual_full(fn, jnp.asarray(ks[-1])))
            ks.append(co.weight_var[m] * v + co.bias_var[m])
            dots.append(co.weight_var[m] * dv)
            thetas.append(ks[-1] + dots[-1] * thetas[-1])
    return MeanKernels(ks, thetas, dots)


def _inputs(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1 or not np.all(np.isfinite(x)):
        raise ValueError(f"x: must be a finite, non-empty (n_inputs, d) array, got shape {x.shape}")
    return x


def _depth(depth) -> int:
    if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth: must be an integer >= 1 (hidden layers; with none the kernel is exact), "
                         f"got {depth!r}")
    return int(depth)


@partial(jax.jit, static_argnums=(0,))
def _pair_jacobians(fn, qa, qb, c, sign, locked):
    """Rows ``dV/d(q_a, q_b, c)`` and ``dV'/d(q_a, q_b, c)`` ``(2, P, 3)`` of the dual map at each pair,
    by reverse-mode autodiff. Locked pairs (``|rho| = 1``): derivative along the PSD boundary,
    ``c = sign sqrt(q_a q_b)``, so the ``c`` entry is 0 (module docstring)."""

    def rows(out):
        free = jax.vmap(jax.grad(lambda a, b, cc: fn(a, b, cc)[out], argnums=(0, 1, 2)))(qa, qb, c)
        edge = jax.vmap(jax.grad(lambda a, b, s: fn(a, b, s * jnp.sqrt(a * b))[out], argnums=(0, 1)))(qa, qb, sign)
        return jnp.stack([jnp.where(locked, edge[0], free[0]), jnp.where(locked, edge[1], free[1]),
                          jnp.where(locked, 0.0, free[2])], axis=-1)

    return jnp.stack([rows(0), rows(1)])


def _unit_features(phi):
    """One unit's features as scalar elementwise functions of its pre-activation:
    ``p = phi``, ``d = phi'``, ``p2 = phi^2``, ``p3 = phi^3``, ``p2d = phi^2 phi'``, ``pd = phi phi'``, ``d2 = phi'^2``."""
    d = jnp.vectorize(jax.grad(phi))
    return {"p": phi, "d": d, "p2": lambda u: phi(u) ** 2, "p3": lambda u: phi(u) ** 3,
            "p2d": lambda u: phi(u) ** 2 * d(u), "pd": lambda u: phi(u) * d(u), "d2": lambda u: d(u) ** 2}


# The pairwise moments E[g(u_a) h(u_b)] the noise covariance needs (names of _unit_features); on the
# pairs (a, a) of the diagonal, ("p", "p") and ("p2", "p2") are E[phi_a^2] and E[phi_a^4].
_PAIR_MOMENTS = (("p", "p"), ("d", "d"), ("p2", "p2"), ("p3", "p"), ("p", "p3"), ("p2d", "d"), ("d", "p2d"),
                 ("pd", "pd"), ("d2", "d2"))


@lru_cache(maxsize=32)
def _moment_program(phi, names):
    """A compiled ``(q1, q2, c, rule) -> (E[g(u) h(v)] for (g, h) in names)``, one per ``phi`` and list."""
    f = _unit_features(phi)
    fns = tuple((f[g], f[h]) for g, h in names)
    return jax.jit(lambda q1, q2, c, rule: cross_expectations(fns, q1, q2, c, rule), static_argnums=(3,))


def _noise_covariances(act: Activation, k_prev, pairs, rule: Rule):
    """The covariance ``(P, 4, 4)`` of one unit's ``(phi_a^2, phi_b^2, phi_a phi_b, phi'_a phi'_b)`` for
    ``u ~ N(0, k_prev)``, and ``E[(phi'_a phi'_b)^2]`` ``(P,)``, by the polar quadrature ``rule``.
    ``pairs`` holds every diagonal pair ``(a, a)`` (the upper triangle)."""
    a, b = pairs
    q = np.diag(k_prev)
    with jax.enable_x64(True):
        pm = _moment_program(act.fn, _PAIR_MOMENTS)(jnp.asarray(q[a]), jnp.asarray(q[b]), jnp.asarray(k_prev[a, b]),
                                                     rule)
    m = dict(zip(_PAIR_MOMENTS, (np.asarray(v, np.float64) for v in pm)))
    on_diagonal = np.flatnonzero(a == b)[np.argsort(a[a == b])]  # position of the pair (i, i), by i
    sq, p4 = m["p", "p"][on_diagonal], m["p2", "p2"][on_diagonal]  # E[phi_a^2], E[phi_a^4] per input
    mean = np.stack([sq[a], sq[b], m["p", "p"], m["d", "d"]], axis=-1)  # (P, 4)
    second = np.empty(mean.shape + (4,))
    second[:, 0, 0], second[:, 1, 1] = p4[a], p4[b]
    second[:, 0, 1] = second[:, 1, 0] = m["p2", "p2"]
    second[:, 0, 2] = second[:, 2, 0] = m["p3", "p"]  # phi_a^2 . phi_a phi_b
    second[:, 1, 2] = second[:, 2, 1] = m["p", "p3"]
    second[:, 0, 3] = second[:, 3, 0] = m["p2d", "d"]  # phi_a^2 . phi'_a phi'_b
    second[:, 1, 3] = second[:, 3, 1] = m["d", "p2d"]
    second[:, 2, 2] = m["p2", "p2"]
    second[:, 2, 3] = second[:, 3, 2] = m["pd", "pd"]
    second[:, 3, 3] = m["d2", "d2"]
    return second - mean[:, :, None] * mean[:, None, :], m["d2", "d2"]


class _Layer(NamedTuple):
    """One hidden layer's pairwise pieces, ``P`` pairs: Jacobians and fresh-noise covariances."""

    jac: np.ndarray  # (P, 3, 3): d(K_aa, K_bb, K_ab)^m / d(K_aa, K_bb, K_ab)^{m-1}
    jac_dot: np.ndarray  # (P, 3): dKdot^m_ab / d(K_aa, K_bb, K_ab)^{m-1}
    noise: np.ndarray  # (P, 5, 5): covariance of (Y_aa, Y_bb, Y_ab, Ydot_ab, N_ab) per unit


def _layer(act: Activation, k_prev, g_next, sw2: float, pairs, rule: Rule) -> _Layer:
    a, b = pairs
    q = np.diag(k_prev)
    qa, qb, c = q[a], q[b], k_prev[a, b]
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.clip(np.where(qa * qb > 0, c / np.sqrt(qa * qb), 0.0), -1.0, 1.0)
    locked = np.abs(rho) >= 1.0 - _LOCKED
    sign = np.where(rho < 0, -1.0, 1.0)
    row, row_dot = sw2 * np.asarray(_pair_jacobians(act.dual.fn, *(jnp.asarray(v) for v in (qa, qb, c, sign, locked))))
    # A unit of zero variance (a zero input with no bias, phi(0) = 0) keeps its entries at exactly 0:
    # they never fluctuate, and the derivative there (infinite for ReLU) multiplies nothing.
    silent = (qa == 0) | (qb == 0)
    row, row_dot = np.where(silent[None, :, None], 0.0, np.stack([row, row_dot]))
    diag = row[a == b].sum(axis=1)  # (n,): dK_aa / dK_aa along the diagonal (pairs (a, a) in order of a)
    jac = np.zeros((a.size, 3, 3))
    jac[:, 0, 0], jac[:, 1, 1], jac[:, 2] = diag[a], diag[b], row
    cov, dsq = _noise_covariances(act, k_prev, pairs, rule)
    noise = np.zeros(cov.shape[:1] + (5, 5))
    noise[..., :4, :4] = sw2**2 * cov
    # omega ~ N(0, G^{m+1}): Var(omega_a omega_b) = G_aa G_bb + G_ab^2, independent of the units
    noise[..., 4, 4] = sw2**2 * dsq * (np.diag(g_next)[a] * np.diag(g_next)[b] + g_next[a, b] ** 2)
    return _Layer(jac, row_dot, noise)


def _coefficients(layers: list[_Layer], means: MeanKernels, pairs):
    """Coefficients of every layer's fresh noise on ``dK^L_ab`` and ``dTheta^L_ab``: two ``(P, L, 5)``.

    Forward linear propagation of the state ``(dK_aa, dK_bb, dK_ab, dTheta_ab)`` (module docstring).
    """
    a, b = pairs
    depth = len(layers)
    state = np.zeros((a.size, 4, depth, 5))  # state component x (layer, noise component)
    for m, layer in enumerate(layers, start=1):
        k_loc = state[:, :3]  # (P, 3, L, 5) coefficients of dK^{m-1}
        new = np.einsum("pij,pjlk->pilk", layer.jac, k_loc)
        new[:, :3, m - 1, :3] += np.eye(3)  # + xi^m
        kdot = np.einsum("pj,pjlk->plk", layer.jac_dot, k_loc)
        kdot[:, m - 1, 3] += 1.0  # + xidot^m
        kdot[:, m - 1, 4] += 1.0  # + N^m (enters with the same factor Theta^{m-1})
        theta = (new[:, 2] + means.ntk[m - 1][a, b][:, None, None] * kdot
                 + means.dot[m][a, b][:, None, None] * state[:, 3])
        state = np.concatenate([new, theta[:, None]], axis=1)
    return state[:, 2], state[:, 3]


def _shares(coef, layers, weights, norm):
    """Layer shares ``c_m^2`` ``(L,)`` of ``sum_ab Var / ||K||_F^2`` at width 1."""
    return np.array([np.einsum("p,pi,pij,pj->", weights, coef[:, m], lay.noise, coef[:, m])
                     for m, lay in enumerate(layers)]) / norm**2


def _constants(act, means, x, depth, weight_var, bias_var, rule: Rule):
    """``(c_nngp, c_ntk, shares_nngp, shares_ntk)`` with the four-point expectations at ``rule``."""
    co = layer_coefficients(depth, x.shape[1], weight_var, bias_var, "ntk")
    g = [None] * (depth + 2)  # g[m] = G^m = prod_{j >= m} Kdot^j, G^{L+1} = 1
    g[depth + 1] = np.ones_like(means.nngp[0])
    for m in range(depth, 0, -1):
        g[m] = means.dot[m] * g[m + 1]
    pairs = np.triu_indices(x.shape[0])
    weights = np.where(pairs[0] == pairs[1], 1.0, 2.0)  # each off-diagonal entry appears twice in ||.||_F
    with jax.enable_x64(True):
        layers = [_layer(act, means.nngp[m - 1], g[m + 1], co.weight_var[m], pairs, rule) for m in range(1, depth + 1)]
    coef_k, coef_t = _coefficients(layers, means, pairs)
    shares_k = _shares(coef_k, layers, weights, np.linalg.norm(means.nngp[-1]))
    shares_t = _shares(coef_t, layers, weights, np.linalg.norm(means.ntk[-1]))
    return math.sqrt(max(shares_k.sum(), 0.0)), math.sqrt(max(shares_t.sum(), 0.0)), shares_k, shares_t


def kernel_fluctuations(x, *, depth: int, activation="relu", weight_var=1.0, bias_var=0.0) -> FluctuationConstants:
    """Predicted constants ``c`` with RMS relative error ``||K_hat - K||_F / ||K||_F = c / sqrt(n)``.

    Equations in the module docstring (first order in ``1/n``: Yaida 2020, arXiv:1910.00019;
    Roberts, Yaida & Hanin 2022, ch. 4). Deterministic: the four-point expectations are quadratures.

    Args:
      x: the inputs ``(n_inputs, d)``; the kernels are ``n_inputs x n_inputs`` Gram matrices.
      depth: hidden layers ``L >= 1`` (all of the width ``n``).
      activation: a name of :func:`learnmech.theory.dual.named_activation`, or an ``Activation``.
      weight_var, bias_var: ``sigma_w^2``, ``sigma_b^2``: a number or ``depth + 1`` numbers (the last
        one the readout's).
    Returns:
      :class:`FluctuationConstants`.
    """
    depth = _depth(depth)
    x = _inputs(x)
    act = _activation(activation)
    means = mean_kernels(x, depth=depth, activation=act, weight_var=weight_var, bias_var=bias_var)
    return FluctuationConstants(*_constants(act, means, x, depth, weight_var, bias_var, RULE))
