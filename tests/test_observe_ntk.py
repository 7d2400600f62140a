"""Empirical NTK and NNGP (observe/ntk.py) against independent references.

References: the plain full-Jacobian NTK (``ravel_pytree`` + ``jacrev`` on the whole batch) for every
strategy; learning-rate multipliers through the reparameterisation ``p = sqrt(m) q``, under which the
plain NTK in ``q`` is ``sum_p m_p (df/dp)(df/dp)`` (Jacot et al. 2018, arXiv:1806.07572); one small
gradient-descent step for the dynamics convention; Monte Carlo over redrawn readout weights for
``readout_nngp``; the ReLU arc-cosine kernel (Cho & Saul 2009) for ``empirical_nngp``; hand
computations for ``ntk_drift`` and ``kernel_alignment``. float64 (conftest enables x64).

The tests are compile-bound, so the kernels under test are computed inside one jit per test (which
also checks that they trace under jit) compiled without LLVM optimisation (``_run``: half the compile
time, the same IEEE arithmetic), and test data come from numpy's generator rather than JAX's random
number kernels.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnmech.nets import MLP
from learnmech.observe import (
    empirical_nngp,
    empirical_ntk,
    kernel_alignment,
    mlp_ntk,
    ntk_drift,
    ntk_full_jacobian,
    readout_nngp,
    select_ntk_strategy,
)

EXACT = 1e-10  # float64 agreement of exact kernels, relative to the kernel's largest entry
PSD = 1e-10  # smallest eigenvalue >= -PSD * largest eigenvalue
GENERIC = ("jacobian", "ntvp")
CASES = [(outputs, x2) for outputs in ("mean", "full") for x2 in ("x2", "none")]  # x2 given / None

FAST_COMPILE = {"xla_backend_optimization_level": "0"}


def _run(fn, *args):
    """``jax.jit(fn)(*args)``, compiled with ``FAST_COMPILE``."""
    return jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)(*args)


RNG = np.random.default_rng(10)
X1 = jnp.asarray(RNG.normal(size=(7, 3)))
X2 = jnp.asarray(RNG.normal(size=(5, 3)))


def _params(model: MLP, seed: int, bias_scale: float = 0.3):
    """MLP parameters at the model's init scale with nonzero biases, as after some training."""
    rng = np.random.default_rng(seed)
    params = []
    for sc, fan_in, fan_out in zip(model.scalings, model.widths[:-1], model.widths[1:]):
        layer = {"w": jnp.asarray(sc.init_std * rng.normal(size=(fan_in, fan_out)), model.dtype)}
        if model.bias:
            layer["b"] = jnp.asarray(bias_scale * rng.normal(size=fan_out), model.dtype)
        params.append(layer)
    return params


def _references(apply, params, lr_multipliers=None):
    """Plain full-Jacobian NTKs for every case of ``CASES``, from one kernel on ``[X1; X2]``.

    Multipliers enter through ``g(q) = f(sqrt(m) q)`` at ``q = p / sqrt(m)``, whose plain NTK is the
    NTK of ``f`` with multipliers ``m``.
    """
    if lr_multipliers is None:
        model, at = apply, params
    else:
        root = jax.tree.map(lambda m, p: jnp.sqrt(jnp.asarray(m, p.dtype)), lr_multipliers, params)
        model = lambda q, x: apply(jax.tree.map(jnp.multiply, q, root), x)  # noqa: E731
        at = jax.tree.map(jnp.divide, params, root)
    full = _run(lambda p: ntk_full_jacobian(model, p, jnp.concatenate([X1, X2]), outputs="full"), at)  # (12, 12, O, O)
    n1 = X1.shape[0]
    out = {}
    for key, k in (("x2", full[:n1, n1:]), ("none", full[:n1, :n1])):
        out["full", key] = k
        out["mean", key] = jnp.mean(jnp.diagonal(k, axis1=2, axis2=3), axis=-1)  # (1/O) sum_o Theta_oo
    return out


