"""Infinite-width kernels of fully connected networks: the NNGP and the NTK, any depth.

A network with ``depth`` hidden layers maps ``x in R^d`` through dense layers ``l = 0..depth``
(``depth + 1`` weight matrices, the last one the readout) with activation ``phi`` after every
dense layer but the last. Weight variance ``sigma_w,l^2 / fan_in`` and bias variance
``sigma_b,l^2``. At infinite width the pre-activations are a Gaussian process with covariance
(Neal 1996; Lee et al. 2018, arXiv:1711.00165; Matthews et al. 2018, arXiv:1804.11271)::

    K^0(x, x')     = sigma_w,0^2 x.x'/d + sigma_b,0^2
    K^l(x, x')     = sigma_w,l^2 V(K^{l-1}) + sigma_b,l^2                      l = 1..depth

and gradient descent follows the neural tangent kernel (Jacot, Gabriel & Hongler 2018,
arXiv:1806.07572; Arora et al. 2019, arXiv:1904.11955)::

    Theta^0        = omega_0 x.x'/d + beta_0
    Theta^l        = omega_l V(K^{l-1}) + beta_l + sigma_w,l^2 V'(K^{l-1}) Theta^{l-1}

where ``V``/``V'`` are the dual activations of :mod:`learnmech.theory.dual` evaluated at the
``2 x 2`` covariance ``[[K^{l-1}(x,x), K^{l-1}(x,x')], [., K^{l-1}(x',x')]]``. The weight and bias
terms ``omega_l, beta_l`` depend on the parameterisation:

- ``"ntk"``: ``W = sigma_w / sqrt(fan_in) * omega`` with ``omega ~ N(0, 1)`` trained, ``b = sigma_b beta``:
  ``omega_l = sigma_w,l^2`` and ``beta_l = sigma_b,l^2``. Finite at infinite width.
- ``"standard"``: ``W ~ N(0, sigma_w^2/fan_in)`` and ``b`` trained directly with one learning rate:
  each weight entry's gradient carries no ``1/sqrt(fan_in)``, so ``omega_l = fan_in_l`` (``d`` for
  the first layer, then the hidden ``widths``) and ``beta_l = 1``. This NTK grows with width
  (Sohl-Dickstein et al. 2020, arXiv:2001.07301), which is why ``widths`` are required.

``bias_tangent`` overrides ``beta_l`` (e.g. ``1`` for biases that start at zero but are trained
with multiplier 1, as in :class:`learnmech.nets.MLP`) and ``weight_tangent`` overrides ``omega_l``
(a weight ``c w`` with ``w`` trained at learning-rate multiplier ``m`` has ``omega_l = fan_in c^2 m``;
:meth:`learnmech.nets.MLP.kernels` fills both from the model's parameterisation). The kernels are
per output unit.

Computation: the recursion is elementwise once the diagonals ``K^l(x, x)`` are known, so the
Gram matrix is computed in tiles (``x1`` rows by ``x2`` columns) of at most ``block_size`` rows
and columns, each tile one compiled XLA fusion from the ``x1 x2^T`` product to both kernels.
For ``x2 = None`` only tiles on and above the diagonal are computed and mirrored. Memory beyond
the two outputs is a few tiles, so ``n = 10,000`` fits in float32 (800 MB of output) or float64.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.theory.dual import DualActivation, get_activation

__all__ = ["Kernels", "nngp_ntk", "layer_coefficients"]

_DEFAULT_BLOCK = 512  # measured at n = 5000: 512-tiles 2.5, 1024-tiles 3-4, one 5000-tile 7-11 matmuls (cache)


class Kernels(NamedTuple):
    """NNGP and NTK Gram matrices ``(n1, n2)`` (or their diagonals ``(n,)``), numpy arrays."""

    nngp: np.ndarray
    ntk: np.ndarray


class Coefficients(NamedTuple):
    weight_var: tuple[float, ...]  # sigma_w,l^2, l = 0..depth
    bias_var: tuple[float, ...]  # sigma_b,l^2
    omega: tuple[float, ...]  # NTK weight-term coefficient
    beta: tuple[float, ...]  # NTK bias-term coefficient


def _per_layer(name: str, value, depth: int) -> tuple[float, ...]:
    values = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if values.ndim != 1 or values.size not in (1, depth + 1):
        raise ValueError(f"{name}: must be a number or a sequence of depth + 1 = {depth + 1} numbers, got {value!r}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"{name}: must be finite and >= 0, got {value!r}")
    return tuple(float(v) for v in np.broadcast_to(values, (depth + 1,)))


def layer_coefficients(
    depth: int,
    d: int,
    weight_var=1.0,
    bias_var=0.0,
    parameterization: str = "ntk",
    widths: Sequence[int] | None = None,
    bias_tangent=None,
    weight_tangent=None,
) -> Coefficients:
    """The per-layer ``(sigma_w^2, sigma_b^2, omega, beta)`` of the module docstring, validated."""
    if not isinstance(depth, (int, np.integer)) or depth < 0:
        raise ValueError(f"depth: must be an integer >= 0 (hidden layers), got {depth!r}")
    wv = _per_layer("weight_var", weight_var, depth)
    bv = _per_layer("bias_var", bias_var, depth)
    if parameterization == "ntk":
        omega = wv
        beta = bv if bias_tangent is None else _per_layer("bias_tangent", bias_tangent, depth)
    elif parameterization == "standard":
        if widths is None or len(widths) != depth or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths: the standard parameterisation needs the {depth} hidden widths, got {widths!r}")
        omega = (float(d), *(float(w) for w in widths))
        default = tuple(1.0 if b > 0 else 0.0 for b in bv)
        beta = default if bias_tangent is None else _per_layer("bias_tangent", bias_tangent, depth)
    else:
        raise ValueError(f"parameterization: must be 'ntk' or 'standard', got {parameterization!r}")
    if weight_tangent is not None:
        omega = _per_layer("weight_tangent", weight_tangent, depth)
    return Coefficients(wv, bv, omega, beta)


def _recursion(dual: DualActivation, co, dot, d, q1: Sequence, q2: Sequence):
    """Both kernels from the input dot products ``dot``; ``q1[l]``/``q2[l]`` are ``K^l`` diagonals.

    ``co`` is ``(weight_var, bias_var, omega, beta)`` as arrays of ``depth + 1`` traced values, so
    one compilation serves every variance setting.
    """
    wv, bv, omega, beta = co
    k = wv[0] * dot / d + bv[0]
    theta = omega[0] * dot / d + beta[0]
    for layer in range(1, len(q1) + 1):
        v, dv = dual(q1[layer - 1], q2[layer - 1], k)
        theta = omega[layer] * v + beta[layer] + wv[layer] * dv * theta
        k = wv[layer] * v + bv[layer]
    return k, theta


@partial(jax.jit, static_argnums=(0, 1))
def _diagonal(dual: DualActivation, depth: int, co, d, x):
    """Per-layer variances ``K^l(x, x)`` (a list, ``l = 0..depth``) and both kernels' diagonals."""
    wv, bv, omega, beta = co
    sq = jnp.sum(x * x, axis=-1)
    qs = [wv[0] * sq / d + bv[0]]
    theta = omega[0] * sq / d + beta[0]
    for layer in range(1, depth + 1):
        q = qs[-1]
        v, dv = dual(q, q, q)
        theta = omega[layer] * v + beta[layer] + wv[layer] * dv * theta
        qs.append(wv[layer] * v + bv[layer])
    return qs, theta


