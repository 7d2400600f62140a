"""Analytic NNGP/NTK kernels against quadrature, closed forms, Monte Carlo and wide networks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from learnmech.atlas.metrics import log_slope
from learnmech.nets import MLP
from learnmech.theory.dual import (
    ACTIVATIONS,
    arc_cosine,
    arc_cosine_j,
    erf,
    gauss_hermite,
    get_activation,
    identity,
    named_activation,
)
from learnmech.theory.kernels import layer_coefficients, nngp_ntk


def _gauss_expectation(f, q1, q2, c):
    """E[f(u, v)] for (u, v) ~ N(0, [[q1, c], [c, q2]]) by scipy's adaptive 2-D quadrature.

    Whitened: u = sqrt(q1) z1, v = sqrt(q2)(rho z1 + sqrt(1 - rho^2) z2), z ~ N(0, I). The plane is
    cut along u = 0 and v = 0 so that each piece of a ReLU-like integrand is smooth.
    """
    rho = c / math.sqrt(q1 * q2)
    perp = math.sqrt(max(1 - rho * rho, 0.0))
    big = 12.0

    def integrand(z2, z1):
        u = math.sqrt(q1) * z1
        v = math.sqrt(q2) * (rho * z1 + perp * z2)
        return f(u, v) * math.exp(-(z1 * z1 + z2 * z2) / 2) / (2 * math.pi)

    def cut(z1):  # v = 0 at z2 = -rho z1 / perp
        return min(max(-rho * z1 / perp, -big), big)

    total = 0.0
    for lo, hi in ((-big, 0.0), (0.0, big)):
        for g, h in ((lambda z1: -big, cut), (cut, lambda z1: big)):
            val, _ = integrate.dblquad(integrand, lo, hi, g, h, epsabs=1e-14, epsrel=1e-12)
            total += val
    return total


CASES = [(1.3, 0.7, 0.4), (2.0, 0.5, -0.9), (1.0, 1.0, 0.999), (0.8, 1.7, 0.0)]


@pytest.mark.parametrize("order", [0, 1, 2])
@pytest.mark.parametrize("q1,q2,c", CASES)
def test_arc_cosine_j_is_cho_saul(order, q1, q2, c):
    # Cho & Saul 2009, eq. (2)-(3): E[step(u) step(v) u^n v^n] = (q1 q2)^{n/2} J_n(theta) / (2 pi).
    # Float64 quadrature at 1e-12: agreement to 1e-9 relative is float64 precision for this check.
    theta = math.acos(c / math.sqrt(q1 * q2))
    ref = _gauss_expectation(lambda u, v: (u > 0) * (v > 0) * (u * v) ** order, q1, q2, c)
    got = (q1 * q2) ** (order / 2) * float(arc_cosine_j(order, jnp.float64(theta))) / (2 * math.pi)
    assert got == pytest.approx(ref, rel=1e-8, abs=1e-11)


@pytest.mark.parametrize("a,b,order", [(1, 0, 1), (1, -0.1, 1), (1, 1, 1), (1, -1, 1), (1, 0, 2), (0.5, 2.0, 2)])
@pytest.mark.parametrize("q1,q2,c", CASES[:3])
def test_two_sided_arc_cosine_family_matches_quadrature(a, b, order, q1, q2, c):
    def phi(u):
        return a * max(u, 0.0) ** order + b * max(-u, 0.0) ** order

    def dphi(u):
        return order * (a * max(u, 0.0) ** (order - 1) if u > 0 else -b * max(-u, 0.0) ** (order - 1))

    with jax.enable_x64(True):
        v, dv = arc_cosine(a, b, order)(jnp.float64(q1), jnp.float64(q2), jnp.float64(c))
    assert float(v) == pytest.approx(_gauss_expectation(lambda x, y: phi(x) * phi(y), q1, q2, c), rel=1e-8, abs=1e-11)
    assert float(dv) == pytest.approx(_gauss_expectation(lambda x, y: dphi(x) * dphi(y), q1, q2, c), rel=1e-7, abs=1e-10)


@pytest.mark.parametrize("q1,q2,c", CASES)
def test_erf_dual_matches_quadrature_and_gauss_hermite(q1, q2, c):
    # Williams 1997 closed forms. Gauss-Hermite with 40 points converges to ~1e-6 here (erf of a variance-2
    # input is steep on the scale of the nodes, and exp(-u^2 - v^2) too), so it is held to 1e-5.
    ref = _gauss_expectation(lambda u, v: math.erf(u) * math.erf(v), q1, q2, c)
    dref = _gauss_expectation(lambda u, v: 4 / math.pi * math.exp(-u * u - v * v), q1, q2, c)
    args = [jnp.float64(a) for a in (q1, q2, c)]
    with jax.enable_x64(True):
        v, dv = erf(*args)
        gv, gdv = gauss_hermite(jax.scipy.special.erf, points=40)(*args)
    assert float(v) == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert float(dv) == pytest.approx(dref, rel=1e-9)
    assert float(gv) == pytest.approx(ref, rel=1e-5, abs=1e-9)
    assert float(gdv) == pytest.approx(dref, rel=1e-5)


def test_gauss_hermite_is_exact_for_polynomials():
    # E[u^3 v^3] = 9 q1 q2 c + 6 c^3 (Isserlis); E[3u^2 3v^2] = 9 (q1 q2 + 2 c^2). Degree 6 < 2 * 8 points.
    q1, q2, c = 1.3, 0.7, 0.4
    with jax.enable_x64(True):
        v, dv = gauss_hermite(lambda h: h**3, points=8)(jnp.float64(q1), jnp.float64(q2), jnp.float64(c))
    assert float(v) == pytest.approx(9 * q1 * q2 * c + 6 * c**3, rel=1e-12)
    assert float(dv) == pytest.approx(9 * (q1 * q2 + 2 * c * c), rel=1e-12)


def test_float32_angle_is_accurate_to_float32():
    # The float32 polynomial arccos (A&S 4.4.46) against float64 arctan2, over the whole range.
    rho = np.linspace(-1, 1, 20001)
    with jax.enable_x64(True):
        v64, d64 = arc_cosine()(jnp.ones(1), jnp.ones(1), jnp.asarray(rho))
    v32, d32 = arc_cosine()(jnp.ones(1, jnp.float32), jnp.ones(1, jnp.float32), jnp.asarray(rho, jnp.float32))
    assert np.max(np.abs(np.asarray(v32) - np.asarray(v64))) < 1e-6
    assert np.max(np.abs(np.asarray(d32) - np.asarray(d64))) < 1e-6


def test_deep_linear_network_kernels_in_closed_form():
    # Identity activation, NTK parameterisation, L hidden layers: every layer multiplies by sigma^2,
    # K = s^{2(L+1)} x.x'/d, and each of the L + 1 weight matrices contributes K to the NTK.
    x = np.random.default_rng(0).standard_normal((7, 5))
    for depth in range(4):
        k = nngp_ntk(x, depth=depth, activation="identity", weight_var=1.7, dtype=np.float64)
        gram = 1.7 ** (depth + 1) * x @ x.T / 5
        np.testing.assert_allclose(k.nngp, gram, rtol=1e-13)
        np.testing.assert_allclose(k.ntk, (depth + 1) * gram, rtol=1e-13)


def _jacobian_ntks(net, seeds, x):
    """``Theta = J J^T`` of ``net``'s first output at ``net.init(key(s))`` for ``s < seeds``, ``(seeds, n, n)``,
    and the readout layer's input ``z``, ``(seeds, n, width)``. Plain autodiff, no layer structure: column
    ``i`` is ``J (J^T e_i)``, a reverse-mode then a forward-mode product (neural-tangents' implicit NTK,
    Novak et al. 2022, arXiv:2206.08720), so the ``(n, parameters)`` Jacobian is never stored. One
    compiled program, called once per seed (vmapped over seeds, XLA:CPU's batched matmuls run ~10x slower)."""
    n = x.shape[0]

    def one(seed):
        params = net.init(jax.random.key(seed))

        def f(p):
            return net.apply(p, x)[:, 0]  # (n,)

        _, pullback = jax.vjp(f, params)
        ntk = jax.lax.map(lambda e: jax.jvp(f, (params,), pullback(e))[1], jnp.eye(n, dtype=x.dtype))  # (n, n)
        return ntk, net.activations(params, x)[-2]

    compiled = jax.jit(one)
    ntks, z = zip(*(compiled(seed) for seed in range(seeds)))
    return np.stack(ntks), np.stack(z)


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


X = np.random.default_rng(1).standard_normal((6, 4))


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh"])
def test_ntk_parameterisation_matches_wide_networks(activation):
    # Depth 2, width 1024, 8 seeds: the finite-width error is O(1/sqrt(width * seeds)), ~1-1.5% for these
    # kernels; 5% is ~4 standard deviations. Biases start at zero with multiplier 1 (bias_var 0,
    # bias_tangent 1), as MLP's are.
    sigma2 = 2.0 if activation == "relu" else 1.5
    net = MLP((4, 1024, 1024, 1), activation, "ntk", sigma=math.sqrt(sigma2), dtype="float64")
    ref = nngp_ntk(X, depth=2, activation=activation, weight_var=sigma2, bias_tangent=1.0, dtype=np.float64)
    ntks, z = _jacobian_ntks(net, 8, X)  # (8, 6, 6), (8, 6, 1024)
    feats = sigma2 * np.einsum("sia,sja->sij", z, z) / z.shape[-1]  # the readout-conditional output covariance
    assert _rel(np.mean(ntks, 0), ref.ntk) < 0.05
    assert _rel(np.mean(feats, 0), ref.nngp) < 0.05


def test_standard_parameterisation_matches_a_finite_network():
    # SP: each weight's gradient is z itself, so the weight terms carry fan_in (Sohl-Dickstein et al. 2020).
    widths = (768, 1024)
    net = MLP((4, *widths, 1), "relu", "sp", sigma=math.sqrt(2.0), dtype="float64")
    ref = nngp_ntk(X, depth=2, weight_var=2.0, parameterization="standard", widths=widths, bias_tangent=1.0,
                   dtype=np.float64)
    ntks = _jacobian_ntks(net, 4, X)[0]
    assert _rel(np.mean(ntks, 0), ref.ntk) < 0.05  # ~1.5% measured; tolerance ~3 standard deviations


def test_finite_width_error_decays_as_width_to_the_minus_half():
    # Single-network relative error of the empirical NTK, averaged over 6 seeds per width; the
    # fluctuation is O(width^{-1/2}) (Hanin & Nica 2019, arXiv:1909.05989), slope -0.5 +/- 0.15.
    ref = nngp_ntk(X, depth=2, weight_var=2.0, dtype=np.float64).ntk
    widths = np.array([32, 128, 512, 1024])
    errs = []
    for w in widths:
        net = MLP((4, w, w, 1), "relu", "ntk", sigma=math.sqrt(2.0), bias=False, dtype="float64")
        errs.append(np.mean([_rel(ntk, ref) for ntk in _jacobian_ntks(net, 6, X)[0]]))
    slope = log_slope(widths, np.array(errs))
    assert -0.65 <= slope <= -0.35, (slope, errs)


def test_nngp_by_monte_carlo_over_gaussian_pre_activations():
    # One layer of the recursion by plain Monte Carlo: draw (u, v) from K^0 and average phi(u) phi(v).
    # 4e5 samples: standard error ~0.2% of the largest entry; tolerance 1% of it.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4))
    k0 = 1.5 * x @ x.T / 4 + 0.1
    z = rng.standard_normal((400_000, 3)) @ np.linalg.cholesky(k0).T
    for name, phi in (("relu", lambda h: np.maximum(h, 0)), ("tanh", np.tanh)):
        f = phi(z)
        mc = 2.0 * f.T @ f / len(z) + 0.3
        got = nngp_ntk(x, depth=1, activation=name, weight_var=(1.5, 2.0), bias_var=(0.1, 0.3), dtype=np.float64).nngp
        np.testing.assert_allclose(got, mc, rtol=0, atol=0.01 * np.abs(mc).max())


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 10),
    d=st.sampled_from([2, 5]),  # few input widths: each new shape is a compilation
    depth=st.integers(0, 3),
    activation=st.sampled_from(["relu", "erf", "abs", "leaky_relu:0.2", "identity", "requ"]),
    weight_var=st.floats(0.2, 3.0),
    bias_var=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_kernels_are_symmetric_and_positive_semidefinite(n, d, depth, activation, weight_var, bias_var, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)) * 2
    k = nngp_ntk(x, depth=depth, activation=activation, weight_var=weight_var, bias_var=bias_var,
                 dtype=np.float64, block_size=3)
    for g in (k.nngp, k.ntk):
        np.testing.assert_array_equal(g, g.T)
        eig = np.linalg.eigvalsh(g)
        assert eig.min() >= -1e-10 * max(eig.max(), 1e-300)


