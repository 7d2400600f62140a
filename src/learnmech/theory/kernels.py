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
Gram matrix is one compiled XLA program that walks over tiles of at most ``block_size`` rows and
columns and writes them in place into one preallocated ``(2, n1, n2)`` buffer (NNGP, NTK): no
per-tile host round trip, no assembly in numpy. Each tile is the ``x1 x2^T`` product and one
fusion for both kernels (stacked: as a pair of outputs XLA splits the recursion into a dozen
fusions and takes 1.6 times as long). Tile starts are ``0, b, 2b, ..`` with the last moved back
to end at ``n`` (tiles may overlap; nothing is padded). For ``x2 = None`` only tiles on and above
the diagonal are computed: each off-diagonal tile is written with its transpose, then each
diagonal tile symmetrised (its upper triangle mirrored), last, so the result is exactly
symmetric, and the exact diagonal (the recursion on ``|x|^2``, not on the rounded product) is
written at the end. Memory beyond the outputs is a few tiles.

Precision: every step in the input's dtype (float32 in gives float32 throughout: product, angle
polynomial and recursion; float64 throughout for float64). A depth-3 ReLU Gram of 1100 Gaussian
inputs in float32 is within 6e-7 of float64 on every entry (median 7e-8); nearly parallel pairs
lose more (1e-3 at depth 3: their angle is ``~sqrt(rounding)``). The outputs are read-only numpy
views of the computed buffer (no copy: copying two ``n x n`` arrays costs about one
matmul-equivalent); ``np.array(k.ntk)`` makes a writable copy.

Cost (``bench/kernels.py``: depth-3 ReLU, ``d = 100``, float32, 2 shared CPU cores): 3.2
matmul-equivalents at ``n = 5000`` and 5.9 at ``n = 2000`` (4.6-4.9 and 8.4-10 with per-tile calls
assembled in numpy). At ``n = 5000`` about 0.9 of it is the first touch of the 200 MB of fresh
output pages, 1.3 the tiles' products and recursion (each tile's fusion computes the NNGP chain
twice, once per output) and 0.9 the in-place and transposed writes. XLA:CPU runs each fusion on
one core here, and two Gram programs in two threads take as long as one after the other.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.theory.dual import DualActivation, get_activation

__all__ = ["Kernels", "nngp_ntk", "layer_coefficients"]

_DEFAULT_BLOCK = 512  # measured at n = 5000: 256 to 640 within 5% of each other, 1024 1.7 times slower


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
    k = (wv[0] / d) * dot + bv[0]  # scalar factors first: one product per entry, no division
    theta = (omega[0] / d) * dot + beta[0]
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


def _starts(n: int, block: int) -> np.ndarray:
    """Tile starts ``0, b, 2b, ..`` with the last moved back to ``n - b``: every tile is ``b`` long."""
    return np.minimum(np.arange(0, n, block), n - block).astype(np.int32)


def _tile(dual, co, d, x1, x2, q1, q2, i, j, b1, b2):
    """Both kernels on rows ``i:i+b1`` of ``x1`` against rows ``j:j+b2`` of ``x2``, stacked ``(2, b1, b2)``."""
    xi = jax.lax.dynamic_slice_in_dim(x1, i, b1)  # (b1, d)
    xj = jax.lax.dynamic_slice_in_dim(x2, j, b2)  # (b2, d)
    qi = [jax.lax.dynamic_slice_in_dim(q, i, b1)[:, None] for q in q1]
    qj = [jax.lax.dynamic_slice_in_dim(q, j, b2)[None, :] for q in q2]

    def tile(dot):  # stacked: one fusion for both kernels (module docstring)
        return jnp.stack(_recursion(dual, co, dot, d, qi, qj))

    # A conditional's output is a buffer: without it XLA fuses the recursion into each in-place
    # update (tile and transpose) and computes it twice. The predicate is always true but a traced
    # input (``d >= 1``), so XLA cannot fold it, not even where a one-trip loop is unrolled. (XLA:CPU
    # drops optimization barriers before fusion, so they do not help here.)
    dot = xi @ xj.T  # (b1, b2)
    return jax.lax.cond(d > 0, tile, lambda dot: jnp.stack([dot, dot]), dot)


