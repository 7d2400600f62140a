"""The abc table against TP-V Table 3 written out in fan-in/fan-out form, and the abc symmetry in training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from learnmech.nets import MLP
from learnmech.theory.parameterization import KINDS, PARAMETERIZATIONS, Exponents, get_parameterization, shift

# TP-V (Yang et al. 2022, arXiv:2203.03466) Table 3, as absolute functions of a tensor's fan-in and
# fan-out: (init variance, learning rate) for input weights & biases, hidden weights, output weights.
TABLE3 = {
    "mup-adam": {
        "input": (lambda fi, fo: 1 / fi, lambda fi, fo: 1.0),
        "hidden": (lambda fi, fo: 1 / fi, lambda fi, fo: 1 / fi),
        "output": (lambda fi, fo: 1 / fi**2, lambda fi, fo: 1 / fi),
    },
    "mup-sgd": {
        "input": (lambda fi, fo: 1 / fi, lambda fi, fo: float(fo)),
        "hidden": (lambda fi, fo: 1 / fi, lambda fi, fo: 1.0),
        "output": (lambda fi, fo: 1 / fi**2, lambda fi, fo: 1 / fi),
    },
}


@pytest.mark.parametrize("name", sorted(TABLE3))
@pytest.mark.parametrize("m", [0.5, 4.0, 16.0])
def test_relative_rows_reproduce_table3(name, m):
    n0, d_in, d_out = 64, 7, 3
    shapes = {"input": lambda n: (d_in, n), "hidden": lambda n: (n, n), "output": lambda n: (n, d_out)}
    row = get_parameterization(name)
    for kind, (var, lr) in TABLE3[name].items():
        (fi0, fo0), (fi, fo) = shapes[kind](n0), shapes[kind](round(m * n0))
        mult, std, rate = row.scales(kind, m)
        assert mult == 1.0
        np.testing.assert_allclose(std, np.sqrt(var(fi, fo) / var(fi0, fo0)), rtol=1e-14, err_msg=kind)
        np.testing.assert_allclose(rate, lr(fi, fo) / lr(fi0, fo0), rtol=1e-14, err_msg=kind)
        assert row.rows["vector"] == row.rows["input"]  # "input weights & all biases" share a row


def test_every_row_is_complete_and_base_is_identity():
    for name, row in PARAMETERIZATIONS.items():
        assert set(row.rows) == set(KINDS)
        for kind in KINDS:
            assert row.scales(kind, 1.0) == (1.0, 1.0, 1.0), (name, kind)
    assert {n for n, r in PARAMETERIZATIONS.items() if r.multiplier_free} == {"sp", "mup-adam", "mup-sgd"}
    with pytest.raises(ValueError, match="parameterization: must be one of"):
        get_parameterization("mup")
    with pytest.raises(ValueError, match="m: the width multiplier must be positive"):
        Exponents(0, 0, 0).scales(0.0)
    with pytest.raises(ValueError, match="optimizer"):
        shift(Exponents(0, 0, 0), 1.0, "rmsprop")


def test_mean_field_is_the_sgd_shift_of_mup_sgd():
    mup, mf = get_parameterization("mup-sgd").rows, get_parameterization("mean-field").rows
    for kind, theta in (("input", 0.0), ("vector", 0.0), ("hidden", 0.5), ("output", 1.0)):
        assert shift(mup[kind], theta, "sgd") == mf[kind], kind


def _train_mlp(name: str, steps: int = 5) -> np.ndarray:
    net = MLP((5, 64, 64, 2), "tanh", name, base_width=16, dtype="float64")  # m = 4
    key_x, key_y = jax.random.split(jax.random.key(1))
    x = jax.random.normal(key_x, (32, 5), jnp.float64)
    y = jax.random.normal(key_y, (32, 2), jnp.float64)
    tx = optax.sgd(0.5)
    mults = net.lr_multipliers()
    params = net.init(jax.random.key(0))
    state = tx.init(params)
    loss = lambda p: 0.5 * jnp.mean(jnp.sum((net.apply(p, x) - y) ** 2, axis=1))  # noqa: E731
    for _ in range(steps):
        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state)
        params = jax.tree.map(lambda p, u, m: p + m * u, params, updates, mults)
    return np.asarray(net.apply(params, x))


def test_mup_sgd_and_mean_field_train_identically():
    # TP-IV: the SGD shift (a + theta, b - theta, c - 2 theta) leaves the trajectory unchanged; the two
    # MLPs share the N(0, 1) draws of one key, so they agree to float64 rounding after 5 steps of SGD.
    mup, mf = _train_mlp("mup-sgd"), _train_mlp("mean-field")
    assert np.abs(mup).max() > 0.1
    np.testing.assert_allclose(mf, mup, rtol=1e-10, atol=1e-12)


def test_adam_shift_leaves_adam_trajectory_unchanged():
    # A readout f = n^{-a} w . tanh(V x) trained by Adam with lr n^{-c}, init std n^{-b}: the rows
    # (a, b, c) and shift(.., theta, "adam") give the same outputs (Adam's update ignores the gradient
    # scale; eps is negligible at 1e-30).
    n = 256
    v = jax.random.normal(jax.random.key(2), (4, n), jnp.float64) / 2.0
    g = jax.random.normal(jax.random.key(3), (n,), jnp.float64)
    x = jax.random.normal(jax.random.key(4), (16, 4), jnp.float64)
    y = jnp.sin(x[:, 0])

    def run(row: Exponents) -> np.ndarray:
        a, b, c = row.a, row.b, row.c
        w = g * n ** (-b)
        tx = optax.adam(0.01 * n ** (-c), eps=1e-30)
        state = tx.init(w)
        f = lambda w: n ** (-a) * jnp.tanh(x @ v) @ w  # noqa: E731
        for _ in range(6):
            grad = jax.grad(lambda w: 0.5 * jnp.mean((f(w) - y) ** 2))(w)
            upd, state = tx.update(grad, state)
            w = w + upd
        return np.asarray(f(w))

    row = get_parameterization("mup-adam").rows["output"]
    base, shifted = run(row), run(shift(row, 1.0, "adam"))
    np.testing.assert_allclose(shifted, base, rtol=1e-9, atol=1e-12)
    sgd_shifted = run(shift(row, 1.0, "sgd"))  # the SGD shift is not an Adam symmetry
    assert np.abs(sgd_shifted - base).max() > 1e-3
