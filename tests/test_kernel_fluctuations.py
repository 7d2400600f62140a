"""The predicted finite-width error constant of the NNGP and the NTK (theory/kernel_fluctuations.py).

References used here: the analytic kernels of theory/kernels.py (the mean recursion must end on
them), central finite differences of the dual map (the Jacobian), and Monte Carlo over finite
random networks written in this file (the constant itself).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnmech.theory.dual import get_activation
from learnmech.theory.kernel_fluctuations import kernel_fluctuations, mean_kernels
from learnmech.theory.kernels import nngp_ntk

SIGMA_W2 = 2.0  # He initialisation, the claim's setting


def _inputs() -> np.ndarray:
    """Four inputs in R^3: a generic pair, a parallel pair (x, x/2: rho = 1 at every layer of a ReLU
    network, locked units of unequal variance) and an antiparallel one (x, -x)."""
    g = np.random.default_rng(7).standard_normal((2, 3))
    x0, x1 = math.sqrt(3) * g / np.linalg.norm(g, axis=1, keepdims=True)
    return np.stack([x0, 0.5 * x0, x1, -x0])


@pytest.mark.parametrize("activation, depth, bias_var", [("relu", 3, 0.0), ("erf", 2, 0.3)])
def test_mean_kernels_end_on_the_analytic_nngp_and_ntk(activation, depth, bias_var):
    x = _inputs()
    means = mean_kernels(x, depth=depth, activation=activation, weight_var=SIGMA_W2, bias_var=bias_var)
    ref = nngp_ntk(x, depth=depth, activation=activation, weight_var=SIGMA_W2, bias_var=bias_var, dtype=np.float64)
    np.testing.assert_allclose(means.nngp[-1], ref.nngp, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(means.ntk[-1], ref.ntk, rtol=1e-10, atol=1e-12)


def _central(f, point, i, h=1e-5):
    """Central difference of ``f(*point)`` in argument ``i`` (error O(h^2) ~ 1e-10 here)."""
    up, down = list(point), list(point)
    up[i] += h
    down[i] -= h
    return (f(*up) - f(*down)) / (2 * h)


def test_autodiff_rows_match_finite_differences():
    """The Jacobian rows the recursion uses, against central differences of the dual map: a generic
    pair (all three partials) and a locked pair moved along the PSD boundary (c = sqrt(q_a q_b))."""
    from learnmech.theory.kernel_fluctuations import _pair_jacobians

    qa, qb, c = 1.3, 0.7, 0.4
    with jax.enable_x64(True):
        for name in ("relu", "erf"):
            fn = get_activation(name).fn

            def dual(a, b, cc):
                return np.asarray(fn(jnp.float64(a), jnp.float64(b), jnp.float64(cc)), np.float64)  # (2,)

            def edge(a, b):
                return dual(a, b, math.sqrt(a * b))

            def rows(cc, locked):
                args = (jnp.asarray([t]) for t in (qa, qb, cc, 1.0, locked))
                return np.asarray(_pair_jacobians(fn, *args))[:, 0]  # (2 outputs, 3)

            fd = np.stack([_central(dual, (qa, qb, c), i) for i in range(3)], axis=-1)
            np.testing.assert_allclose(rows(c, False), fd, rtol=1e-5, atol=1e-7, err_msg=name)
            fd = np.stack([_central(edge, (qa, qb), 0), _central(edge, (qa, qb), 1), np.zeros(2)], axis=-1)
            locked = rows(math.sqrt(qa * qb), True)
            np.testing.assert_allclose(locked, fd, rtol=1e-5, atol=1e-7, err_msg=f"{name}, locked")


def _networks(x, depth: int, width: int, seeds: int, seed: int):
    """Empirical NNGP (readout-integrated, sigma_w^2 z.z/n) and NTK (J J^T by jax.jacrev) of ``seeds``
    ReLU networks in the NTK parameterisation, weights N(0, 1) scaled by sigma_w / sqrt(fan_in)."""
    d, s = x.shape[1], math.sqrt(SIGMA_W2)
    fans = (d,) + (width,) * (depth - 1)  # fan-ins of the hidden layers' weights

    def features(params, x):
        z = x
        for w, fan in zip(params[:-1], fans):
            z = jax.nn.relu(s / math.sqrt(fan) * z @ w.T)
        return z

    def output(params, x):
        return s / math.sqrt(width) * features(params, x) @ params[-1]

    def kernels(key):
        keys = jax.random.split(key, depth + 1)
        shapes = [(width, fan) for fan in fans] + [(width,)]
        params = [jax.random.normal(k, sh, jnp.float32) for k, sh in zip(keys, shapes)]
        z = features(params, x)
        jac = jax.jacrev(output)(params, x)
        flat = jnp.concatenate([j.reshape(x.shape[0], -1) for j in jac], axis=1)
        return SIGMA_W2 / width * z @ z.T, flat @ flat.T

    keys = jax.random.split(jax.random.key(seed), seeds)
    batched = jax.jit(jax.vmap(kernels))  # compiled once, run on blocks of 100 networks
    out = [batched(keys[i:i + 100]) for i in range(0, seeds, 100)]
    return tuple(np.concatenate([np.asarray(o[i], np.float64) for o in out]) for i in range(2))


@pytest.mark.parametrize("depth", [1, 2])
def test_constant_matches_monte_carlo_over_networks(depth):
    """RMS over 600 ReLU networks of width 256 of ||K_hat - K||_F / ||K||_F, times sqrt(256), is c.

    Tolerance 8%: the RMS over 600 seeds has a relative standard error of ~2% here (measured from
    the spread of the squared errors, and asserted below), the neglected terms are O(depth / width)
    (< 1% at depth 2 against the exact kernel chain at widths 256-4096); the theory's quadratures are exact
    to 1e-8.
    """
    x, width, seeds = _inputs(), 256, 600
    c = kernel_fluctuations(x, depth=depth, activation="relu", weight_var=SIGMA_W2)
    ref = nngp_ntk(x, depth=depth, activation="relu", weight_var=SIGMA_W2, dtype=np.float64)
    nngp, ntk = _networks(jnp.asarray(x, jnp.float32), depth, width, seeds, seed=depth)
    for name, k_hat, k, predicted in (("nngp", nngp, ref.nngp, c.nngp), ("ntk", ntk, ref.ntk, c.ntk)):
        err2 = (np.linalg.norm(k_hat - k, axis=(1, 2)) / np.linalg.norm(k)) ** 2  # (seeds,)
        measured = math.sqrt(err2.mean() * width)
        standard_error = err2.std(ddof=1) / math.sqrt(seeds) / (2 * err2.mean())
        assert standard_error < 0.03, (name, standard_error)
        assert measured == pytest.approx(predicted, rel=0.08), (name, depth, measured, predicted)


def test_one_layer_relu_on_orthogonal_inputs_matches_the_closed_form():
    """Three orthogonal inputs, one hidden ReLU layer, sigma_w^2 = 2: K^0 = 2 I and every moment is
    a half-normal one. With u ~ N(0, q = 2), E relu^2 = q/2, E relu^4 = 3q^2/2, E relu = sqrt(q/2pi):
    one unit's Var(2 relu_a^2) = 4 (3q^2/2 - q^2/4) = 20, Var(2 relu_a relu_b) = 4 (1 - 1/pi^2);
    K^1 = 2 on the diagonal, 2/pi off it. NTK: the unit's summand is 2 (relu_a relu_b + w^2 1[u_a > 0]
    1[u_b > 0] K^0_ab) (w the readout weight), so on the diagonal Var = 4 (E[(relu^2 + q w^2 1)^2] - 4)
    = 4 (6 + 4 + 6 - 4) = 48 and Theta = 4; off the diagonal K^0_ab = 0 and it is the NNGP's.
    Tolerance 1e-8: the four-point expectations are quadratures of stated tolerance 1e-8 (ReLU's
    derivative jumps at 0, which leaves a lower-tail error of about 1e-7 at worst per moment)."""
    c = kernel_fluctuations(math.sqrt(3.0) * np.eye(3), depth=1, activation="relu", weight_var=SIGMA_W2)
    off = 4 * (1 - 1 / math.pi**2)
    nngp = math.sqrt((3 * 20 + 6 * off) / (3 * 4 + 6 * (2 / math.pi) ** 2))
    ntk = math.sqrt((3 * 48 + 6 * off) / (3 * 16 + 6 * (2 / math.pi) ** 2))
    assert c.nngp == pytest.approx(nngp, rel=1e-8)  # 2.37740
    assert c.ntk == pytest.approx(ntk, rel=1e-7)  # 1.8119
    assert c.nngp_layers == pytest.approx([c.nngp**2])