def test_tiles_dtypes_and_diagonal_agree():
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((23, 5)), rng.standard_normal((17, 5))
    kw = dict(depth=3, activation="relu", weight_var=2.0, bias_var=0.05, dtype=np.float64)
    full = nngp_ntk(np.vstack([x1, x2]), **kw)
    cross = nngp_ntk(x1, x2, block_size=4, **kw)
    np.testing.assert_allclose(cross.ntk, full.ntk[:23, 23:], rtol=1e-13)
    np.testing.assert_allclose(cross.nngp, full.nngp[:23, 23:], rtol=1e-13)
    sym = nngp_ntk(x1, block_size=5, **kw)
    np.testing.assert_allclose(sym.ntk, full.ntk[:23, :23], rtol=1e-13)
    diag = nngp_ntk(x1, diagonal=True, **kw)
    np.testing.assert_allclose(diag.ntk, np.diag(sym.ntk), rtol=1e-15)
    np.testing.assert_allclose(diag.nngp, np.diag(sym.nngp), rtol=1e-15)
    f32 = nngp_ntk(x1.astype(np.float32), block_size=7, **{**kw, "dtype": None})
    assert f32.ntk.dtype == np.float32
    # float32 rounding of rho near 1 moves the angle by ~sqrt(6e-8) ~ 2.5e-4 (theta ~ sqrt(2(1 - rho))),
    # which the depth-3 recursion carries into J_0: 1e-3 relative is float32's accuracy here.
    np.testing.assert_allclose(f32.ntk, sym.ntk, rtol=1e-3)