def _all_cases(apply, params, strategies, lr_multipliers=None, cases=CASES, **kwargs):
    """Every strategy x case in one jit: ``{(strategy, outputs, x2): kernel}``."""

    def run(params, lr_multipliers):
        return {
            f"{s}/{o}/{c}": empirical_ntk(
                apply, params, X1, X2 if c == "x2" else None, strategy=s, outputs=o, lr_multipliers=lr_multipliers, **kwargs
            )
            for s in strategies
            for o, c in cases
        }

    kernels = _run(run, params, lr_multipliers)
    return {tuple(k.split("/")): v for k, v in kernels.items()}


def _assert_kernel_close(kernel, expected, tol=EXACT):
    scale = float(jnp.max(jnp.abs(expected)))
    assert kernel.shape == expected.shape
    np.testing.assert_allclose(np.asarray(kernel), np.asarray(expected), rtol=0, atol=tol * scale)


def _assert_symmetric_psd(kernel, outputs):
    k = np.asarray(kernel)
    if outputs == "full":  # (n, n, O, O) -> (n O, n O) with rows (i, o), columns (j, q)
        n, _, n_out, _ = k.shape
        k = k.transpose(0, 2, 1, 3).reshape(n * n_out, n * n_out)
    np.testing.assert_array_equal(k, k.T)  # symmetrised exactly for x2 = None
    eigenvalues = np.linalg.eigvalsh(k)
    assert eigenvalues.min() >= -PSD * eigenvalues.max(), eigenvalues


def _check_all(kernels, expected):
    for (_, outputs, case), kernel in kernels.items():
        _assert_kernel_close(kernel, expected[outputs, case])
        if case == "none":
            _assert_symmetric_psd(kernel, outputs)


# ------------------------------------------------------------------------ learnmech's own MLP


def _mlp(parameterization):
    # base_width 4 != width 8: muP-SGD multipliers are 2, 1, 1/2 (weights) and 2 (hidden biases)
    return MLP((3, 8, 8, 2), "tanh", parameterization, base_width=4, sigma=1.3, dtype="float64")


@pytest.mark.parametrize("parameterization", ["ntk", "sp", "mup-sgd"])
def test_structured_matches_full_jacobian_on_mlp(parameterization):
    model = _mlp(parameterization)
    params = _params(model, 0)
    mults = model.lr_multipliers()
    _check_all(_all_cases(model.apply, params, ("structured",), mults), _references(model.apply, params, mults))
    assert select_ntk_strategy(model.apply, params, X1) == "structured"  # what "auto" runs


def test_generic_strategies_match_full_jacobian_on_mlp():
    model = _mlp("mup-sgd")
    params = _params(model, 0)
    mults = model.lr_multipliers()
    _check_all(_all_cases(model.apply, params, GENERIC, mults), _references(model.apply, params, mults))


def test_structured_without_biases_and_depth_one():
    # two models in one jit, no multipliers (the plain kernel); references on the concatenated inputs
    models = (MLP((3, 6, 6, 2), "relu", "ntk", bias=False, dtype="float64"), MLP((3, 2), parameterization="sp", dtype="float64"))
    params = [_params(m, 2) for m in models]
    kernels = _run(lambda ps: [mlp_ntk(m, p, X1, X2, outputs="full") for m, p in zip(models, ps)], params)
    for model, p, kernel in zip(models, params, kernels):
        _assert_kernel_close(kernel, _references(model.apply, p)["full", "x2"])


def test_blocked_strategies_match_unblocked():
    model = _mlp("ntk")
    params = _params(model, 4)
    # 7 and 5 examples in blocks of 3: padded last blocks, column blocks recomputed per row block
    cases = [("full", "x2"), ("mean", "none")]
    _check_all(_all_cases(model.apply, params, GENERIC, cases=cases, block_size=3), _references(model.apply, params))


