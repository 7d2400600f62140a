"""Observables (observe/) against numpy computations written out here."""

import jax
import numpy as np
import pytest

from learnmech.nets import MLP, DeepLinear, end_to_end
from learnmech.observe import (
    activation_change_rms,
    activation_rms,
    input_output_map,
    leaf_names,
    mode_strengths,
    mse,
    mse_loss,
    numerical_rank,
    parameter_norms,
    relative_movement,
    singular_values,
)

RNG_SEED = 0
WIDTHS = (3, 5, 4, 2)

# Observables run inside the trainer's compiled program, so they are checked under jit (which is
# also much cheaper here than compiling every eager primitive).
norms_jit = jax.jit(parameter_norms)
movement_jit = jax.jit(relative_movement)
rank_jit = jax.jit(numerical_rank)
modes_jit = jax.jit(mode_strengths)


def _mlp_params(rng, widths=WIDTHS, zero_bias=False):
    """[{"b": (fan_out,), "w": (fan_in, fan_out)}, ...] drawn with numpy."""
    return [
        {"w": rng.standard_normal((a, b)), "b": np.zeros(b) if zero_bias else rng.standard_normal(b)}
        for a, b in zip(widths[:-1], widths[1:])
    ]


def _numpy_forward(params, x, multipliers, phi=np.tanh):
    """Per-layer activations of h = m z w + b, z = phi(h) (no phi after the last layer)."""
    z, outs = x, []
    for i, (layer, m) in enumerate(zip(params, multipliers)):
        h = m * (z @ layer["w"]) + layer["b"]
        z = h if i == len(params) - 1 else phi(h)
        outs.append(z)
    return outs


def test_parameter_norms_and_relative_movement_match_numpy():
    rng = np.random.default_rng(RNG_SEED)
    params0 = _mlp_params(rng, zero_bias=True)
    params = jax.tree.map(lambda a: a + 0.1 * rng.standard_normal(a.shape), params0)
    names = leaf_names(params)
    assert names == ["0.b", "0.w", "1.b", "1.w", "2.b", "2.w"]  # jax flattening order: dict keys sorted
    leaves = [params[int(n[0])][n[2:]] for n in names]
    leaves0 = [params0[int(n[0])][n[2:]] for n in names]
    np.testing.assert_allclose(norms_jit(params), [np.sqrt(np.sum(a**2)) for a in leaves], rtol=1e-14)
    expected = [  # ||W - W0|| / ||W0||, and plain ||b - b0|| for a bias that starts at zero
        np.linalg.norm(a - a0) / (np.linalg.norm(a0) if np.any(a0) else 1.0) for a, a0 in zip(leaves, leaves0)
    ]
    np.testing.assert_allclose(movement_jit(params, params0), expected, rtol=1e-14)
    np.testing.assert_array_equal(movement_jit(params0, params0), 0.0)


def test_input_output_map_of_a_deep_linear_network_is_its_product():
    model = DeepLinear((4, 6, 5, 3), dtype="float64")
    rng = np.random.default_rng(1)
    params = [rng.standard_normal(s) for s in [(6, 4), (5, 6), (3, 5)]]  # W_l: (n_l, n_{l-1})
    jac = jax.jit(lambda p: input_output_map(model.apply, p, d_in=4))(params)
    assert jac.shape == (3, 4)
    np.testing.assert_allclose(jac, np.asarray(end_to_end(params)), rtol=1e-13)
    np.testing.assert_allclose(jac, params[2] @ params[1] @ params[0], rtol=1e-13)  # numpy product


def test_input_output_map_of_a_tanh_network_at_zero():
    # with zero biases, tanh'(0) = 1: df/dx at 0 = (m1 W1 m2 W2 m3 W3)^T, m = 1/sqrt(fan_in) for NTK
    model = MLP(WIDTHS, activation="tanh", parameterization="ntk", dtype="float64")
    params = _mlp_params(np.random.default_rng(2), zero_bias=True)
    expected = np.eye(3)
    for fan_in, layer in zip(WIDTHS[:-1], params):
        expected = expected @ layer["w"] / np.sqrt(fan_in)  # (d_in, d_out)
    jac = jax.jit(lambda p: input_output_map(model.apply, p, 3))(params)
    np.testing.assert_allclose(jac, expected.T, rtol=1e-13)