@partial(jax.jit, static_argnums=(0,))
def _tile(dual: DualActivation, co, d, x1, x2, q1, q2):
    q1 = [q[:, None] for q in q1]
    q2 = [q[None, :] for q in q2]
    return _recursion(dual, co, x1 @ x2.T, d, q1, q2)


def _pad_rows(a, size: int):
    return a if a.shape[0] == size else jnp.pad(a, ((0, size - a.shape[0]),) + ((0, 0),) * (a.ndim - 1))


def nngp_ntk(
    x1,
    x2=None,
    *,
    depth: int = 2,
    activation: str | DualActivation = "relu",
    weight_var=1.0,
    bias_var=0.0,
    parameterization: str = "ntk",
    widths: Sequence[int] | None = None,
    bias_tangent=None,
    weight_tangent=None,
    diagonal: bool = False,
    block_size: int | None = None,
    dtype=None,
) -> Kernels:
    """NNGP and NTK Gram matrices of a fully connected network (equations in the module docstring).

    Args:
      x1: inputs ``(n1, d)``. x2: inputs ``(n2, d)``; ``None`` for ``x1`` against itself (symmetric,
        half the tiles).
      depth: number of hidden layers ``L`` (``L + 1`` dense layers; ``0`` is a linear model).
      activation: a name (:func:`learnmech.theory.dual.get_activation`) or a ``DualActivation``.
      weight_var, bias_var: ``sigma_w^2``, ``sigma_b^2``: a number or ``depth + 1`` numbers.
      parameterization: ``"ntk"`` or ``"standard"`` (needs ``widths``, the ``depth`` hidden widths).
      bias_tangent: per-layer NTK bias term ``beta_l`` (default: the parameterisation's).
      weight_tangent: per-layer NTK weight term ``omega_l`` (default: the parameterisation's).
      diagonal: return only ``K(x, x)`` and ``Theta(x, x)`` for ``x`` in ``x1``, shape ``(n1,)``.
      block_size: tile side (rows and columns); bounds the working memory.
      dtype: ``float32`` or ``float64`` (default: that of ``x1`` if it is floating, else float32).
        float64 is computed with JAX's 64-bit mode switched on locally.
    Returns:
      :class:`Kernels` of numpy arrays.
    """
    dt = np.dtype(dtype) if dtype is not None else np.asarray(x1).dtype
    if dt not in (np.float32, np.float64):
        if dtype is not None:
            raise ValueError(f"dtype: must be float32 or float64, got {dtype!r}")
        dt = np.dtype(np.float32)
    x1 = np.asarray(x1, dt)
    if x1.ndim != 2 or x1.shape[0] == 0 or x1.shape[1] == 0:
        raise ValueError(f"x1: must be a non-empty (n, d) array, got shape {x1.shape}")
    if x2 is not None:
        x2 = np.asarray(x2, dt)
        if x2.ndim != 2 or x2.shape[1] != x1.shape[1] or x2.shape[0] == 0:
            raise ValueError(f"x2: must be a non-empty (n, {x1.shape[1]}) array, got shape {x2.shape}")
    if not np.all(np.isfinite(x1)) or (x2 is not None and not np.all(np.isfinite(x2))):
        raise ValueError("x1/x2: inputs must be finite")
    d = int(x1.shape[1])
    dual = get_activation(activation)
    co = layer_coefficients(depth, d, weight_var, bias_var, parameterization, widths, bias_tangent, weight_tangent)
    block = _DEFAULT_BLOCK if block_size is None else int(block_size)
    if block < 1:
        raise ValueError(f"block_size: must be >= 1, got {block_size}")

    with jax.enable_x64(dt == np.float64):
        traced = tuple(jnp.asarray(c, dt) for c in co)
        if diagonal:
            qs, theta = _diagonal(dual, depth, traced, jnp.asarray(d, dt), jnp.asarray(x1))
            return Kernels(np.asarray(qs[-1]), np.asarray(theta))
        return _gram(dual, depth, traced, jnp.asarray(d, dt), x1, x2, block, dt)