def test_ntk_with_multipliers_predicts_one_gradient_step():
    # GD with per-parameter rates eta m_p on L = (1/2n) sum ||f - y||^2 moves the outputs by
    # -(eta/n) Theta (f - y) + O(eta^2): with eta = 1e-5 the relative error is ~1e-5 (tolerance 1e-3).
    model = _mlp("mup-sgd")
    params = _params(model, 6)
    mults = model.lr_multipliers()
    y = jnp.asarray(np.random.default_rng(8).normal(size=(7, 2)))
    eta = 1e-5

    def moved_and_predicted(params):
        loss = lambda p: 0.5 * jnp.mean(jnp.sum((model.apply(p, X1) - y) ** 2, axis=1))  # noqa: E731
        stepped = jax.tree.map(lambda p, g, m: p - eta * m * g, params, jax.grad(loss)(params), mults)
        moved = model.apply(stepped, X1) - model.apply(params, X1)  # (n, O)
        theta = empirical_ntk(model.apply, params, X1, outputs="full", lr_multipliers=mults)  # (n, n, O, O)
        return moved, -(eta / 7) * jnp.einsum("ijoq,jq->io", theta, model.apply(params, X1) - y)

    moved, predicted = _run(moved_and_predicted, params)
    np.testing.assert_allclose(np.asarray(moved), np.asarray(predicted), rtol=0, atol=1e-3 * float(jnp.max(jnp.abs(predicted))))


def test_float32_is_kept_and_accurate():
    model = MLP((3, 32, 32, 2), "relu", "ntk", dtype="float32")
    params = _params(model, 9)
    mults = model.lr_multipliers()
    x1, x2 = X1.astype(jnp.float32), X2.astype(jnp.float32)
    kernels = _run(
        lambda p: [empirical_ntk(model.apply, p, x1, x2, strategy=s, lr_multipliers=mults) for s in ("structured",) + GENERIC],
        params,
    )
    params64 = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    expected = _run(lambda p: ntk_full_jacobian(model.apply, p, X1, X2), params64)
    for kernel in kernels:
        assert kernel.dtype == jnp.float32
        _assert_kernel_close(kernel, expected, tol=1e-5)  # float32 rounding over a few hundred terms


# ----------------------------------------------------------------- a model written as a plain dict


def _skip_net(params, x):
    """tanh net with a skip connection, a weight and a bias used twice, and a scalar output gain."""
    h = jnp.tanh(x @ params["embed"]["w"] + params["embed"]["b"])  # (n, 6)
    h = h + jnp.tanh(h @ params["shared"])  # skip
    h = jnp.tanh(h @ params["shared"].T + params["embed"]["b"])  # the same weight and bias again
    return params["gain"] * (h @ params["out"]) + x[:, :2] ** 2 @ params["quad"]  # (n, 2)


def _skip_params():
    rng = np.random.default_rng(12)
    return {
        "embed": {"w": jnp.asarray(rng.normal(size=(3, 6))), "b": jnp.asarray(0.1 * rng.normal(size=6))},
        "shared": jnp.asarray(rng.normal(size=(6, 6)) / np.sqrt(6.0)),
        "out": jnp.asarray(rng.normal(size=(6, 2))),
        "quad": jnp.asarray(rng.normal(size=(2, 2))),
        "gain": jnp.asarray(0.7),
    }


SKIP_MULTS = {
    "embed": {"w": 2.0, "b": jnp.linspace(0.5, 1.5, 6)},  # an elementwise multiplier on one leaf
    "shared": 0.25,
    "out": 1.0,
    "quad": 3.0,
    "gain": 0.5,
}


def test_generic_strategies_match_full_jacobian_on_a_dict_model():
    params = _skip_params()
    expected = _references(_skip_net, params, SKIP_MULTS)
    _check_all(_all_cases(_skip_net, params, GENERIC, SKIP_MULTS), expected)
    auto = _run(lambda p: empirical_ntk(_skip_net, p, X1, X2, outputs="full", lr_multipliers=SKIP_MULTS), params)
    _assert_kernel_close(auto, expected["full", "x2"])


def test_auto_follows_the_documented_rule():
    # dense net, F ~ 2P: a tie for outputs="mean" keeps "jacobian"; outputs="full" with O = 8 outputs
    # costs the contraction 8x more, so "ntvp" (see select_ntk_strategy's cost model)
    dense = lambda p, x: jnp.tanh(x @ p["w1"]) @ p["w2"]  # noqa: E731
    params = {"w1": jnp.ones((3, 64)), "w2": jnp.ones((64, 8))}
    x = jnp.ones((200, 3))
    assert select_ntk_strategy(dense, params, x, outputs="mean") == "jacobian"
    assert select_ntk_strategy(dense, params, x, outputs="full") == "ntvp"


# ---------------------------------------------------------------------------------------- NNGP


