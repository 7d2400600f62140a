"""Dual activations: Gaussian expectations that drive the infinite-width kernel recursions.

For pre-activations ``(u, v) ~ N(0, [[q1, c], [c, q2]])`` an activation ``phi`` enters the NNGP and
NTK recursions only through two expectations (Daniely, Frostig & Singer 2016, arXiv:1602.05897,
call the first the *dual activation*)::

    V(q1, q2, c)  = E[phi(u) phi(v)]        (NNGP)
    V'(q1, q2, c) = E[phi'(u) phi'(v)]      (NTK)

A :class:`DualActivation` bundles the two as one elementwise function of ``(q1, q2, c)`` so that
the shared angle is computed once. Closed forms:

- **arc-cosine family** (Cho & Saul 2009, "Kernel methods for deep learning", NIPS): with
  ``rho = c / sqrt(q1 q2) = cos(theta)`` and
  ``J_0 = pi - theta``, ``J_1 = sin(theta) + (pi - theta) cos(theta)``,
  ``J_2 = 3 sin(theta) cos(theta) + (pi - theta)(1 + 2 cos^2(theta))``,
  ``E[relu(u)^n relu(v)^n] = (q1 q2)^{n/2} J_n(theta) / (2 pi)``. Because ``-v`` has correlation
  ``-rho`` with ``u`` (angle ``pi - theta``), the two-sided activation
  ``phi(u) = a relu(u)^n + b relu(-u)^n`` has
  ``V = (q1 q2)^{n/2} [(a^2 + b^2) J_n(theta) + 2ab J_n(pi - theta)] / (2 pi)`` and, from
  ``phi' = n a relu(u)^{n-1} - n b relu(-u)^{n-1}``,
  ``V' = n^2 (q1 q2)^{(n-1)/2} [(a^2 + b^2) J_{n-1}(theta) - 2ab J_{n-1}(pi - theta)] / (2 pi)``.
  ReLU is ``(a, b, n) = (1, 0, 1)``, leaky ReLU with slope ``s`` is ``(1, -s, 1)``, absolute value
  ``(1, 1, 1)``, the identity ``(1, -1, 1)`` and ReQU ``(1, 0, 2)``.
- **erf** (Williams 1997, "Computing with infinite networks", NIPS):
  ``V = (2/pi) arcsin(2c / sqrt((1 + 2 q1)(1 + 2 q2)))`` and
  ``V' = (4/pi) / sqrt((1 + 2 q1)(1 + 2 q2) - 4 c^2)``.
- **identity**: ``V = c``, ``V' = 1``.
- **any other elementwise activation** by 2-D Gauss-Hermite quadrature in the whitened coordinates
  ``u = sqrt(q1) z1``, ``v = sqrt(q2) (rho z1 + sqrt(1 - rho^2) z2)``; its derivative by ``jax.grad``.
  Exact for polynomials of degree below ``2 * points``; slow to converge at kinks (use the closed
  forms for ReLU-like activations).

The activation table: :data:`ACTIVATIONS` pairs each named activation's jax function with its
dual (:class:`Activation`), and :func:`named_activation` looks a name up (``leaky_relu:<slope>``
too). It is the one table of the package: networks, teachers and kernels all read it, so a name
means the same function everywhere and the kernels of a network are those of the function it
applies.

The angle: XLA's CPU ``arccos`` and ``atan2`` cost about five ``n x n x 100`` matmuls on an
``n = 5000`` Gram matrix, more than the whole kernel budget, so in float32 ``theta`` comes from
the Abramowitz & Stegun 4.4.46 polynomial (absolute error below 2e-8, under float32 rounding);
float64 keeps the exact ``arctan2``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ACTIVATIONS", "Activation", "DualActivation", "arc_cosine", "arc_cosine_j", "erf", "gauss_hermite",
           "get_activation", "identity", "named_activation"]

Dual = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


@dataclass(frozen=True)
class DualActivation:
    """``fn(q1, q2, c) -> (E[phi(u) phi(v)], E[phi'(u) phi'(v)])``, elementwise and jit-friendly."""

    name: str
    fn: Dual
    has_ntk: bool = True

    def __call__(self, q1, q2, c):
        return self.fn(q1, q2, c)


# Abramowitz & Stegun 4.4.46: arccos(x) = sqrt(1 - x) * sum_k a_k x^k on [0, 1], |error| <= 2e-8.
_AS_4_4_46 = (1.5707963050, -0.2145988016, 0.0889789874, -0.0501743046,
              0.0308918810, -0.0170881256, 0.0066700901, -0.0012624911)


def _angle(rho: jax.Array) -> jax.Array:
    """``theta = arccos(rho)`` for ``rho`` in [-1, 1]; see the module docstring for the float32 form."""
    if rho.dtype == jnp.float64:
        return jnp.arctan2(jnp.sqrt(jnp.maximum(1.0 - rho * rho, 0.0)), rho)
    a = jnp.abs(rho)
    p = jnp.zeros_like(a)
    for coef in reversed(_AS_4_4_46):
        p = p * a + coef
    t = jnp.sqrt(1.0 - a) * p
    return jnp.where(rho < 0, math.pi - t, t)


def arc_cosine_j(order: int, theta: jax.Array) -> jax.Array:
    """Cho & Saul's angular factor ``J_n(theta)`` for ``n`` in {0, 1, 2} (module docstring)."""
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    return _j_from(order, theta, cos, sin)


