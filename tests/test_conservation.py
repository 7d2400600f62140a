"""Conserved quantities, their exact discrete GD identities, Kunin's modified equations, and the claim.

References are independent of the code under test: gradients of small networks written out by hand in numpy
(checked against central finite differences), GD / heavy-ball loops written in numpy, and closed-form solutions
of the modified equations for a constant drive.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pydantic import ValidationError

from learnmech.atlas.conservation import balancedness
from learnmech.nets import MLP
from learnmech.observe.conservation import (chain_balance, chain_euler_residual, neuron_balance,
                                            neuron_euler_residual, scale_euler_residual, scale_norm)
from learnmech.theory.conservation import (chain_step_change, decay_recursion, kunin_momentum, kunin_weight_decay,
                                           momentum_recursion, neuron_step_change, scale_step_change)

RNG = np.random.default_rng(0)
X, Y = RNG.standard_normal((12, 3)), RNG.standard_normal((12, 2))  # (n, d), (n, out)


def relu_grads(w1, b, w2):
    """Hand-written backprop of L = (1/2n) sum ||relu(X w1^T + b) w2^T - Y||^2; w1 (width, d), w2 (out, width)."""
    pre = X @ w1.T + b  # (n, width)
    h = np.maximum(pre, 0.0)
    e = (h @ w2.T - Y) / X.shape[0]  # (n, out)
    dh = (e @ w2) * (pre > 0)  # (n, width)
    return dh.T @ X, dh.sum(0), e.T @ h


def relu_loss(w1, b, w2):
    return 0.5 * np.sum((np.maximum(X @ w1.T + b, 0.0) @ w2.T - Y) ** 2) / X.shape[0]


def chain_grads(ws):
    """Hand-written gradients of L = (1/2n) sum ||W3 W2 W1 x - y||^2 (W_l (out, in))."""
    w1, w2, w3 = ws
    e = (X @ w1.T @ w2.T @ w3.T - Y) / X.shape[0]  # (n, out)
    return [(w3 @ w2).T @ e.T @ X, w3.T @ e.T @ X @ w1.T, e.T @ X @ w1.T @ w2.T]


def relu_params(width=5):
    return RNG.standard_normal((width, 3)), 0.3 * RNG.standard_normal(width), RNG.standard_normal((2, width))


def test_hand_gradients_match_finite_differences():
    w1, b, w2 = relu_params()
    g1, _, _ = relu_grads(w1, b, w2)
    bump = np.zeros_like(w1)
    bump[1, 2] = 1e-6
    fd = (relu_loss(w1 + bump, b, w2) - relu_loss(w1 - bump, b, w2)) / 2e-6
    assert fd == pytest.approx(g1[1, 2], rel=1e-6)  # central difference, O(h^2) ~ 1e-12 plus rounding ~1e-10


def test_neuron_identity_exact_for_a_numpy_gd_step():
    w1, b, w2 = relu_params()
    g1, gb, g2 = relu_grads(w1, b, w2)
    assert np.max(np.abs(neuron_euler_residual(w1, w2, g1, g2, b, gb))) < 1e-13  # Euler's identity, float64
    eta = 0.3
    before = neuron_balance(w1, w2, b)
    after = neuron_balance(w1 - eta * g1, w2 - eta * g2, b - eta * gb)
    predicted = neuron_step_change(g1, g2, eta, gb)
    assert np.max(np.abs((after - before) - predicted)) < 1e-12 * np.max(np.abs(before))  # float64 rounding
    assert np.max(np.abs(predicted)) > 1e-4  # the eta^2 term is far above that rounding: the test can fail


def test_chain_identity_exact_for_a_numpy_gd_step():
    ws = [RNG.standard_normal((4, 3)), RNG.standard_normal((4, 4)), RNG.standard_normal((2, 4))]
    gs = chain_grads(ws)
    assert max(np.max(np.abs(r)) for r in chain_euler_residual(ws, gs)) < 1e-12
    eta = 0.05
    before, after = chain_balance(ws), chain_balance([w - eta * g for w, g in zip(ws, gs)])
    for b0, b1, pred in zip(before, after, chain_step_change(gs, eta)):
        assert b0.shape == (4, 4)
        np.testing.assert_allclose(np.asarray(b1) - np.asarray(b0), pred, atol=1e-11)  # rounding of ~10-size entries


def test_scale_symmetry_of_a_normalised_layer():
    x, y = jnp.asarray(X), jnp.asarray(Y[:, 0])

    def loss(w):  # the weight feeds a normalisation: L(alpha w) = L(w)
        h = x @ w
        return jnp.mean((jnp.tanh((h - h.mean()) / jnp.sqrt(jnp.mean((h - h.mean()) ** 2))) - y) ** 2)

    with jax.enable_x64(True):
        w = jnp.asarray(RNG.standard_normal(3))
        g = jax.grad(loss)(w)
        v = jnp.asarray([0.3, -0.2, 0.5])
        fd = (loss(w + 1e-6 * v) - loss(w - 1e-6 * v)) / 2e-6
        assert float(g @ v) == pytest.approx(float(fd), rel=1e-6)  # autodiff against central differences
        assert abs(float(scale_euler_residual(w, g))) < 1e-14
        eta = 0.7
        grown = float(scale_norm(w - eta * g) - scale_norm(w))
        assert grown == pytest.approx(float(scale_step_change(g, eta)), rel=1e-10)
        assert grown > 0


def test_decay_recursion_matches_numpy_gd_with_weight_decay():
    w1, b, w2 = relu_params()
    eta, lam, steps = 0.1, 0.3, 40
    cs, ds = [neuron_balance(w1, w2, b)], []
    for _ in range(steps):  # GD with L2 weight decay on every weight: w <- w - eta (g + lam w)
        g1, gb, g2 = relu_grads(w1, b, w2)
        ds.append(np.asarray(neuron_balance(g1, g2, gb)))
        w1, b, w2 = w1 - eta * (g1 + lam * w1), b - eta * (gb + lam * b), w2 - eta * (g2 + lam * w2)
        cs.append(neuron_balance(w1, w2, b))
    predicted = decay_recursion(cs[0], np.stack(ds), eta, lam)
    np.testing.assert_allclose(predicted, np.stack(cs), atol=1e-12 * np.max(np.abs(cs[0])))


def test_kunin_weight_decay_constant_drive_closed_form():
    eta, lam, d, c0 = 0.01, 0.5, 2.0, 1.0
    t = eta * np.arange(400)
    exact = np.exp(-2 * lam * t) * c0 + eta * d * (1 - np.exp(-2 * lam * t)) / (2 * lam)  # solves C' = -2 lam C + eta d
    trap = kunin_weight_decay(c0, np.full(400, d), eta, lam)
    np.testing.assert_allclose(trap, exact, rtol=1e-5)  # trapezoid error O(eta^2 lam^2) ~ 2.5e-5 of the eta d term
    left = kunin_weight_decay(c0, np.full(400, d), eta, lam, rule="left")
    gap = np.max(np.abs(left - exact)) / np.max(np.abs(exact - np.exp(-2 * lam * t) * c0))
    assert 1e-3 < gap < 2e-2  # the left sum is O(eta lam) = 0.5% off the integral term


def test_momentum_recursion_matches_numpy_heavy_ball():
    w1, b, w2 = relu_params()
    eta, beta, lam, steps = 0.05, 0.8, 0.2, 30
    v = [np.zeros_like(w1), np.zeros_like(b), np.zeros_like(w2)]
    cs, vs = [neuron_balance(w1, w2, b)], []
    for _ in range(steps):  # optax heavy ball with L2 decay: v <- g + lam w + beta v, w <- w - eta v
        g = relu_grads(w1, b, w2)
        v = [gi + lam * wi + beta * vi for gi, wi, vi in zip(g, (w1, b, w2), v)]
        vs.append(np.asarray(neuron_balance(v[0], v[2], v[1])))
        w1, b, w2 = w1 - eta * v[0], b - eta * v[1], w2 - eta * v[2]
        cs.append(neuron_balance(w1, w2, b))
    predicted = momentum_recursion(cs[0], np.stack(vs), eta, beta, lam)
    np.testing.assert_allclose(predicted, np.stack(cs), atol=1e-12 * np.max(np.abs(cs[0])))
    gap = np.max(np.abs(momentum_recursion(cs[0], np.stack(vs), eta, 0.0, lam) - np.stack(cs)))
    assert gap > 1e-3 * np.max(np.abs(cs[0]))  # without the momentum term (3) misses: the test can fail


def test_kunin_momentum_constant_drive_closed_form():
    eta, beta, v, c0 = 0.01, 0.9, 1.5, 0.2
    a, b, f = eta * (1 + beta) / 2, 1 - beta, eta * (1 + beta) * v
    t = eta * np.arange(600)
    s0 = eta * v  # C'(0) of the first discrete step (lam = 0)
    exact = c0 + f / b * t + (s0 - f / b) * (a / b) * (1 - np.exp(-b * t / a))  # solves a C'' + b C' = f
    got = kunin_momentum(c0, np.full(600, v), eta, beta)
    # the trapezoid rule resolves the ~9.5-step momentum transient to ~1% early on, ~1e-5 of the motion overall
    assert np.max(np.abs(got - exact)) < 1e-3 * np.max(np.abs(exact - c0))


@pytest.mark.parametrize("kind", balancedness.NETWORKS)
def test_balanced_start_keeps_the_function_and_zeroes_c(kind):
    cfg = balancedness.CLAIM.make_config("tiny")
    with jax.enable_x64(True):
        net = balancedness._network(kind, cfg)
        params = [{name: jnp.asarray(RNG.standard_normal((2,) + np.shape(a)) / np.sqrt(a.shape[0]))
                   for name, a in layer.items()} for layer in jax.eval_shape(net.init, jax.random.key(0))]
        even = balancedness.balanced(kind, params)
        x = jnp.asarray(RNG.standard_normal((4, cfg.input_dim)))
        for s in range(2):
            one, other = (jax.tree.map(lambda a, s=s: a[s], p) for p in (params, even))
            np.testing.assert_allclose(net.apply(other, x), net.apply(one, x), rtol=1e-10, atol=1e-12)
            plus, minus = balancedness.network_parts(kind, other)
            assert float(jnp.max(jnp.abs(plus - minus))) < 1e-12 * float(jnp.max(plus))
            plus0, minus0 = balancedness.network_parts(kind, one)
            assert float(jnp.max(jnp.abs(plus0 - minus0))) > 1e-2  # the random start is not balanced


def test_refusals_name_the_field():
    with pytest.raises(ValueError, match="w_in, w_out"):
        neuron_balance(np.ones((3, 2)), np.ones((1, 4)))
    with pytest.raises(ValueError, match="weights"):
        chain_balance([np.ones((3, 2)), np.ones((1, 4))])
    with pytest.raises(ValidationError, match="etas"):
        balancedness.CLAIM.make_config("quick", {"etas": (0.01, 0.02)})
    with pytest.raises(ValidationError, match="whole number"):
        balancedness.CLAIM.make_config("quick", {"horizon": 0.015})


def check_tiny_details(details: dict) -> None:
    """The tiny run's verdict details: the identity holds.

    tests/test_claim_conformance.py runs every claim's tiny preset once and calls this with its details.
    """
    assert details["identity_error"] < 1e-13  # float64 rounding (~3e-16 measured), far below the 1e-10 rule
    assert details["momentum_recursion_error/relu"] < 1e-10  # exact recursion (3), rounding only
    assert details["max_decay_error"] < 0.05  # tiny: ~1% measured with the left quadrature


def test_every_preset_validates():
    for preset in ("tiny", "quick", "full"):
        cfg = balancedness.CLAIM.make_config(preset)
        assert all(abs(cfg.horizon / eta - round(cfg.horizon / eta)) < 1e-9 for eta in cfg.etas)