def test_readout_nngp_matches_monte_carlo_over_readout_weights():
    # readout layers redrawn by the model's own init (hidden layers kept) and pushed through
    # model.apply: NTK (sigma in the forward multiplier) and muP-Adam with base 8 < width 32 (the
    # readout init std carries an extra 1/sqrt(m)); 4000 draws, tolerance 5 standard errors.
    models = [MLP((4, 32, 32, 3), "relu", p, base_width=8, sigma=1.2, dtype="float64") for p in ("ntk", "mup-adam")]
    params = [_params(m, 13, bias_scale=0.1) for m in models]
    rng = np.random.default_rng(15)
    x1, x2 = jnp.asarray(rng.normal(size=(7, 4))), jnp.asarray(rng.normal(size=(5, 4)))
    draws = 4000
    keys = jax.random.split(jax.random.key(16), draws)

    def monte_carlo(params):
        out = []
        for model, p in zip(models, params):
            readouts = jax.lax.map(lambda k: model.init(k)[-1], keys)
            outs = jax.vmap(lambda r, x: model.apply(p[:-1] + [r], x), in_axes=(0, None))
            products = jnp.einsum("sio,sjo->sij", outs(readouts, x1), outs(readouts, x2)) / 3  # mean over O
            out.append((products.mean(0), products.std(0) / np.sqrt(draws), readout_nngp(model, p, x1, x2)))
        return out

    for mean, stderr, kernel in _run(monte_carlo, params):
        mean, stderr, kernel = map(np.asarray, (mean, stderr, kernel))
        assert np.all(np.abs(kernel - mean) < 5 * stderr), np.max(np.abs(kernel - mean) / stderr)  # 5 s.e.


def _relu_arccos(x1, x2, sigma, d):
    """E[relu(u) relu(v)] for (u, v) ~ N(0, sigma^2 [x.x'] / d) (Cho & Saul 2009, arc-cosine n = 1):
    sqrt(q1 q2) / (2 pi) (sin t + (pi - t) cos t), cos t = q12 / sqrt(q1 q2)."""
    q12 = sigma**2 * x1 @ x2.T / d
    q1, q2 = sigma**2 * np.sum(x1**2, 1) / d, sigma**2 * np.sum(x2**2, 1) / d
    norm = np.sqrt(np.outer(q1, q2))
    t = np.arccos(np.clip(q12 / norm, -1, 1))
    return norm / (2 * np.pi) * (np.sin(t) + (np.pi - t) * np.cos(t))


def test_empirical_nngp_matches_relu_arccosine_kernel():
    # f_o = N^{-1/2} sum_k relu(d^{-1/2} x.w_k) v_ko with w, v ~ N(0, sigma^2) (NTK parameterisation):
    # E[f_o(x) f_o(x')] = sigma^2 E[relu(u) relu(v)], exact at any width N (no 1/N correction).
    sigma, d = 1.3, 3
    model = MLP((d, 64, 4), "relu", "ntk", sigma=sigma, dtype="float64")
    x1, x2 = np.asarray(X1), np.asarray(X2)
    expected = sigma**2 * _relu_arccos(x1, x2, sigma, d)
    groups = jax.random.split(jax.random.key(17), 20 * 100).reshape(20, 100)  # 20 groups of 100 inits

    def estimate(g):  # (x1, x2) and (x1, None) from the same inits
        return empirical_nngp(model.apply, model.init, g, X1, X2), empirical_nngp(model.apply, model.init, g, X1)

    estimates, same = map(np.asarray, _run(lambda gs: jax.lax.map(estimate, gs), groups))
    mean, stderr = estimates.mean(0), estimates.std(0, ddof=1) / np.sqrt(len(groups))
    assert np.all(np.abs(mean - expected) < 5 * stderr), np.max(np.abs(mean - expected) / stderr)  # 5 s.e.
    assert np.all(stderr < 0.05 * np.abs(expected).max())  # and the test has power: s.e. < 5% of the scale
    # x2 = None: exactly symmetric, and on (x1, x1) the diagonal is E f(x)^2 = sigma^2 q / 2 for ReLU
    np.testing.assert_array_equal(same, same.transpose(0, 2, 1))
    q = sigma**2 * np.sum(x1**2, 1) / d
    diagonal = np.diagonal(same, axis1=1, axis2=2)  # (groups, n1)
    assert np.all(np.abs(diagonal.mean(0) - sigma**2 * q / 2) < 5 * diagonal.std(0, ddof=1) / np.sqrt(len(groups)))