def _gram(dual, depth, co, d, x1, x2, block, dt) -> Kernels:
    symmetric = x2 is None
    x2 = x1 if symmetric else x2
    n1, n2 = x1.shape[0], x2.shape[0]
    q1, diag = _diagonal(dual, depth, co, d, jnp.asarray(x1))
    q1, last = q1[:-1], q1[-1]
    q2 = q1 if symmetric else _diagonal(dual, depth, co, d, jnp.asarray(x2))[0][:-1]
    b1, b2 = min(block, n1), min(block, n2)
    nngp = np.empty((n1, n2), dt)
    ntk = np.empty((n1, n2), dt)
    rows = [(i, min(i + b1, n1)) for i in range(0, n1, b1)]
    cols = [(j, min(j + b2, n2)) for j in range(0, n2, b2)]
    # Pad every tile to the full tile shape so that one compilation serves all of them.
    xs1 = [_pad_rows(jnp.asarray(x1[i:e]), b1) for i, e in rows]
    xs2 = xs1 if symmetric else [_pad_rows(jnp.asarray(x2[j:e]), b2) for j, e in cols]
    qs1 = [[_pad_rows(q[i:e], b1) for q in q1] for i, e in rows]
    qs2 = qs1 if symmetric else [[_pad_rows(q[j:e], b2) for q in q2] for j, e in cols]
    for a, (i, ie) in enumerate(rows):
        for b, (j, je) in enumerate(cols):
            if symmetric and b < a:
                continue
            k, t = _tile(dual, co, d, xs1[a], xs2[b], qs1[a], qs2[b])
            k = np.asarray(k)[: ie - i, : je - j]
            t = np.asarray(t)[: ie - i, : je - j]
            if symmetric and a == b:  # the product x x^T need not be bitwise symmetric
                k = (k + k.T) / 2
                t = (t + t.T) / 2
            nngp[i:ie, j:je] = k
            ntk[i:ie, j:je] = t
            if symmetric and b > a:
                nngp[j:je, i:ie] = k.T
                ntk[j:je, i:ie] = t.T
    if symmetric:
        # The product x1 x1^T rounds the squared norms differently from the diagonal recursion,
        # and the angle is ~sqrt(rounding) near rho = 1; the exact diagonal replaces it.
        np.fill_diagonal(nngp, np.asarray(last))
        np.fill_diagonal(ntk, np.asarray(diag))
    return Kernels(nngp, ntk)
