"""Exact kernels: the exact-GELU closed forms, the polar quadrature with its error estimate, the Gram.

References are independent of the code under test: nested adaptive ``scipy.integrate.quad``
(``u`` outside, ``v | u`` inside, split at 0, ``epsrel = 1e-11``) of ``phi`` and ``phi'`` written
with the ``math`` module, closed forms (``E[sin u sin v] = e^{-(q1+q2)/2} sinh c``), finite
differences and float64 against float32.
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from learnmech.nets import MLP
from learnmech.theory.dual import ACTIVATIONS, gelu, named_activation, quadrature
from learnmech.theory.kernels import nngp_ntk
from learnmech.theory.quadrature import cross_expectations, ERROR_TOL

VARIANCES = (0.1, 1.0, 10.0, 100.0)  # 100: where unbounded activations take the recursion


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


_K = math.sqrt(2 / math.pi)

SCALAR = {  # (phi, phi'), written here with math, not with the jax table
    "gelu": (lambda x: x * _cdf(x), lambda x: _cdf(x) + x * math.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
    "gelu_tanh": (lambda x: 0.5 * x * (1 + math.tanh(_K * (x + 0.044715 * x**3))),
                  lambda x: 0.5 * (1 + math.tanh(_K * (x + 0.044715 * x**3)))
                  + 0.5 * x * (1 - math.tanh(_K * (x + 0.044715 * x**3)) ** 2) * _K * (1 + 0.134145 * x * x)),
    "tanh": (math.tanh, lambda x: 1 - math.tanh(x) ** 2),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x))),
    "silu": (lambda x: x * _sigmoid(x), lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x)))),
    "softplus": (lambda x: max(x, 0.0) + math.log1p(math.exp(-abs(x))), _sigmoid),
}


def _normal_mean(f, mean, sd):
    if sd == 0.0:
        return f(mean)
    lo, hi = mean - 12 * sd, mean + 12 * sd
    points = [0.0] if lo < 0.0 < hi else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        val, _ = integrate.quad(lambda v: f(v) * math.exp(-0.5 * ((v - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi)),
                                lo, hi, points=points, epsabs=1e-14, epsrel=1e-11, limit=500)
    return val


def _reference(f, q1, q2, c):
    """E[f(u) f(v)], v | u ~ N(c u / q1, q2 - c^2 / q1): nested adaptive quadrature (exact for c^2 = q1 q2)."""
    slope, sd = c / q1, math.sqrt(max(q2 - c * c / q1, 0.0))
    return _normal_mean(lambda u: f(u) * _normal_mean(f, slope * u, sd), 0.0, math.sqrt(q1))


def _pairs(q):
    """Parallel, antiparallel and a generic pair (q2 = q/2, correlation 0.6)."""
    return np.array([(q, q, q), (q, q, -q), (q, q / 2, 0.6 * math.sqrt(q * q / 2))])


def _relative_errors(dual, name, q):
    """``(|error| / |reference|, estimate / |reference|)`` per kernel, ``(2, pairs)`` each."""
    cases = _pairs(q)
    with jax.enable_x64(True):
        args = [jnp.asarray(cases[:, i]) for i in range(3)]
        got = np.asarray(dual(*args))  # (2, pairs)
        est = np.asarray(dual.error(*args)) if dual.error is not None else np.zeros_like(got)
    ref = np.array([[_reference(f, *case) for case in cases] for f in SCALAR[name]])
    return np.abs(got - ref) / np.abs(ref), est / np.abs(ref)


@pytest.mark.parametrize("q", VARIANCES)
def test_exact_gelu_closed_forms_match_quadrature(q):
    # Closed forms derived in theory/dual.py (Stein's lemma and Gaussian tilts); agreement to rounding.
    err, _ = _relative_errors(gelu, "gelu", q)
    assert err.max() < 1e-11, err  # 3e-13 measured at q = 100


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "gelu_tanh", "silu", "softplus"])
def test_quadrature_meets_its_tolerance_with_an_honest_estimate(name):
    dual = named_activation(name).dual
    for q in VARIANCES:
        err, est = _relative_errors(dual, name, q)
        assert err.max() < ERROR_TOL, (q, err)  # 2e-11 or better measured (bench/kernel_accuracy.py)
        assert est.max() < ERROR_TOL, (q, est)
        # The estimate tracks the error (within 2x in the bench table); 1e-13 is the reference's own floor.
        assert np.all(err <= 10 * est + 1e-13), (q, err, est)


def test_old_gauss_hermite_grid_misses_the_tolerance_that_the_polar_rule_meets():
    # The reason for the polar rule: 24-point Gauss-Hermite is off by ~1e-3 at q = 10 for tanh.
    from learnmech.theory.dual import gauss_hermite

    err, _ = _relative_errors(gauss_hermite(jnp.tanh, 24), "tanh", 10.0)
    assert err.max() > 1e-4


def test_estimate_flags_a_function_the_rule_does_not_resolve():
    # sin is smooth but oscillates away from 0: converged at q = 1, not at q = 10, and the estimate says so.
    # Closed forms: E[sin u sin v] = e^{-(q1+q2)/2} sinh(c), E[cos u cos v] = e^{-(q1+q2)/2} cosh(c).
    dual = quadrature(jnp.sin)  # phi' by jax.grad
    for q, converged in ((1.0, True), (10.0, False)):
        q1, q2, c = q, 0.6 * q, 0.5 * math.sqrt(0.6) * q
        ref = math.exp(-(q1 + q2) / 2) * np.array([math.sinh(c), math.cosh(c)])
        with jax.enable_x64(True):
            got = np.asarray(dual(jnp.float64(q1), jnp.float64(q2), jnp.float64(c)))
            est = np.asarray(dual.error(jnp.float64(q1), jnp.float64(q2), jnp.float64(c)))
        err = np.abs(got - ref) / np.abs(ref)
        if converged:
            assert err.max() < 1e-10 and (est / np.abs(ref)).max() < 1e-10, (err, est)
        else:
            assert err.max() > ERROR_TOL  # ~4e-8 measured
            np.testing.assert_allclose(est / np.abs(ref), err, rtol=0.5)  # the estimate is the error


@pytest.mark.parametrize("name", ["tanh", "gelu"])
def test_parallel_and_antiparallel_pairs_are_ordinary_points(name):
    """At |rho| = 1 the value is the limit from inside, and the gradient along the edge (what the
    fluctuation theory differentiates) is finite and equals finite differences."""
    fn = named_activation(name).dual.fn
    q1, q2 = 2.0, 0.7

    @jax.jit
    def along(a, b, sign):  # both kernels on the edge c = sign sqrt(q1 q2)
        return jnp.stack(fn(a, b, sign * jnp.sqrt(a * b)))

    jacobian = jax.jit(jax.jacrev(along, argnums=(0, 1)))
    with jax.enable_x64(True):
        for sign in (1.0, -1.0):
            edge = np.asarray(along(jnp.float64(q1), jnp.float64(q2), jnp.float64(sign)))
            inside = np.asarray(fn(jnp.float64(q1), jnp.float64(q2), jnp.float64(sign * (1 - 1e-12) * math.sqrt(q1 * q2))))
            assert np.all(np.isfinite(edge))
            np.testing.assert_allclose(edge, inside, rtol=1e-5)  # V' of the derivative kernel moves like sqrt(1 - rho)
            grads = np.stack([np.asarray(g) for g in jacobian(jnp.float64(q1), jnp.float64(q2), jnp.float64(sign))], -1)
            h = 1e-5
            fd = np.stack([(along(q1 + h, q2, sign) - along(q1 - h, q2, sign)) / (2 * h),
                           (along(q1, q2 + h, sign) - along(q1, q2 - h, sign)) / (2 * h)], -1)
            np.testing.assert_allclose(grads, fd, rtol=1e-6, atol=1e-9)


def test_gelu_is_exact_in_the_network_and_the_tanh_form_has_its_own_name():
    h = jnp.linspace(-4.0, 4.0, 33)
    exact = h * jax.scipy.stats.norm.cdf(h)
    np.testing.assert_allclose(named_activation("gelu")(h), exact, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(named_activation("gelu_tanh")(h), jax.nn.gelu(h, approximate=True), rtol=1e-6)
    assert np.max(np.abs(named_activation("gelu_tanh")(h) - exact)) > 1e-4  # they are different functions
    assert ACTIVATIONS["gelu"].dual.error is None and ACTIVATIONS["gelu_tanh"].dual.error is not None
    # A network's forward pass uses the same entry: one hidden unit, unit weights, no readout scaling.
    net = MLP((1, 1, 1), "gelu", "ntk", bias=False, dtype="float32")
    params = [{"w": jnp.ones((1, 1))}, {"w": jnp.ones((1, 1))}]
    np.testing.assert_allclose(net.apply(params, h[:, None])[:, 0], exact, rtol=1e-6, atol=1e-7)


def test_quadrature_gram_tiles_agree_and_are_symmetric():
    # A quadrature dual keeps tiles at 128; block_size 8 here makes overlapping tiles at n = 21.
    x = np.random.default_rng(0).standard_normal((21, 3))
    kw = dict(depth=1, activation="tanh", weight_var=1.5, bias_var=0.1, dtype=np.float64, block_size=8)
    sym = nngp_ntk(x, **kw)
    cross = nngp_ntk(x, x, **kw)  # every tile, no mirroring
    off = ~np.eye(21, dtype=bool)  # the symmetric Gram's diagonal is the exact one
    np.testing.assert_allclose(sym.ntk[off], cross.ntk[off], rtol=1e-12)
    np.testing.assert_allclose(sym.nngp[off], cross.nngp[off], rtol=1e-12)
    np.testing.assert_array_equal(sym.ntk, sym.ntk.T)
    np.testing.assert_allclose(np.diag(sym.ntk), np.diag(cross.ntk), rtol=1e-9)


def test_large_float32_gram_keeps_its_accuracy_and_symmetry():
    """n = 1100: three 512-tiles, the last moved back to overlap the second. float32 throughout is
    within 1e-6 (relative, every entry) of float64 for depth-3 ReLU: 4.7e-7 before the in-place Gram,
    5.7e-7 after, median 7e-8 both."""
    x = np.random.default_rng(5).standard_normal((1100, 100))
    kw = dict(depth=3, activation="relu", weight_var=2.0, bias_var=0.1)
    k64 = nngp_ntk(x, dtype=np.float64, **kw)
    k32 = nngp_ntk(x.astype(np.float32), **kw)
    assert k32.ntk.dtype == np.float32 and not k32.ntk.flags.writeable  # read-only views, no copy
    for name in ("nngp", "ntk"):
        g32, g64 = getattr(k32, name), getattr(k64, name)
        np.testing.assert_array_equal(g32, g32.T)
        assert np.max(np.abs(g32 - g64) / np.abs(g64)) < 1e-6
    cross = nngp_ntk(x[:700].astype(np.float32), x[700:].astype(np.float32), **kw)
    np.testing.assert_allclose(cross.ntk, k32.ntk[:700, 700:], rtol=1e-6)


def test_a_polynomial_is_integrated_to_rounding():
    # Isserlis: E[u^3 v^3] = 9 q1 q2 c + 6 c^3 and E[3u^2 3v^2] = 9 (q1 q2 + 2 c^2), for a user's phi
    # with phi' by jax.grad; large variances and a smooth function with no feature at 0 are no harder.
    dual = quadrature(lambda h: h**3)
    with jax.enable_x64(True):
        for q1, q2, c in ((1.3, 0.7, 0.4), (20.0, 5.0, -9.0)):
            v, dv = dual(jnp.float64(q1), jnp.float64(q2), jnp.float64(c))
            assert float(v) == pytest.approx(9 * q1 * q2 * c + 6 * c**3, rel=1e-11)
            assert float(dv) == pytest.approx(9 * (q1 * q2 + 2 * c * c), rel=1e-11)


def _cross_reference(f, g, q1, q2, c):
    """E[f(u) g(v)] by the nested adaptive quadrature of :func:`_reference`."""
    slope, sd = c / q1, math.sqrt(max(q2 - c * c / q1, 0.0))
    return _normal_mean(lambda u: f(u) * _normal_mean(g, slope * u, sd), 0.0, math.sqrt(q1))


def test_cross_expectations_of_different_functions_match_nested_quadrature():
    # The four-point moments of the kernel fluctuations: E[g(u) h(v)] with g != h, including ReLU's
    # derivative (a jump at 0, whose lower radial tail the rule cuts at ~e^{-16}) and tanh products.
    # Tolerance 1e-8 relative to the Cauchy-Schwarz scale sqrt(E g(u)^2 E h(v)^2) (the module's ERROR_TOL).
    relu, step = (lambda x: max(x, 0.0)), (lambda x: 1.0 if x > 0 else 0.0)
    pairs = [(lambda u: jnp.maximum(u, 0.0) ** 3, lambda u: jnp.maximum(u, 0.0), lambda x: relu(x) ** 3, relu),
             (lambda u: jnp.maximum(u, 0.0) ** 2 * (u > 0), lambda u: (u > 0) * 1.0, lambda x: relu(x) ** 2 * step(x), step),
             (lambda u: jnp.tanh(u) ** 3, jnp.tanh, lambda x: math.tanh(x) ** 3, math.tanh),
             (lambda u: jnp.tanh(u) * (1 - jnp.tanh(u) ** 2), lambda u: 1 - jnp.tanh(u) ** 2,
              lambda x: math.tanh(x) * (1 - math.tanh(x) ** 2), lambda x: 1 - math.tanh(x) ** 2)]
    cases = ((2.0, 2.0, 0.8), (1.3, 0.7, -0.5), (3.0, 3.0, 3.0))
    with jax.enable_x64(True):
        got = cross_expectations([(f, g) for f, g, _, _ in pairs], *(jnp.asarray([cs[i] for cs in cases]) for i in range(3)))
    for (_, _, f, g), values in zip(pairs, got):
        for (q1, q2, c), value in zip(cases, np.asarray(values)):
            scale = math.sqrt(_cross_reference(f, f, q1, q1, q1) * _cross_reference(g, g, q2, q2, q2))
            assert abs(value - _cross_reference(f, g, q1, q2, c)) <= ERROR_TOL * scale, (q1, q2, c)