def _j_from(order: int, theta, cos, sin):
    if order == 0:
        return math.pi - theta
    if order == 1:
        return sin + (math.pi - theta) * cos
    if order == 2:
        return 3.0 * sin * cos + (math.pi - theta) * (1.0 + 2.0 * cos * cos)
    raise ValueError(f"order: must be 0, 1 or 2, got {order}")


def _correlation(q1, q2, c):
    """``rho = c / sqrt(q1 q2)`` clipped to [-1, 1], and ``sqrt(q1 q2)``.

    ``q1``/``q2`` broadcast against ``c`` (columns/rows of a Gram tile), so the square roots are
    taken on the vectors and an ``n x n`` tile pays two multiplications, not a root and a division.
    """
    r1, r2 = jnp.sqrt(q1), jnp.sqrt(q2)
    i1 = jnp.where(r1 > 0, 1.0 / jnp.where(r1 > 0, r1, 1.0), 0.0)
    i2 = jnp.where(r2 > 0, 1.0 / jnp.where(r2 > 0, r2, 1.0), 0.0)
    rho = jnp.clip(c * i1 * i2, -1.0, 1.0)
    # Within two ulps of +-1 the correlation is +-1 up to rounding; snapping it keeps the angle of a
    # point with itself exactly 0 instead of sqrt(2 ulp) (1.5e-8 in float64), at no loss of accuracy.
    eps = 2 * jnp.finfo(rho.dtype).eps
    return jnp.where(1.0 - jnp.abs(rho) <= eps, jnp.sign(rho), rho), r1 * r2


def arc_cosine(a: float = 1.0, b: float = 0.0, order: int = 1, name: str | None = None) -> DualActivation:
    """The two-sided arc-cosine family ``phi(u) = a relu(u)^order + b relu(-u)^order``.

    ReLU ``(1, 0)``, leaky ReLU ``(1, -slope)``, absolute value ``(1, 1)``, identity ``(1, -1)``;
    ``order`` 1 or 2. Equations in the module docstring (Cho & Saul 2009).
    """
    if order not in (1, 2):
        raise ValueError(f"order: must be 1 or 2 (order 0 has no NTK), got {order}")
    same, cross = a * a + b * b, 2.0 * a * b

    def fn(q1, q2, c):
        rho, norm = _correlation(q1, q2, c)
        theta = _angle(rho)
        sin = jnp.sqrt(jnp.maximum(1.0 - rho * rho, 0.0))
        # J_n(pi - theta) uses cos(pi - theta) = -rho and sin(pi - theta) = sin(theta).
        j_n = same * _j_from(order, theta, rho, sin)
        j_d = same * _j_from(order - 1, theta, rho, sin)
        if cross != 0.0:  # a Python-level branch: ReLU (b = 0) pays nothing for the other side
            j_n = j_n + cross * _j_from(order, math.pi - theta, -rho, sin)
            j_d = j_d - cross * _j_from(order - 1, math.pi - theta, -rho, sin)
        scale = norm if order == 1 else norm * norm
        dscale = 1.0 if order == 1 else 4.0 * norm
        return scale * j_n / (2 * math.pi), dscale * j_d / (2 * math.pi)

    return DualActivation(name or f"arc_cosine(a={a:g}, b={b:g}, order={order})", fn)