def _over(pairs: np.ndarray, body, out):
    """``out = body(i, j, out)`` for each row ``(i, j)`` of ``pairs``, in one ``fori_loop``."""
    if len(pairs) == 0:
        return out
    table = jnp.asarray(pairs)
    return jax.lax.fori_loop(0, len(pairs), lambda p, o: body(table[p, 0], table[p, 1], o), out)


@partial(jax.jit, static_argnums=(0, 1))
def _gram_cross(dual: DualActivation, block: int, co, d, x1, x2, q1, q2):
    """``K(x1, x2)`` and ``Theta(x1, x2)`` stacked ``(2, n1, n2)``, every tile computed once."""
    (n1, n2), dt = (x1.shape[0], x2.shape[0]), x1.dtype
    b1, b2 = min(block, n1), min(block, n2)
    pairs = np.array([(i, j) for i in _starts(n1, b1) for j in _starts(n2, b2)], np.int32)

    def body(i, j, out):
        return jax.lax.dynamic_update_slice(out, _tile(dual, co, d, x1, x2, q1, q2, i, j, b1, b2), (i * 0, i, j))

    return _over(pairs, body, jnp.zeros((2, n1, n2), dt))


@partial(jax.jit, static_argnums=(0, 1))
def _gram_symmetric(dual: DualActivation, block: int, co, d, x, q, last, diag):
    """``K(x, x)`` and ``Theta(x, x)`` stacked ``(2, n, n)``: tiles on and above the diagonal only."""
    n, dt = x.shape[0], x.dtype
    b = min(block, n)
    starts = _starts(n, b)
    upper = np.array([(i, j) for a, i in enumerate(starts) for j in starts[a + 1:]], np.int32).reshape(-1, 2)
    on_diagonal = np.stack([starts, starts], axis=1)

    def off(i, j, out):  # the tile and its transpose
        tile = _tile(dual, co, d, x, x, q, q, i, j, b, b)  # (2, b, b)
        out = jax.lax.dynamic_update_slice(out, tile, (i * 0, i, j))  # i * 0: the index dtype
        return jax.lax.dynamic_update_slice(out, tile.transpose(0, 2, 1), (i * 0, j, i))

    keep = jax.lax.broadcasted_iota(jnp.int32, (1, b, b), 1) <= jax.lax.broadcasted_iota(jnp.int32, (1, b, b), 2)

    def on(i, j, out):  # the upper triangle mirrored: x x^T need not be bitwise symmetric
        tile = _tile(dual, co, d, x, x, q, q, i, j, b, b)
        return jax.lax.dynamic_update_slice(out, jnp.where(keep, tile, tile.transpose(0, 2, 1)), (i * 0, i, i))

    out = _over(upper, off, jnp.zeros((2, n, n), dt))
    out = _over(on_diagonal, on, out)  # last: where tiles overlap, the result stays symmetric
    # The product x x^T rounds the squared norms differently from the diagonal recursion, and the
    # angle is ~sqrt(rounding) near rho = 1; the exact diagonal replaces it.
    idx = jnp.arange(n)
    return out.at[0, idx, idx].set(last).at[1, idx, idx].set(diag)


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
      block_size: tile side (rows and columns); bounds the working memory (a quadrature dual
        lowers it to its ``tile``).
      dtype: ``float32`` or ``float64`` (default: that of ``x1`` if it is floating, else float32).
        float64 is computed with JAX's 64-bit mode switched on locally.
    Returns:
      :class:`Kernels` of numpy arrays (read-only views of the computed buffers).
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
    block = block if dual.tile is None else min(block, dual.tile)
    x1 = jnp.asarray(x1)
    q1, diag = _diagonal(dual, depth, co, d, x1)
    if x2 is None:
        both = _gram_symmetric(dual, block, co, d, x1, q1[:-1], q1[-1], diag)
    else:
        x2 = jnp.asarray(x2)
        q2 = _diagonal(dual, depth, co, d, x2)[0]
        both = _gram_cross(dual, block, co, d, x1, x2, q1[:-1], q2[:-1])
    both = np.asarray(both)  # (2, n1, n2): a read-only view of the computed buffer, no copy
    return Kernels(both[0], both[1])