# ------------------------------------------------------------------------------ kernel comparisons


def test_ntk_drift_hand_cases():
    theta0 = np.array([[2.0, 0.0], [0.0, 1.0]])
    assert float(ntk_drift(theta0, theta0)) == 0.0
    # ||diag(1, 1) - diag(2, 1)||_F / ||diag(2, 1)||_F = 1 / sqrt(5)
    np.testing.assert_allclose(float(ntk_drift(np.eye(2), theta0)), 1 / np.sqrt(5), rtol=1e-14)
    # off-diagonal 1s added: ||[[0, 1], [1, 0]]||_F / sqrt(5) = sqrt(2 / 5)
    np.testing.assert_allclose(float(ntk_drift(theta0 + np.array([[0, 1.0], [1.0, 0]]), theta0)), np.sqrt(0.4), rtol=1e-14)


def test_kernel_alignment_hand_cases():
    k = np.array([[2.0, 0.0], [0.0, 1.0]])
    y = np.array([1.0, -1.0])
    # <K, yy^T> = 2 + 1 = 3; ||K||_F = sqrt(5); ||yy^T||_F = 2
    np.testing.assert_allclose(float(kernel_alignment(k, y)), 3 / (2 * np.sqrt(5)), rtol=1e-14)
    # centred: HKH = 0.75 [[1, -1], [-1, 1]] is proportional to (Hy)(Hy)^T, so the alignment is 1
    np.testing.assert_allclose(float(kernel_alignment(k, y, centered=True)), 1.0, rtol=1e-14)
    # Y = [[1, 1], [1, -1]]: Y Y^T = 2 I, <K, 2 I> = 6, ||2 I||_F = 2 sqrt(2)
    np.testing.assert_allclose(float(kernel_alignment(k, np.array([[1.0, 1.0], [1.0, -1.0]]))), 6 / (np.sqrt(5) * 2 * np.sqrt(2)), rtol=1e-14)
    # centring removes a constant offset: K + c 1 1^T has the centred alignment of K
    rng = np.random.default_rng(19)
    a = rng.normal(size=(6, 6))
    kr, yr = a @ a.T, rng.normal(size=6)
    np.testing.assert_allclose(float(kernel_alignment(kr + 3.0, yr, centered=True)), float(kernel_alignment(kr, yr, centered=True)), rtol=1e-12)


# ---------------------------------------------------------------------------------------- errors


def test_bad_input_names_the_field():
    model = MLP((3, 4, 2), dtype="float64")
    params = _params(model, 0)
    cases = [
        (lambda: empirical_ntk(model.apply, params, X1, strategy="fast"), "strategy:"),
        (lambda: empirical_ntk(model.apply, params, X1, outputs="diag"), "outputs:"),
        (lambda: empirical_ntk(_skip_net, _skip_params(), X1, strategy="structured"), "strategy:"),
        (lambda: empirical_ntk(model.apply, params, X1, block_size=0), "block_size:"),
        (lambda: empirical_ntk(model.apply, params, X1, jnp.ones((4, 5))), "x2:"),
        (lambda: empirical_ntk(model.apply, params, X1, lr_multipliers=[{"w": 1.0}]), "lr_multipliers:"),
        (lambda: mlp_ntk(model, params, X1, lr_multipliers=jax.tree.map(jnp.ones_like, params)), "lr_multipliers:"),
        (lambda: empirical_ntk(lambda p, x: (x @ p)[:, 0], jnp.ones((3, 2)), X1), "apply:"),
        (lambda: mlp_ntk(_skip_net, params, X1), "model:"),
        (lambda: empirical_nngp(model.apply, model.init, jax.random.split(jax.random.key(0), 0), X1), "keys:"),
        (lambda: ntk_drift(np.eye(2), np.eye(3)), "theta_t:"),
        (lambda: kernel_alignment(np.ones((2, 3)), np.ones(2)), "kernel:"),
        (lambda: kernel_alignment(np.eye(2), np.ones(3)), "y:"),
    ]
    for call, field in cases:
        with pytest.raises(ValueError, match=f"^{field}"):
            call()
