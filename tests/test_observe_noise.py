"""Per-example gradients and the simple gradient noise scale (McCandlish et al. 2018, arXiv:1812.06162).

Reference model: linear regression ``f(x) = w . x`` with ``x ~ N(0, I_d)``, ``y = w* . x + eps``,
``eps ~ N(0, s^2)``, loss ``(1/2n) sum_i (f(x_i) - y_i)^2``. With ``r = w - w*`` the per-example
gradient is ``g = (r . x - eps) x``, so (Isserlis' theorem for the fourth moment of a Gaussian)

    G = E[g] = r,   Sigma = Cov[g] = (|r|^2 + s^2) I + r r^T,   tr(Sigma) = d (|r|^2 + s^2) + |r|^2.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnmech.observe import (
    NoiseScale,
    average_noise_scale,
    gradient_noise_scale,
    mse_loss,
    noise_scale_from_batch_sizes,
    per_example_gradients,
)

D1, D2 = 3, 2  # the weight vector is split over two leaves to exercise pytrees
D = D1 + D2
NOISE_SD = 0.5


def _apply(params, x):
    return (x[:, :D1] @ params["w1"] + x[:, D1:] @ params["w2"])[:, None]  # (n, 1)


LOSS = mse_loss(_apply)


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    w_star = rng.normal(size=D)
    r = rng.normal(size=D)
    r = r / np.linalg.norm(r)  # |r|^2 = 1
    w = w_star + r
    params = {"w1": jnp.asarray(w[:D1]), "w2": jnp.asarray(w[D1:])}
    return rng, w_star, r, params


def _data(rng, w_star, shape):
    x = rng.normal(size=(*shape, D))
    y = x @ w_star + NOISE_SD * rng.normal(size=shape)
    return jnp.asarray(x), jnp.asarray(y[..., None])


def _truth(r):
    r2 = float(r @ r)
    trace_cov = D * (r2 + NOISE_SD**2) + r2  # closed form in the module docstring
    return trace_cov, r2


def _mlp_problem():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(1), 3)
    params = {"hidden": {"w": jax.random.normal(k1, (4, 6)) / 2, "b": jnp.zeros(6)}, "out": jax.random.normal(k2, (6, 2))}

    def apply(p, x):
        return jnp.tanh(x @ p["hidden"]["w"] + p["hidden"]["b"]) @ p["out"]

    x = jax.random.normal(k3, (7, 4))
    y = jnp.sin(x[:, :2])
    return mse_loss(apply), params, (x, y)


def test_per_example_gradients_match_loop_and_average_to_batch_gradient():
    loss, params, (x, y) = _mlp_problem()
    pe = per_example_gradients(loss, params, (x, y))
    assert jax.tree.structure(pe) == jax.tree.structure(params)
    for g, p in zip(jax.tree.leaves(pe), jax.tree.leaves(params)):
        assert g.shape == (7, *p.shape)
    grad = jax.jit(jax.grad(loss))
    for i in range(7):  # independent reference: jax.grad on each single example in a Python loop
        gi = grad(params, (x[i : i + 1], y[i : i + 1]))
        for a, b in zip(jax.tree.leaves(pe), jax.tree.leaves(gi)):
            np.testing.assert_allclose(a[i], b, rtol=1e-12, atol=1e-14)  # float64, same arithmetic
    batch_grad = grad(params, (x, y))
    for a, b in zip(jax.tree.leaves(pe), jax.tree.leaves(batch_grad)):
        np.testing.assert_allclose(jnp.mean(a, axis=0), b, rtol=1e-12, atol=1e-14)


def test_linear_regression_gradient_matches_closed_form():
    rng, w_star, r, params = _problem()
    x, y = _data(rng, w_star, (5,))
    pe = per_example_gradients(LOSS, params, (x, y))
    g = jnp.concatenate([pe["w1"], pe["w2"]], axis=1)  # (5, D)
    eps = y[:, 0] - x @ w_star
    expected = (x @ r - eps)[:, None] * x  # g = (r . x - eps) x
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-12)


def test_one_batch_equals_two_batch_with_single_examples_averaged():
    # Algebraic identity: the U-statistics are the two-batch estimator with B_small = 1, B_big = B,
    # averaged over the B choices of the small batch.
    rng, w_star, _, params = _problem()
    x, y = _data(rng, w_star, (9,))
    pe = per_example_gradients(LOSS, params, (x, y))
    g = np.concatenate([pe["w1"], pe["w2"]], axis=1)  # (9, D)
    small = np.sum(g**2, axis=1)  # |g_i|^2 for each of the 9 choices
    big = np.full(9, np.sum(g.mean(axis=0) ** 2))
    a = gradient_noise_scale(pe)
    b = noise_scale_from_batch_sizes(small, big, 1, 9)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-10)  # float64 round-off only


def test_estimators_are_unbiased_on_linear_regression():
    n_batches, b_big, b_small = 4000, 16, 4
    rng, w_star, r, params = _problem()
    trace_true, g2_true = _truth(r)  # tr(Sigma) = 5 * 1.25 + 1 = 7.25, |G|^2 = 1
    x, y = _data(rng, w_star, (n_batches, b_big))  # (N, B, D), (N, B, 1)
    one = jax.jit(jax.vmap(lambda xb, yb: gradient_noise_scale(loss=LOSS, params=params, batch=(xb, yb))))(x, y)
    pe = jax.vmap(lambda xb, yb: per_example_gradients(LOSS, params, (xb, yb)))(x, y)
    g = jnp.concatenate([pe["w1"], pe["w2"]], axis=2)  # (N, B, D)
    sq_small = jnp.sum(jnp.mean(g[:, :b_small], axis=1) ** 2, axis=1)  # (N,) nested small batch
    sq_big = jnp.sum(jnp.mean(g, axis=1) ** 2, axis=1)  # (N,)
    two = jax.vmap(lambda s, b: noise_scale_from_batch_sizes(s, b, b_small, b_big))(sq_small, sq_big)

    def check_mean(samples, truth, scale):
        samples = np.asarray(samples)
        se = samples.std(ddof=1) / np.sqrt(samples.size)
        assert se < 0.1 * scale  # the test has power: a bias of 10% of the true value would be caught
        assert abs(samples.mean() - truth) < 4 * se  # 4 standard errors of the Monte Carlo mean

    for est in (one, two):
        check_mean(est.trace_cov, trace_true, trace_true)
        check_mean(est.grad_sq_norm, g2_true, g2_true)
    # the two estimators agree in expectation (paired over the same batches)
    check_mean(np.asarray(one.trace_cov) - np.asarray(two.trace_cov), 0.0, trace_true)
    check_mean(np.asarray(one.grad_sq_norm) - np.asarray(two.grad_sq_norm), 0.0, g2_true)

    # B_simple as the ratio of averages (the paper's recipe) matches tr(Sigma)/|G|^2
    b_true = trace_true / g2_true
    for pooled, est in ((average_noise_scale(one), one), (noise_scale_from_batch_sizes(sq_small, sq_big, b_small, b_big), two)):
        t, q = np.asarray(est.trace_cov), np.asarray(est.grad_sq_norm)
        z = (t - pooled.b_simple * q) / q.mean()  # delta method: influence of each batch on t.mean()/q.mean()
        se = z.std(ddof=1) / np.sqrt(z.size)
        assert se < 0.1 * b_true
        assert abs(float(pooled.b_simple) - b_true) < 4 * se  # 4 delta-method standard errors
    np.testing.assert_allclose(average_noise_scale(two).b_simple,
                               noise_scale_from_batch_sizes(sq_small, sq_big, b_small, b_big).b_simple, rtol=1e-10)


def test_float32_and_jit():
    loss, params, (x, y) = _mlp_problem()
    p32 = jax.tree.map(lambda a: a.astype(jnp.float32), params)
    b32 = (x.astype(jnp.float32), y.astype(jnp.float32))
    pe32 = jax.jit(per_example_gradients, static_argnums=0)(loss, p32, b32)
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(pe32))
    est32 = jax.jit(gradient_noise_scale)(pe32)
    est64 = gradient_noise_scale(loss=loss, params=params, batch=(x, y))
    assert isinstance(est32, NoiseScale)
    for u, v in zip(est32, est64):
        assert u.dtype == jnp.float32 and u.shape == ()
        np.testing.assert_allclose(u, v, rtol=1e-3)  # float32 round-off on a 7-example batch
    two = jax.jit(noise_scale_from_batch_sizes, static_argnums=(2, 3))(jnp.float32(2.0), jnp.float32(1.0), 2, 8)
    assert two.trace_cov.dtype == jnp.float32
    # by hand: |G|^2 = (8*1 - 2*2)/6 = 2/3, tr(Sigma) = (2 - 1)/(1/2 - 1/8) = 8/3, B_simple = 4
    np.testing.assert_allclose([two.grad_sq_norm, two.trace_cov, two.b_simple], [2 / 3, 8 / 3, 4.0], rtol=1e-6)


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: noise_scale_from_batch_sizes(1.0, 0.5, 4, 4), "b_big"),
        (lambda: noise_scale_from_batch_sizes(1.0, 0.5, 8, 4), "b_big"),
        (lambda: noise_scale_from_batch_sizes(1.0, 0.5, 0, 4), "b_small"),
        (lambda: noise_scale_from_batch_sizes(1.0, 0.5, 2.5, 4), "b_small"),
        (lambda: noise_scale_from_batch_sizes(jnp.ones(3), jnp.ones(4), 2, 4), "sq_norm_big"),
        (lambda: gradient_noise_scale({"w": jnp.ones((1, 3))}), "per_example_grads"),
        (lambda: gradient_noise_scale({"w": jnp.ones((4, 3)), "b": jnp.ones((5,))}), "per_example_grads"),
        (lambda: gradient_noise_scale(), "per_example_grads"),
        (lambda: gradient_noise_scale({"w": jnp.ones((4, 3))}, loss=LOSS), "per_example_grads"),
        (lambda: per_example_gradients(LOSS, {"w1": jnp.ones(D1), "w2": jnp.ones(D2)},
                                       (jnp.ones((4, D)), jnp.ones((3, 1)))), "batch"),
    ],
)
def test_bad_inputs_name_the_field(call, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        call()