def _erf_fn(q1, q2, c):
    r1, r2 = jnp.sqrt(1.0 + 2.0 * q1), jnp.sqrt(1.0 + 2.0 * q2)
    rho = jnp.clip(2.0 * c * (1.0 / r1) * (1.0 / r2), -1.0, 1.0)
    nngp = (2.0 / math.pi) * jnp.arcsin(rho)
    # (1 + 2 q1)(1 + 2 q2) - 4 c^2 = r1^2 r2^2 (1 - rho^2)
    ntk = (4.0 / math.pi) / (r1 * r2 * jnp.sqrt(jnp.maximum(1.0 - rho * rho, jnp.finfo(rho.dtype).tiny)))
    return nngp, ntk


def _identity_fn(q1, q2, c):
    return c, jnp.ones_like(c)


erf = DualActivation("erf", _erf_fn)
identity = DualActivation("identity", _identity_fn)


def gauss_hermite(phi: Callable[[jax.Array], jax.Array], points: int = 24, name: str | None = None) -> DualActivation:
    """Dual activation of any scalar elementwise ``phi`` by ``points x points`` Gauss-Hermite quadrature.

    The probabilists' nodes ``z_k`` and weights ``w_k / sqrt(2 pi)`` integrate against ``N(0, 1)``;
    with ``u = sqrt(q1) z_i`` and ``v = sqrt(q2)(rho z_i + sqrt(1 - rho^2) z_j)``,
    ``E[phi(u) phi(v)] ~= sum_ij w_i w_j phi(u) phi(v)``, and the same with ``phi'`` (``jax.grad``).

    Accuracy falls as the variance grows, since ``phi(sqrt(q) z)`` sharpens in ``z``: for tanh with 24
    points the NTK factor ``E[tanh'(u)^2]`` is off by 7e-4 (relative) at ``q = 1``, 1.4e-2 at
    ``q = 2`` and 0.11 at ``q = 4`` (against scipy's adaptive quadrature); keep pre-activation
    variances near 1 or raise ``points``.

    Cost: ``points^2`` evaluations of ``phi`` per kernel entry. The sum over ``i`` is a ``lax.scan``
    (a reduction over quadrature nodes, not a loop in time): unrolled in Python it took XLA about
    14 s per layer to compile on CPU, rolled about 2 s in all, with the same memory (one
    ``(..., points)`` slab at a time).
    """
    if points < 2:
        raise ValueError(f"points: must be >= 2, got {points}")
    nodes, weights = np.polynomial.hermite_e.hermegauss(points)
    weights = weights / math.sqrt(2 * math.pi)
    dphi = jnp.vectorize(jax.grad(phi))

    def fn(q1, q2, c):
        rho, _ = _correlation(q1, q2, c)
        s1, s2 = jnp.sqrt(q1), jnp.sqrt(q2)
        perp = jnp.sqrt(jnp.maximum(1.0 - rho * rho, 0.0))
        z = jnp.asarray(nodes, rho.dtype)
        w = jnp.asarray(weights, rho.dtype)

        def add_node(sums, node):  # the terms of first node z_i, summed over the second node z_j
            zi, wi = node
            u = s1 * zi
            v = s2[..., None] * (rho[..., None] * zi + perp[..., None] * z)  # (..., points)
            nngp, ntk = sums
            return (nngp + wi * phi(u) * jnp.sum(w * phi(v), axis=-1),
                    ntk + wi * dphi(u) * jnp.sum(w * dphi(v), axis=-1)), None

        (nngp, ntk), _ = jax.lax.scan(add_node, (jnp.zeros_like(rho), jnp.zeros_like(rho)), (z, w))
        return nngp, ntk

    return DualActivation(name or f"gauss_hermite({getattr(phi, '__name__', 'phi')}, {points})", fn)