def test_named_activations_resolve():
    assert get_activation("linear") is identity
    assert get_activation("relu") is get_activation("relu")
    assert get_activation("tanh").name == "tanh"
    assert named_activation("leaky_relu:0.2") is named_activation("leaky_relu:0.2")  # one compilation per name
    assert get_activation("tanh") is ACTIVATIONS["tanh"].dual  # the table's dual, not a fresh quadrature
    with pytest.raises(ValueError, match="^activation: must be one of"):
        get_activation("swish")
    with pytest.raises(ValueError, match="^activation: bad leaky_relu slope"):
        named_activation("leaky_relu:steep")


@pytest.mark.parametrize("name", [*sorted(ACTIVATIONS), "leaky_relu:0.2"])
def test_each_activation_is_paired_with_its_own_dual(name):
    """The table's dual is the Gaussian expectation of the table's own function: plain Monte Carlo of
    ``fn`` and of its derivative (``jax.grad`` of ``fn``) at one 2 x 2 covariance, 2e5 draws."""
    entry = named_activation(name)
    q1, q2, c = 0.7, 1.1, 0.5  # quadrature duals are accurate to 1e-10 here (test_kernel_quadrature.py): MC noise dominates
    z = np.random.default_rng(4).standard_normal((200_000, 2)) @ np.linalg.cholesky([[q1, c], [c, q2]]).T
    with jax.enable_x64(True):
        u, v = jnp.asarray(z[:, 0]), jnp.asarray(z[:, 1])
        dfn = jax.vmap(jax.grad(entry.fn))
        samples = {"nngp": np.asarray(entry(u) * entry(v)), "ntk": np.asarray(dfn(u) * dfn(v))}
        got = dict(zip(("nngp", "ntk"), entry.dual(jnp.asarray(q1), jnp.asarray(q2), jnp.asarray(c))))
    for kind, x in samples.items():
        se = x.std() / math.sqrt(x.size)  # Monte Carlo standard error of the mean
        assert abs(float(got[kind]) - x.mean()) < 5 * se + 1e-3 * abs(x.mean()), (kind, float(got[kind]), x.mean(), se)