def test_mode_strengths_recover_u():
    rng = np.random.default_rng(3)
    U, _ = np.linalg.qr(rng.standard_normal((6, 3)))  # (d_out, r)
    V, _ = np.linalg.qr(rng.standard_normal((5, 3)))  # (d_in, r)
    u = np.array([2.0, 0.7, 1e-4])
    W = U @ np.diag(u) @ V.T  # (d_out, d_in)
    np.testing.assert_allclose(modes_jit(W, U, V), u, rtol=1e-12)
    off = (np.eye(6) - U @ U.T) @ rng.standard_normal((6, 5))  # outside span(U): invisible to U^T W V
    np.testing.assert_allclose(modes_jit(W + off, U, V), u, rtol=1e-11, atol=1e-14)
    M = rng.standard_normal((6, 5))
    np.testing.assert_allclose(modes_jit(M, U, V), np.diag(U.T @ M @ V), rtol=1e-13)  # the definition


@pytest.mark.parametrize("m, n, r", [(8, 6, 3), (5, 9, 2), (7, 7, 7), (6, 4, 0)])
def test_numerical_rank_of_random_low_rank_matrices(m, n, r):
    rng = np.random.default_rng(m * 100 + n * 10 + r)
    M = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))  # rank r
    assert int(rank_jit(M)) == np.linalg.matrix_rank(M) == r
    M32 = M.astype(np.float32)  # default threshold uses the dtype's eps, as numpy does
    assert int(rank_jit(M32)) == np.linalg.matrix_rank(M32) == r


def test_numerical_rank_thresholds_match_numpy():
    rng = np.random.default_rng(4)
    P, _ = np.linalg.qr(rng.standard_normal((7, 7)))
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    sv = np.array([1.0, 0.3, 1e-3, 1e-7, 1e-11])  # known singular values, gaps far from every threshold
    M = P[:, :5] @ np.diag(sv) @ Q.T  # (7, 5)
    np.testing.assert_allclose(singular_values(M), sv, rtol=1e-6, atol=1e-15)  # decreasing order
    for rtol, expected in [(1e-2, 2), (1e-4, 3), (1e-9, 4), (1e-13, 5)]:
        assert int(rank_jit(M, rtol=rtol)) == np.linalg.matrix_rank(M, rtol=rtol) == expected
        assert int(rank_jit(10 * M, rtol=rtol)) == expected  # relative threshold: scale-free
    for tol, expected in [(5e-3, 3), (5e-2, 2)]:  # absolute threshold on 10 M: sv = [10, 3, 1e-2, ...]
        assert int(rank_jit(10 * M, tol)) == np.linalg.matrix_rank(10 * M, tol=tol) == expected
    assert int(numerical_rank(M)) == np.linalg.matrix_rank(M) == 5  # eager; default 7 eps sigma_max ~ 1.6e-15


def test_activation_rms_matches_numpy():
    model = MLP(WIDTHS, activation="tanh", parameterization="ntk", dtype="float64")
    rng = np.random.default_rng(5)
    params, params0 = _mlp_params(rng), _mlp_params(rng)
    x = rng.standard_normal((9, 3))
    mults = [1 / np.sqrt(f) for f in WIDTHS[:-1]]  # NTK forward multipliers
    acts, acts0 = _numpy_forward(params, x, mults), _numpy_forward(params0, x, mults)
    rms = [np.sqrt(np.mean(a**2)) for a in acts]
    np.testing.assert_allclose(jax.jit(lambda p: activation_rms(model.activations, p, x))(params), rms, rtol=1e-13)
    change_rms = jax.jit(lambda p, p0: activation_change_rms(model.activations, p, p0, x))
    change = [np.sqrt(np.mean((a - b) ** 2)) for a, b in zip(acts, acts0)]
    np.testing.assert_allclose(change_rms(params, params0), change, rtol=1e-13)
    np.testing.assert_array_equal(change_rms(params, params), 0.0)


def test_mse_normalisation():
    # by hand: one unit error in one of n = 2 examples -> (1/(2*2)) * 1 = 0.25
    assert float(mse(np.array([[1.0, 0.0], [0.0, 0.0]]), np.zeros((2, 2)))) == 0.25
    rng = np.random.default_rng(6)
    out, y = rng.standard_normal((11, 3)), rng.standard_normal((11, 3))
    expected = 0.5 * np.mean(np.sum((out - y) ** 2, axis=1))  # (1/2n) sum_i ||f(x_i) - y_i||^2
    np.testing.assert_allclose(mse(out, y), expected, rtol=1e-14)
    model = DeepLinear((4, 3), dtype="float64")
    W = rng.standard_normal((3, 4))
    x = rng.standard_normal((11, 4))
    np.testing.assert_allclose(mse_loss(model.apply)([W], (x, y)), 0.5 * np.mean(np.sum((x @ W.T - y) ** 2, 1)),
                               rtol=1e-14)
