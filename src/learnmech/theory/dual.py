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
- **GELU** ``phi(x) = x Phi(x)`` (exact, PyTorch's and neural-tangents' default; closed forms also in
  Tsuchida, Pearce, van der Heide, Roosta & Gallagher 2021, arXiv:2002.08517). Derivation: write
  ``Phi(u) = P(a <= u)`` with ``a, b ~ N(0, 1)`` independent, so ``S = u - a``, ``T = v - b`` have
  covariance ``[[1 + q1, c], [c, 1 + q2]]`` and ``E[phi(u) phi(v)] = E[u v 1{S > 0} 1{T > 0}]``.
  Stein's lemma on ``u`` (``Cov(u, v) = c``, ``Cov(u, S) = q1``, ``Cov(u, T) = c``) leaves the
  orthant probability ``P = 1/4 + arcsin(r) / (2 pi)``, ``r = c / sqrt((1 + q1)(1 + q2))``, and two
  boundary terms ``E[v delta(S) 1{T > 0}]``, ``E[v 1{S > 0} delta(T)]``, each a Gaussian
  conditional mean. With ``Delta = sqrt((1 + q1)(1 + q2) - c^2)``::

      V  = c P + [q1 q2 - c^2 (1 - 1/(1 + q1) - 1/(1 + q2))] / (2 pi Delta)

  ``phi' = Phi(x) + x phi(x)``: ``E[Phi Phi] = P``; the ``x phi(x)`` factors are Gaussian tilts,
  ``E[g(u, v) e^{-v^2/2}] = det(I + Sigma D)^{-1/2} E_{Sigma'}[g]``, giving ``E[Phi(u) v phi(v)] =
  c / (2 pi (1 + q2) Delta)`` and ``E[u phi(u) v phi(v)] = c / (2 pi Delta^3)``::

      V' = P + c (1/(1 + q1) + 1/(1 + q2)) / (2 pi Delta) + c / (2 pi Delta^3)

  ``Delta^2 >= 1 + q1 + q2``, so nothing is singular at ``|rho| = 1``.
- **identity**: ``V = c``, ``V' = 1``.
- **any other elementwise activation** (tanh, sigmoid, SiLU, softplus, the tanh approximation of
  GELU, a user's function): :func:`quadrature`, the scale-free polar rule of
  :mod:`learnmech.theory.quadrature` (relative error below 2e-11 at variances up to 100 for the
  named ones, 1e-9 at 1000, with an a-posteriori estimate). :func:`gauss_hermite` (a fixed 2-D
  Gauss-Hermite grid) is kept for comparison: it loses accuracy as the variance grows.

The activation table: :data:`ACTIVATIONS` pairs each named activation's jax function with its
dual (:class:`Activation`), and :func:`named_activation` looks a name up (``leaky_relu:<slope>``
too). It is the one table of the package: networks, teachers and kernels all read it, so a name
means the same function everywhere and the kernels of a network are those of the function it
applies. ``gelu`` is the exact GELU; its tanh approximation (``jax.nn.gelu``'s default) is
``gelu_tanh``.

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

from learnmech.theory.quadrature import expectations, expectations_error

__all__ = ["ACTIVATIONS", "Activation", "DualActivation", "arc_cosine", "arc_cosine_j", "erf", "gauss_hermite",
           "gelu", "get_activation", "identity", "named_activation", "quadrature"]

Dual = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


@dataclass(frozen=True)
class DualActivation:
    """``fn(q1, q2, c) -> (E[phi(u) phi(v)], E[phi'(u) phi'(v)])``, elementwise and jit-friendly.

    ``error``: for a quadrature, ``error(q1, q2, c)`` is its a-posteriori error estimate, the same
    pair of absolute errors (``None`` for closed forms, exact to rounding). ``tile``: the largest
    Gram tile side whose working memory stays bounded (a quadrature keeps a slab per node set),
    ``None`` for the kernels' default.
    """

    name: str
    fn: Dual
    has_ntk: bool = True
    error: Dual | None = None
    tile: int | None = None

    def __call__(self, q1, q2, c):
        return self.fn(q1, q2, c)


_INV_2PI = 1.0 / (2 * math.pi)

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
    return _j_from(order, math.pi - theta, cos, sin)


def _j_from(order: int, rest, cos, sin):
    """``J_n`` from ``rest = pi - theta``, ``cos(theta)`` and ``sin(theta)``."""
    if order == 0:
        return rest
    if order == 1:
        return sin + rest * cos
    if order == 2:
        return 3.0 * sin * cos + rest * (1.0 + 2.0 * cos * cos)
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


def _angle_parts(q1, q2, c):
    """``(cos(theta), pi - theta, sin(theta), sqrt(q1 q2))`` of a pair, ``rho`` snapped to +-1 within two ulps.

    float64: :func:`_correlation` and ``arctan2``. float32: the same numbers in fewer operations
    (a Gram tile's cost is its elementwise work): the A&S polynomial on ``|rho|``, and the unclipped
    ``rho`` as the cosine (it exceeds 1 by at most rounding, which moves ``J_n`` by rounding).
    """
    if jnp.result_type(q1, q2, c) == jnp.float64:
        rho, norm = _correlation(q1, q2, c)
        return rho, math.pi - _angle(rho), jnp.sqrt(jnp.maximum(1.0 - rho * rho, 0.0)), norm
    r1, r2 = jnp.sqrt(q1), jnp.sqrt(q2)
    i1 = jnp.where(r1 > 0, 1.0 / jnp.where(r1 > 0, r1, 1.0), 0.0)
    i2 = jnp.where(r2 > 0, 1.0 / jnp.where(r2 > 0, r2, 1.0), 0.0)
    rho = c * i1 * i2
    a = jnp.minimum(jnp.abs(rho), 1.0)
    a = jnp.where(a >= 1.0 - 2 * jnp.finfo(a.dtype).eps, 1.0, a)  # the snap of _correlation
    p = jnp.zeros_like(a)
    for coef in reversed(_AS_4_4_46):
        p = p * a + coef
    t = jnp.sqrt(1.0 - a) * p  # arccos(|rho|)
    return rho, jnp.where(rho < 0, t, math.pi - t), jnp.sqrt(1.0 - a * a), r1 * r2


def arc_cosine(a: float = 1.0, b: float = 0.0, order: int = 1, name: str | None = None) -> DualActivation:
    """The two-sided arc-cosine family ``phi(u) = a relu(u)^order + b relu(-u)^order``.

    ReLU ``(1, 0)``, leaky ReLU ``(1, -slope)``, absolute value ``(1, 1)``, identity ``(1, -1)``;
    ``order`` 1 or 2. Equations in the module docstring (Cho & Saul 2009).
    """
    if order not in (1, 2):
        raise ValueError(f"order: must be 1 or 2 (order 0 has no NTK), got {order}")
    same, cross = a * a + b * b, 2.0 * a * b

    def fn(q1, q2, c):
        cos, rest, sin, norm = _angle_parts(q1, q2, c)
        # J_n(pi - theta): cos(pi - theta) = -cos(theta), sin(pi - theta) = sin(theta), rest -> theta.
        j_n = same * _j_from(order, rest, cos, sin)
        j_d = same * _j_from(order - 1, rest, cos, sin)
        if cross != 0.0:  # a Python-level branch: ReLU (b = 0) pays nothing for the other side
            j_n = j_n + cross * _j_from(order, math.pi - rest, -cos, sin)
            j_d = j_d - cross * _j_from(order - 1, math.pi - rest, -cos, sin)
        scale = norm if order == 1 else norm * norm
        dscale = 1.0 if order == 1 else 4.0 * norm
        return scale * j_n * _INV_2PI, dscale * j_d * _INV_2PI  # a product, not a division per entry

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


def _gelu_fn(q1, q2, c):
    """Exact GELU ``x Phi(x)``: the closed forms of the module docstring."""
    i1, i2 = 1.0 / (1.0 + q1), 1.0 / (1.0 + q2)  # on the vectors when q1/q2 are a tile's rows/columns
    r1, r2 = jnp.sqrt(i1), jnp.sqrt(i2)
    delta = jnp.sqrt(1.0 / (i1 * i2) - c * c)  # Delta^2 = (1 + q1)(1 + q2) - c^2 >= 1 + q1 + q2
    orthant = 0.25 + jnp.arcsin(jnp.clip(c * r1 * r2, -1.0, 1.0)) * _INV_2PI  # P(S > 0, T > 0)
    inv = 1.0 / (2 * math.pi * delta)
    nngp = c * orthant + (q1 * q2 - c * c * (1.0 - i1 - i2)) * inv
    ntk = orthant + c * (i1 + i2) * inv + c * inv / (delta * delta)
    return nngp, ntk


erf = DualActivation("erf", _erf_fn)
identity = DualActivation("identity", _identity_fn)
gelu = DualActivation("gelu", _gelu_fn)


def gauss_hermite(phi: Callable[[jax.Array], jax.Array], points: int = 24, name: str | None = None) -> DualActivation:
    """Dual activation of any scalar elementwise ``phi`` by ``points x points`` Gauss-Hermite quadrature.

    The probabilists' nodes ``z_k`` and weights ``w_k / sqrt(2 pi)`` integrate against ``N(0, 1)``;
    with ``u = sqrt(q1) z_i`` and ``v = sqrt(q2)(rho z_i + sqrt(1 - rho^2) z_j)``,
    ``E[phi(u) phi(v)] ~= sum_ij w_i w_j phi(u) phi(v)``, and the same with ``phi'`` (``jax.grad``).

    Accuracy falls as the variance grows, since ``phi(sqrt(q) z)`` sharpens in ``z``: for tanh with 24
    points the NTK factor ``E[tanh'(u)^2]`` is off by 7e-4 (relative) at ``q = 1``, 1.4e-2 at
    ``q = 2`` and 0.11 at ``q = 4`` (against scipy's adaptive quadrature). The table's activations
    use :func:`quadrature` instead; this rule stays for polynomials (exact below degree
    ``2 * points``) and comparisons.

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


def quadrature(phi: Callable[[jax.Array], jax.Array], dphi: Callable[[jax.Array], jax.Array] | None = None,
               name: str | None = None) -> DualActivation:
    """Dual activation of any smooth scalar elementwise ``phi`` by the polar rule of
    :mod:`learnmech.theory.quadrature` (scale-free: accurate at small and large variances alike).

    ``dphi`` is ``phi'`` (default: ``jax.grad(phi)``, elementwise). The dual's ``error`` is the
    rule's a-posteriori estimate (difference with a finer rule); the stated tolerance is 1e-8
    relative in float64 (module docstring of :mod:`learnmech.theory.quadrature`). Cost: 7040 nodes
    per kernel entry, each four evaluations of ``phi`` and of ``phi'`` (``f(+-a r) f(+-b r)``), about
    25 times the 24 x 24 Gauss-Hermite grid, so Gram tiles are kept at 128 x 128.

    >>> import jax, jax.numpy as jnp
    >>> with jax.enable_x64(True):
    ...     v, dv = quadrature(jnp.tanh)(jnp.float64(100.0), jnp.float64(100.0), jnp.float64(0.0))
    >>> round(float(dv), 6)  # E[tanh'(u)]^2 = (E sech^2(10 z))^2 at q = 100
    0.006314
    """
    dphi = jnp.vectorize(jax.grad(phi)) if dphi is None else dphi
    fns = (phi, dphi)

    @jax.jit  # called outside a jit (one pair at a time, by autodiff), the scan would be traced every call
    def fn(q1, q2, c):
        return expectations(fns, q1, q2, c)

    @jax.jit
    def error(q1, q2, c):
        return expectations_error(fns, q1, q2, c)

    return DualActivation(name or f"quadrature({getattr(phi, '__name__', 'phi')})", fn, error=error, tile=128)


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


_GELU_TANH_K = math.sqrt(2 / math.pi)  # jax.nn.gelu(approximate=True): 0.5 x (1 + tanh(k (x + 0.044715 x^3)))


def _gelu(h):
    return jax.nn.gelu(h, approximate=False)


def _gelu_tanh(h):
    return jax.nn.gelu(h, approximate=True)


def _gelu_tanh_grad(h):
    t = jnp.tanh(_GELU_TANH_K * (h + 0.044715 * h**3))
    return 0.5 * (1.0 + t) + 0.5 * h * (1.0 - t * t) * _GELU_TANH_K * (1.0 + 3 * 0.044715 * h * h)


def _tanh_grad(h):
    t = jnp.tanh(h)
    return 1.0 - t * t


def _sigmoid_grad(h):
    s = jax.nn.sigmoid(h)
    return s * (1.0 - s)


def _silu_grad(h):
    s = jax.nn.sigmoid(h)
    return s * (1.0 + h * (1.0 - s))


# The one activation table: every network (learnmech.nets.MLP), every teacher
# (learnmech.data.teacher_mlp) and every kernel (learnmech.theory.kernels) reads its activation here.
# erf is the unscaled error function; gelu is the exact x Phi(x) (jax.nn.gelu(approximate=False),
# PyTorch's and neural-tangents' GELU); gelu_tanh is the tanh approximation (jax.nn.gelu's default).
ACTIVATIONS: Mapping[str, Activation] = _table(
    Activation("relu", jax.nn.relu, arc_cosine(1.0, 0.0, 1, "relu")),
    Activation("abs", jnp.abs, arc_cosine(1.0, 1.0, 1, "abs")),
    Activation("requ", _requ, arc_cosine(1.0, 0.0, 2, "requ")),
    Activation("erf", jax.scipy.special.erf, erf),
    Activation("identity", _identity, identity),
    Activation("gelu", _gelu, gelu),
    Activation("gelu_tanh", _gelu_tanh, quadrature(_gelu_tanh, _gelu_tanh_grad, "gelu_tanh")),
    Activation("tanh", jnp.tanh, quadrature(jnp.tanh, _tanh_grad, "tanh")),
    Activation("sigmoid", jax.nn.sigmoid, quadrature(jax.nn.sigmoid, _sigmoid_grad, "sigmoid")),
    Activation("silu", jax.nn.silu, quadrature(jax.nn.silu, _silu_grad, "silu")),
    Activation("softplus", jax.nn.softplus, quadrature(jax.nn.softplus, jax.nn.sigmoid, "softplus")),
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