def test_weight_tangent_overrides_the_ntk_weight_terms():
    # Theta^1 = omega_1 V(K^0) + beta_1 + sigma_1^2 V'(K^0) (omega_0 x.x'/d + beta_0): the override is
    # the parameterisation's default when it equals it, and enters linearly otherwise.
    kw = dict(depth=1, activation="erf", weight_var=(1.5, 2.0), bias_var=0.0, bias_tangent=(0.0, 0.0), dtype=np.float64)
    base = nngp_ntk(X, **kw)
    np.testing.assert_array_equal(nngp_ntk(X, weight_tangent=(1.5, 2.0), **kw).ntk, base.ntk)
    first = nngp_ntk(X, weight_tangent=(1.0, 0.0), **kw).ntk  # only layer 0's weights trained, unit rate
    second = nngp_ntk(X, weight_tangent=(0.0, 1.0), **kw).ntk  # only the readout
    np.testing.assert_allclose(1.5 * first + 2.0 * second, base.ntk, rtol=1e-12)
    np.testing.assert_allclose(second, base.nngp / 2.0, rtol=1e-12)  # readout term = V(K^0) = K^1 / sigma_1^2
    with pytest.raises(ValueError, match="^weight_tangent:"):
        nngp_ntk(X, weight_tangent=(1.0, 2.0, 3.0), **kw)


@pytest.mark.parametrize("kwargs,match", [
    (dict(depth=-1), "^depth:"),
    (dict(weight_var=-1.0), "^weight_var:"),
    (dict(bias_var=(0.1, 0.2)), "^bias_var:"),
    (dict(parameterization="mup"), "^parameterization:"),
    (dict(parameterization="standard"), "^widths:"),
    (dict(block_size=0), "^block_size:"),
    (dict(dtype="int32"), "^dtype:"),
])
def test_bad_input_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nngp_ntk(X, **{"depth": 2, **kwargs})


def test_layer_coefficients_per_parameterisation():
    co = layer_coefficients(2, 10, weight_var=(1.0, 2.0, 3.0), bias_var=0.5)
    assert co.omega == (1.0, 2.0, 3.0) and co.beta == (0.5, 0.5, 0.5)
    sp = layer_coefficients(2, 10, weight_var=2.0, bias_var=0.0, parameterization="standard", widths=(64, 32))
    assert sp.omega == (10.0, 64.0, 32.0) and sp.beta == (0.0, 0.0, 0.0)
