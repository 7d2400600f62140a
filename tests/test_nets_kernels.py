"""MLP.kernels: the analytic NNGP and NTK of a network exactly as it is parameterised.

References, each computed by code independent of the kernel recursion:
- a one-layer MLP is linear in its parameters, so its tangent kernel does not fluctuate: the
  empirical NTK (observe/ntk.py) and the exact readout covariance (observe/nngp.py) of any one
  initialisation equal the analytic kernels to rounding, for every parameterisation;
- with hidden layers, the NNGP is compared with the Monte Carlo output covariance
  ``E_init[f(x) f(x')]`` over many initialisations (observe/nngp.py ``empirical_nngp``) and the NTK
  with the empirical NTK of wide networks averaged over initialisations, each entry within
  ``Z_MC`` standard errors computed on the line from the spread of the Monte Carlo batches (the
  finite-width bias, ``O(depth / width)`` relative, is far below one standard error here).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnmech.nets import MLP
from learnmech.observe import empirical_ntk, readout_nngp
from learnmech.observe.nngp import empirical_nngp

Z_MC = 5.0  # Monte Carlo tolerance in standard errors (two-sided normal tail 6e-7 per entry)
D_IN = 4


def _inputs(n: int = 5) -> np.ndarray:
    """Inputs ``(n, D_IN)`` with ``|x|^2 / D_IN`` from 0.64 to 1.44: unequal norms, so the kernels'
    ``q1 != q2`` paths are exercised, and pre-activation variances <= 1.44 sigma^2 (the tanh dual's
    quadrature is accurate to 1e-10 at any variance up to 100: tests/test_kernel_quadrature.py)."""
    g = np.random.default_rng(7).standard_normal((n, D_IN))
    radius = math.sqrt(D_IN) * np.linspace(0.8, 1.2, n)[:, None]
    return radius * g / np.linalg.norm(g, axis=1, keepdims=True)


def _upper(k):
    return np.asarray(k)[np.triu_indices(k.shape[0])]


@pytest.mark.parametrize("parameterization, base_width", [("sp", None), ("ntk", None), ("mup-sgd", 2), ("mup-adam", 8)])
def test_one_layer_kernels_are_exact(parameterization, base_width):
    """No hidden layer: NNGP = (c s)^2 x.x' and NTK = c^2 m_w x.x' + m_b at any width (float64 rounding)."""
    net = MLP((D_IN, 3), "tanh", parameterization, base_width=base_width, sigma=1.5, dtype="float64")
    with jax.enable_x64(True):
        x = jnp.asarray(_inputs())
        params = net.init(jax.random.key(0))
        ntk = empirical_ntk(net.apply, params, x, lr_multipliers=net.lr_multipliers())
        nngp = readout_nngp(net, params, x)
        k = net.kernels(np.asarray(x))
    np.testing.assert_allclose(k.ntk, ntk, rtol=1e-12)
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-12)


# (activation, hidden layers, parameterisation, base width): relu and erf/tanh at 1 and 3 hidden
# layers, each under a different parameterisation so that the scalings are checked too.
DEEP = [("relu", 1, "ntk", None), ("relu", 3, "sp", None), ("erf", 1, "mup-sgd", 128), ("tanh", 3, "ntk", None)]


def _net(activation, hidden, parameterization, base_width, width, d_out=1):
    sigma = {"relu": math.sqrt(2.0), "erf": 1.5, "tanh": 1.0}[activation]  # tanh: q <= 1.44 (see _inputs)
    return MLP((D_IN, *(width,) * hidden, d_out), activation, parameterization, base_width=base_width, sigma=sigma,
               bias=True, dtype="float32")


@pytest.mark.parametrize("activation, hidden, parameterization, base_width", DEEP)
def test_nngp_matches_monte_carlo_over_inits(activation, hidden, parameterization, base_width):
    """E_init[f(x) f(x')] over 256 networks of width 256 with 64 outputs, in 16 batches of 16 inits."""
    net = _net(activation, hidden, parameterization, base_width, width=256, d_out=64)
    x = _inputs()
    batches = jax.random.split(jax.random.key(1), (16, 16))
    mc = np.array([_upper(empirical_nngp(net.apply, net.init, keys, jnp.asarray(x, jnp.float32))) for keys in batches])
    mean, se = mc.mean(axis=0), mc.std(axis=0, ddof=1) / math.sqrt(len(mc))  # (entries,): SE of the mean of batches
    analytic = _upper(net.kernels(x, dtype=np.float64).nngp)
    assert np.max(se) < 0.03 * np.max(analytic)  # the check has power: SE 1.1-1.9% of the largest entry measured
    np.testing.assert_array_less(np.abs(mean - analytic), Z_MC * se)


@pytest.mark.parametrize("activation, hidden, parameterization, base_width", DEEP)
def test_ntk_matches_the_empirical_ntk_of_wide_networks(activation, hidden, parameterization, base_width):
    """Empirical NTK under the model's own learning-rate multipliers, 32 networks of width 1024."""
    net = _net(activation, hidden, parameterization, base_width, width=1024)
    x = _inputs()
    xs, mults, init = jnp.asarray(x, jnp.float32), net.lr_multipliers(), jax.jit(net.init)
    emp = np.array([_upper(empirical_ntk(net.apply, init(k), xs, lr_multipliers=mults))
                    for k in jax.random.split(jax.random.key(2), 32)])  # (seeds, entries)
    mean, se = emp.mean(axis=0), emp.std(axis=0, ddof=1) / math.sqrt(len(emp))
    analytic = _upper(net.kernels(x, dtype=np.float64).ntk)
    assert np.max(se) < 0.03 * np.max(analytic)  # SE 0.5-1.8% measured; mup-sgd without its multipliers is off 6x
    np.testing.assert_array_less(np.abs(mean - analytic), Z_MC * se)


def test_kernels_take_two_input_sets_and_the_dtype():
    net = MLP((D_IN, 64, 1), "relu", "ntk", sigma=math.sqrt(2.0))
    x = _inputs(6)
    full = net.kernels(x, dtype=np.float64)
    cross = net.kernels(x[:2], x[2:], dtype=np.float64)
    np.testing.assert_allclose(cross.nngp, full.nngp[:2, 2:], rtol=1e-12)
    np.testing.assert_allclose(cross.ntk, full.ntk[:2, 2:], rtol=1e-12)
    assert net.kernels(x.astype(np.float32)).ntk.dtype == np.float32
