"""nets.MaskedMLP: masked units are exactly inert, and the network is muP-Adam's ``MLP`` step for step.

References: the mask argument of the module docstring (a masked post-activation is ``0``, so its
weights receive exactly zero gradient), and :class:`learnmech.nets.MLP` with ``"mup-adam"``
(Yang et al. 2022, arXiv:2203.03466, Table 3) trained by optax's Adam with its own per-layer
learning rates, against the multiplier gauge's single learning rate.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from learnmech.nets import MLP, MaskedMLP
from learnmech.observe import mse
from learnmech.train import OptimizerSpec, build_optimizer

D, B, M_LIVE, M_MAX = 10, 8, 32, 48  # inputs, base width, live width, stored width


def _draw(rng, *shape):
    return jnp.asarray(rng.normal(size=shape), jnp.float32)


def _params(rng):
    """Every entry non-zero, masked units included (the mask, not the init, must make them inert);
    drawn in numpy (a threefry draw costs seconds of compilation)."""
    return {"w1": _draw(rng, D, M_MAX) / np.sqrt(D), "b1": 0.1 * _draw(rng, M_MAX),
            "v": _draw(rng, M_MAX, 10) / np.sqrt(B), "b2": 0.1 * _draw(rng, 10)}


def test_masked_units_have_zero_output_and_zero_gradient():
    net = MaskedMLP(d_in=D, max_width=M_MAX, d_out=10, base_width=B)
    rng = np.random.default_rng(0)
    params, x, t = _params(rng), _draw(rng, 20, D), _draw(rng, 20, 10)
    out, h = net.forward(params, x, M_LIVE)
    assert float(jnp.abs(h[:, M_LIVE:]).max()) == 0.0  # masked post-activations: exactly zero
    assert float(jnp.abs(h[:, :M_LIVE]).max()) > 0.0
    moved = {**params, "w1": params["w1"].at[:, M_LIVE:].set(5.0), "v": params["v"].at[M_LIVE:].set(-7.0),
             "b1": params["b1"].at[M_LIVE:].set(3.0)}
    np.testing.assert_array_equal(net.apply(moved, x, M_LIVE), out)  # masked weights change no output bit
    grads = jax.grad(lambda p: mse(net.apply(p, x, M_LIVE), t))(params)
    for name, masked in (("w1", grads["w1"][:, M_LIVE:]), ("b1", grads["b1"][M_LIVE:]), ("v", grads["v"][M_LIVE:])):
        assert float(jnp.abs(masked).max()) == 0.0, name  # exactly zero: no Adam update either
    assert float(jnp.abs(grads["w1"][:, :M_LIVE]).max()) > 0.0  # the live units do learn


def test_init_zeroes_the_masked_units_and_scales_the_live_ones():
    """``W1 ~ N(0, 1/d)``, ``V ~ N(0, 1/b)`` on live units (sample std within 5 standard errors:
    the std of a sample std of n Gaussians is ~ s / sqrt(2n)), zero beyond the width, zero biases."""
    d, b, live, stored = 256, 16, 192, 256
    p = MaskedMLP(d_in=d, max_width=stored, d_out=10, base_width=b).init(jax.random.key(0), live)
    w1, v = np.asarray(p["w1"]), np.asarray(p["v"])
    assert not np.any(w1[:, live:]) and not np.any(v[live:]) and not np.any(p["b1"]) and not np.any(p["b2"])
    for sample, std in ((w1[:, :live], 1 / np.sqrt(d)), (v[:live], 1 / np.sqrt(b))):
        assert np.std(sample) == pytest.approx(std, abs=5 * std / np.sqrt(2 * sample.size))


def test_masked_network_is_mup_adam_mlp_step_for_step():
    """The masked multiplier-gauge network equals ``MLP(..., "mup-adam", base_width)`` under Adam.

    Same function (readout ``W2 = (b/m) V``), and the same outputs after 5 full-batch Adam steps
    (``b = 8``, ``m = 32``, stored at ``M = 48`` with 16 masked units; the MLP trains with its own
    ``lr_multipliers``, the masked network with one learning rate). Tolerance 1e-5 (float32).
    """
    net = MaskedMLP(d_in=D, max_width=M_MAX, d_out=10, base_width=B)
    rng = np.random.default_rng(3)
    x, t = _draw(rng, 20, D), _draw(rng, 20, 10)
    masked = _params(rng)
    mlp = MLP((D, M_LIVE, 10), "relu", "mup-adam", base_width=B)
    ref = [{"w": masked["w1"][:, :M_LIVE], "b": masked["b1"][:M_LIVE]},
           {"w": masked["v"][:M_LIVE] * B / M_LIVE, "b": masked["b2"]}]
    np.testing.assert_allclose(net.apply(masked, x, M_LIVE), mlp.apply(ref, x), atol=1e-5)

    def run(params, loss, tx):
        def step(_, carry):
            params, state = carry
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            return optax.apply_updates(params, updates), state

        return jax.jit(lambda p: jax.lax.fori_loop(0, 5, step, (p, tx.init(p)))[0])(params)

    spec = OptimizerSpec("adam", {"learning_rate": 1e-2})
    ref = run(ref, lambda p: mse(mlp.apply(p, x), t), build_optimizer(spec, {}, mlp.lr_multipliers()))
    masked = run(masked, lambda p: mse(net.apply(p, x, M_LIVE), t), build_optimizer(spec, {}, None))
    np.testing.assert_allclose(net.apply(masked, x, M_LIVE), mlp.apply(ref, x), atol=1e-5)


def test_rejects_a_non_positive_size():
    with pytest.raises(ValueError, match="base_width"):
        MaskedMLP(d_in=4, max_width=8, d_out=2, base_width=0)