def _requ(h):
    return jnp.square(jax.nn.relu(h))


def _identity(h):
    return h


@dataclass(frozen=True)
class Activation:
    """An elementwise activation and its dual: what a network applies and what its kernels use.

    ``fn`` is the jax function ``phi`` (``h -> phi(h)``, elementwise); ``dual`` its
    :class:`DualActivation`, the expectations ``E[phi(u) phi(v)]`` and ``E[phi'(u) phi'(v)]`` of
    exactly this ``phi`` (a closed form where one exists, else quadrature of ``fn`` itself). Calling
    an ``Activation`` applies ``fn``.
    """

    name: str
    fn: Callable[[jax.Array], jax.Array]
    dual: DualActivation

    def __call__(self, h: jax.Array) -> jax.Array:
        return self.fn(h)


def _table(*entries: Activation) -> Mapping[str, Activation]:
    table = {a.name: a for a in entries}
    table["linear"] = table["identity"]  # the name nets and data use for the identity
    return MappingProxyType(table)


# The one activation table: every network (learnmech.nets.MLP), every teacher
# (learnmech.data.teacher_mlp) and every kernel (learnmech.theory.kernels) reads its activation here.
# erf is the unscaled error function; gelu is jax.nn.gelu (its tanh approximation, jax's default).
ACTIVATIONS: Mapping[str, Activation] = _table(
    Activation("relu", jax.nn.relu, arc_cosine(1.0, 0.0, 1, "relu")),
    Activation("abs", jnp.abs, arc_cosine(1.0, 1.0, 1, "abs")),
    Activation("requ", _requ, arc_cosine(1.0, 0.0, 2, "requ")),
    Activation("erf", jax.scipy.special.erf, erf),
    Activation("identity", _identity, identity),
    Activation("tanh", jnp.tanh, gauss_hermite(jnp.tanh, name="tanh")),
    Activation("gelu", jax.nn.gelu, gauss_hermite(jax.nn.gelu, name="gelu")),
    Activation("sigmoid", jax.nn.sigmoid, gauss_hermite(jax.nn.sigmoid, name="sigmoid")),
)


@functools.lru_cache(maxsize=64)
def _leaky_relu(name: str) -> Activation:
    try:
        slope = float(name.split(":", 1)[1])
    except ValueError:
        raise ValueError(f"activation: bad leaky_relu slope in {name!r}") from None
    if not math.isfinite(slope):
        raise ValueError(f"activation: bad leaky_relu slope in {name!r}")
    fn = functools.partial(jax.nn.leaky_relu, negative_slope=slope)
    return Activation(name, fn, arc_cosine(1.0, -slope, 1, name))


def named_activation(name: str) -> Activation:
    """The :class:`Activation` called ``name``: a key of :data:`ACTIVATIONS` or ``leaky_relu:<slope>``.

    ``ValueError`` naming the allowed names otherwise. The same name always gives the same
    object, so jitted kernels compile once per activation.
    """
    if isinstance(name, str):
        if name in ACTIVATIONS:
            return ACTIVATIONS[name]
        if name.startswith("leaky_relu:"):
            return _leaky_relu(name)
    allowed = ", ".join([*sorted(ACTIVATIONS), "leaky_relu:<slope>"])
    raise ValueError(f"activation: must be one of {allowed}, got {name!r}")


def get_activation(activation: str | DualActivation) -> DualActivation:
    """The :class:`DualActivation` of a name (:func:`named_activation`) or a ``DualActivation`` itself."""
    if isinstance(activation, DualActivation):
        return activation
    if not isinstance(activation, str):
        raise ValueError(f"activation: must be a name or a DualActivation, got {type(activation).__name__}")
    return named_activation(activation).dual
