"""The two limits of the linear scaling rule (theory/scaling_limits.py) against the exact second moments of SGD
on Gaussian linear regression (theory/sgd_linear.py), and the dense curvature-and-noise observable
(observe/curvature.py: noise_curvature) against numpy and the closed forms of linear regression."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnmech.observe.curvature import dense_hessian, noise_curvature
from learnmech.theory.scaling_limits import (first_limit, mean_square_limit_linear, noise_floor,
                                             noise_floor_slope, noise_limit, stability_limit)
from learnmech.theory.sgd_linear import b_crit_linear, b_simple_linear, sgd_second_moments

# A spectrum with lambda_max / h_Sigma = 1.64 for Sigma_0 = sigma^2 Lambda (h_Sigma = tr(L^2) / tr(L)), close to
# the ratio measured on the claim's network (2.8 / 1.75): the two candidate limits are far apart.
SPECTRUM = np.array([3.0, 2.0, 1.5, 1.0, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05])
H_SIGMA = float(np.sum(SPECTRUM**2) / np.sum(SPECTRUM))


def _growth(x: float, c: float, steps: int = 400) -> float:
    """``lambda . m`` after ``steps`` over after ``steps / 2`` of noiseless-label SGD at rate ``x``, batch ``x / c``
    (few enough steps that a diverging run stays below the recursion's cap of 1e30)."""
    m = sgd_second_moments(SPECTRUM, np.ones(SPECTRUM.size), 0.0, [x], x / c, steps)[:, 0] @ SPECTRUM
    return float(m[-1] / m[steps // 2])


@pytest.mark.parametrize("c", [5e-4, 5e-3, 5e-2])
def test_mean_square_limit_is_where_the_exact_second_moments_start_to_grow(c):
    x = mean_square_limit_linear(SPECTRUM, c)
    assert _growth(0.98 * x, c) < 1.0 < _growth(1.02 * x, c)  # the recursion of sgd_linear, independently coded
    assert x < 2 / SPECTRUM.max() - c  # never beyond the mean-dynamics limit


def test_mean_square_limit_is_the_top_eigenvalue_limit_not_the_noise_weighted_one():
    # At the claim's eta0 / B0 = 5e-4 the limit is 2 / lambda_max to 0.2%, and 2 / h_Sigma (1.6x further) is
    # deep in the divergent region: second moments grow by orders of magnitude per thousand steps there.
    x = mean_square_limit_linear(SPECTRUM, 5e-4)
    assert x == pytest.approx(2 / SPECTRUM.max(), rel=2e-3)
    assert 2 / H_SIGMA / x > 1.5
    assert _growth(0.9 * 2 / H_SIGMA, 5e-4, steps=40) > 1e6


def test_noise_floor_drifts_with_k_at_the_noise_weighted_curvature():
    """Stationary excess of the exact recursion against :func:`noise_floor`, and its slope in ``k eta0``."""
    c, sigma, steps = 1e-4, 1.0, 20_000
    xs = np.array([0.01, 0.04])  # k = 1 and k = 4 at eta0 = 0.01
    exact = [0.5 * sgd_second_moments(SPECTRUM, np.zeros(SPECTRUM.size), sigma, [x], x / c, steps)[-1, 0] @ SPECTRUM
             for x in xs]
    additive = sigma**2 * SPECTRUM  # Sigma_0 = sigma^2 Lambda; the multiplicative part is O(c tr L) = 1e-3 of it
    floors = [noise_floor(x, x / c, SPECTRUM, additive) for x in xs]
    np.testing.assert_allclose(exact, floors, rtol=2e-3)
    slope = np.log(exact[1] / exact[0]) / (xs[1] - xs[0])  # d log floor / d(k eta0), by a finite difference
    assert slope == pytest.approx(noise_floor_slope(SPECTRUM, additive), rel=0.05)  # = h_Sigma / 2
    assert noise_floor_slope(SPECTRUM, additive) == pytest.approx(H_SIGMA / 2)


def test_noise_floor_is_infinite_beyond_the_top_eigenvalue_limit():
    assert noise_floor(2 / SPECTRUM.max() * 1.001, 10, SPECTRUM, SPECTRUM) == np.inf
    assert np.isfinite(noise_floor(2 / SPECTRUM.max() * 0.999, 10, SPECTRUM, SPECTRUM))


def test_limits_and_the_first_of_them():
    assert float(stability_limit(0.004, 2.5)) == pytest.approx(200.0)
    assert float(noise_limit(2048.0, 8)) == 256.0
    assert first_limit({"noise": 256.0, "stability": 200.0}) == ("stability", 200.0)
    assert first_limit({"noise": 12.9, "stability": 21.6}) == ("noise", 12.9)
    assert first_limit({"noise": np.nan, "stability": 21.6}) == ("stability", 21.6)
    name, k = first_limit({"noise": np.nan, "stability": np.inf})
    assert name == "none" and np.isnan(k)


# ---------------------------------------------------------------------------------------------
# The dense observable


def _linear_task(n: int, d: int, seed: int, spectrum=None, noise: float = 0.5):
    rng = np.random.default_rng(seed)
    lam = np.ones(d) if spectrum is None else np.asarray(spectrum)
    X = rng.standard_normal((n, d)) * np.sqrt(lam)  # x ~ N(0, diag(lam))
    Y = noise * rng.standard_normal((n, 1))  # w* = 0
    return X, Y


def _loss(params, batch):
    x, y = batch
    return 0.5 * jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def test_noise_curvature_matches_numpy_on_a_finite_set():
    X, Y = _linear_task(300, 4, seed=0)
    params = {"w": jnp.asarray([[0.3], [-0.2], [0.5], [0.1]]), "b": jnp.asarray([0.05])}
    nc = noise_curvature(_loss, params, (jnp.asarray(X), jnp.asarray(Y)), (jnp.asarray(X[:100]), jnp.asarray(Y[:100])))
    # numpy reference, in ravel order (b first: leaves are sorted by key)
    Z = np.hstack([np.ones((300, 1)), X])  # (n, P): d f / d (b, w)
    theta = np.concatenate([[0.05], [0.3, -0.2, 0.5, 0.1]])
    g = Z * (Z @ theta - Y[:, 0])[:, None]  # per-example gradients (n, P)
    G, S = g.mean(0), np.cov(g.T, bias=True)
    H, H_all = Z[:100].T @ Z[:100] / 100, Z.T @ Z / 300  # the traces use the first; lambda_max and G^T H G all
    assert np.asarray(dense_hessian(_loss, params, (jnp.asarray(X[:100]), jnp.asarray(Y[:100])))) == pytest.approx(H)
    expected = {"sharpness": np.linalg.eigvalsh(H_all)[-1], "trace_h": np.trace(H), "trace_h_sigma": np.sum(H * S),
                "trace_sigma": np.trace(S), "g_h_g": G @ H_all @ G, "grad_sq_norm": G @ G}
    for name, value in expected.items():
        assert float(getattr(nc, name)) == pytest.approx(value, rel=1e-10), name
    # Sigma from an i.i.d. sample (unbiased, 1 / (n - 1)); G stays the population's
    sample = (jnp.asarray(X[50:250]), jnp.asarray(Y[50:250]))
    nc = noise_curvature(_loss, params, (jnp.asarray(X), jnp.asarray(Y)), (jnp.asarray(X[:100]), jnp.asarray(Y[:100])),
                         sample)
    S = np.cov(g[50:250].T, ddof=1)
    assert float(nc.trace_h_sigma) == pytest.approx(np.sum(H * S), rel=1e-10)
    assert float(nc.grad_sq_norm) == pytest.approx(G @ G, rel=1e-10)


def test_noise_curvature_recovers_the_closed_form_noise_scales_of_linear_regression():
    # x ~ N(0, diag(lam)), y = w*.x + sigma xi: B_noise and B_simple in closed form (theory/sgd_linear.py);
    # 200k examples: the sample moments are within ~1% (fourth moments of Gaussians), so 4%.
    lam, err = np.array([2.0, 1.0, 0.5, 0.25]), np.array([0.4, -0.3, 0.2, 0.5])
    X, Y = _linear_task(200_000, 4, seed=1, spectrum=lam)
    params = {"w": jnp.asarray(err[:, None]), "b": jnp.zeros(1)}  # w - w* = err; the bias is at its optimum
    data = (jnp.asarray(X), jnp.asarray(Y))
    no_bias = lambda p, batch: _loss({"w": p, "b": jnp.zeros(1)}, batch)  # noqa: E731
    nc = noise_curvature(no_bias, params["w"], data, data)
    assert float(nc.b_noise) == pytest.approx(float(b_crit_linear(lam, err, 0.5)), rel=0.04)
    assert float(nc.b_simple) == pytest.approx(float(b_simple_linear(lam, err, 0.5)), rel=0.04)
    assert float(nc.sharpness) == pytest.approx(2.0, rel=0.02)
    # Sigma = L e e^T L + (e^T L e + sigma^2) L, so tr(H Sigma) / tr(Sigma) in closed form:
    e = err
    tr_hs = e @ np.diag(lam**3) @ e + (e @ (lam * e) + 0.25) * np.sum(lam**2)
    tr_s = e @ np.diag(lam**2) @ e + (e @ (lam * e) + 0.25) * np.sum(lam)
    assert float(nc.noise_weighted_curvature) == pytest.approx(tr_hs / tr_s, rel=0.04)


def test_dense_hessian_of_a_network_matches_jax_hessian():
    """HVP columns against ``jax.hessian`` (reverse over reverse) of the raveled loss, and the top eigenvalue."""
    from jax.flatten_util import ravel_pytree

    from learnmech.nets import MLP

    net = MLP((3, 6, 1), "tanh", "sp", dtype="float64")
    params = net.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (64, 3))
    batch = (x, jnp.sin(x[:, :1]))
    loss = lambda p, b: 0.5 * jnp.mean((net.apply(p, b[0]) - b[1]) ** 2)  # noqa: E731
    flat, unravel = ravel_pytree(params)
    reference = np.asarray(jax.jit(jax.hessian(lambda v: loss(unravel(v), batch)))(flat))  # (P, P)
    np.testing.assert_allclose(np.asarray(dense_hessian(loss, params, batch)), reference, rtol=1e-10, atol=1e-12)
    top = np.linalg.eigvalsh(reference)[-1]
    assert float(noise_curvature(loss, params, batch, batch).sharpness) == pytest.approx(top, rel=1e-10)
