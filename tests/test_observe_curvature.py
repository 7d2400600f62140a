"""Curvature probes against dense Hessians (jax.hessian + numpy.linalg) and against optax's Adam."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from learnmech.observe.curvature import (
    adam_preconditioner,
    hvp,
    preconditioned_sharpness,
    sharpness,
    top_eigenvalues,
)
from learnmech.observe.ensemble_curvature import LAYOUTS, _AUTO_MAP_PARAMETERS, _auto_layout, ensemble_sharpness
from learnmech.observe.probes import ntk_probe, sharpness_probe
from learnmech.train import OptimizerSpec, train

# Tolerances (float64 unless stated). Exact-arithmetic identities (HVP vs dense Hessian, Lanczos with
# iterations = P, the Adam update) are met to rounding: RTOL_EXACT. Iterative estimates stopped at a
# relative Rayleigh-quotient change of TOL_ITER land within RTOL_ITER of the exact eigenvalue on these
# well-separated spectra. float32 estimates: RTOL_F32.
RTOL_EXACT = 1e-9
TOL_ITER = 1e-12
RTOL_ITER = 1e-7
RTOL_F32 = 1e-4


def mlp_params(seed=0, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    return {
        "w1": jnp.asarray(rng.normal(size=(3, 5)), dtype),
        "b1": jnp.asarray(0.1 * rng.normal(size=5), dtype),
        "w2": jnp.asarray(rng.normal(size=(5, 1)) / 5**0.5, dtype),
    }  # P = 15 + 5 + 5 = 25


def mlp_loss(params, batch):
    x, y = batch
    f = jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"]
    return 0.5 * jnp.mean(jnp.sum((f - y) ** 2, axis=-1))  # L = (1/2n) sum_i ||f(x_i) - y_i||^2


def mlp_batch(dtype=jnp.float64):
    rng = np.random.default_rng(100)
    return jnp.asarray(rng.normal(size=(8, 3)), dtype), jnp.asarray(rng.normal(size=(8, 1)), dtype)


@functools.partial(jax.jit, static_argnums=0)
def _dense_hessian(loss, params, batch):
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda x: loss(unravel(x), batch))(flat)  # (P, P)


def dense_hessian(loss, params, batch):
    return np.asarray(_dense_hessian(loss, params, batch))


def quad_loss(params, a):
    w = params["w"]
    return 0.5 * w @ a @ w


def quad_matrix(eigs, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(eigs), len(eigs))))
    return jnp.asarray(q @ np.diag(eigs) @ q.T)


def quad_params(n):
    return {"w": jnp.ones(n)}  # the Hessian of 1/2 w^T A w is A wherever w is


# ------------------------------------------------------------------------------------------- hvp


def test_hvp_equals_dense_hessian_times_v():
    params, batch = mlp_params(), mlp_batch()
    v = jax.tree_util.tree_map(lambda p: jnp.cos(jnp.arange(p.size).reshape(p.shape) + 1.0), params)
    got = ravel_pytree(jax.jit(hvp, static_argnums=0)(mlp_loss, params, batch, v))[0]  # jittable
    want = dense_hessian(mlp_loss, params, batch) @ np.asarray(ravel_pytree(v)[0])  # jax.hessian contracted
    np.testing.assert_allclose(got, want, rtol=RTOL_EXACT, atol=1e-12)


# ------------------------------------------------------------------------------------- sharpness


@pytest.mark.parametrize("method", ["power", "lanczos"])
def test_sharpness_mlp_matches_eigvalsh(method):
    params, batch = mlp_params(), mlp_batch()
    want = np.linalg.eigvalsh(dense_hessian(mlp_loss, params, batch))[-1]
    est = sharpness(mlp_loss, params, batch, method=method, iterations=500, tol=TOL_ITER)
    np.testing.assert_allclose(est.eigenvalue, want, rtol=RTOL_ITER)
    assert bool(est.converged)


@pytest.mark.parametrize("method", ["power", "lanczos"])
@pytest.mark.parametrize(
    "eigs",
    [
        [-5.0, -1.0, 0.5, 1.0, 2.0, 3.0],  # most negative eigenvalue dominates in magnitude
        [-3.0, 0.0, 0.5, 1.0, 1.5, 3.0],  # +-3 tie: unshifted power iteration oscillates between the two
        [-4.0, -3.5, -3.0, -2.0, -1.7, -1.5],  # negative definite: the top eigenvalue is -1.5
    ],
)
def test_sharpness_returns_top_not_largest_magnitude(method, eigs):
    a = quad_matrix(eigs)
    est = sharpness(quad_loss, quad_params(len(eigs)), a, method=method, iterations=2000, tol=TOL_ITER)
    np.testing.assert_allclose(est.eigenvalue, max(eigs), rtol=RTOL_ITER)  # exact: max of the chosen spectrum


def test_quadratic_gives_lambda_max_of_a():
    eigs = [-1.0, 0.0, 1.0, 2.0, 4.0, 7.0]  # gap 7 -> 4 for fast power convergence
    a = quad_matrix(eigs, seed=3)
    for method in ("power", "lanczos"):
        est = sharpness(quad_loss, quad_params(6), a, method=method, iterations=300, tol=TOL_ITER)
        np.testing.assert_allclose(est.eigenvalue, 7.0, rtol=1e-10)  # lambda_max(A) = 7 by construction


def test_float32():
    params, batch = mlp_params(dtype=jnp.float32), mlp_batch(jnp.float32)
    as64 = jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), (params, batch))
    want = np.linalg.eigvalsh(dense_hessian(mlp_loss, *as64))[-1]  # float64 reference at the same point
    for method in ("power", "lanczos"):
        est = sharpness(mlp_loss, params, batch, method=method, iterations=300, tol=1e-6)
        assert est.eigenvalue.dtype == jnp.float32
        np.testing.assert_allclose(est.eigenvalue, want, rtol=RTOL_F32)


def test_jit_and_vmap_over_members_equal_loop():
    members = [mlp_params(seed) for seed in range(3)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *members)
    batch = mlp_batch()
    for method in ("power", "lanczos"):

        def probe(p):
            return sharpness(mlp_loss, p, batch, method=method, iterations=200, tol=1e-10)

        batched = jax.jit(jax.vmap(probe))(stacked)
        looped = [probe(p) for p in members]
        np.testing.assert_allclose(batched.eigenvalue, [e.eigenvalue for e in looped], rtol=1e-12)
        np.testing.assert_array_equal(batched.iterations, [e.iterations for e in looped])
        exact = [np.linalg.eigvalsh(dense_hessian(mlp_loss, p, batch))[-1] for p in members]
        np.testing.assert_allclose(batched.eigenvalue, exact, rtol=1e-6)


def test_convergence_flag_and_iteration_count():
    eigs = np.array([0.0, 0.1, 0.5, 1.0, 2.0, 2.2])  # ratio 2/2.2: power needs ~100s of steps for 1e-12
    a, params = quad_matrix(eigs), quad_params(6)
    capped = sharpness(quad_loss, params, a, method="power", iterations=3, tol=TOL_ITER)
    assert not bool(capped.converged)
    assert int(capped.iterations) == 6  # both phases hit their cap of 3 HVPs
    loose = sharpness(quad_loss, params, a, method="power", iterations=1000, tol=1e-3)
    assert bool(loose.converged) and 2 < int(loose.iterations) < 100
    tight = sharpness(quad_loss, params, a, method="power", iterations=1000, tol=TOL_ITER)
    assert bool(tight.converged) and int(tight.iterations) > int(loose.iterations)
    np.testing.assert_allclose(tight.eigenvalue, 2.2, rtol=RTOL_ITER)
    short = sharpness(quad_loss, params, a, method="lanczos", iterations=2, tol=TOL_ITER)
    full = sharpness(quad_loss, params, a, method="lanczos", iterations=6, tol=TOL_ITER)
    assert not bool(short.converged) and int(short.iterations) == 2
    assert bool(full.converged) and int(full.iterations) == 6  # Krylov space = whole space: residual 0


# -------------------------------------------------------------------------------- ensemble sharpness


def stack(trees):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


# ensemble_sharpness vs per-member sharpness, float64: both run the same iteration on the same start vector,
# so they agree to rounding (RTOL_EXACT) with equal HVP counts whenever the stopping test is not within
# rounding of tol (tol = 1e-10 here, far from the 1e-16 rounding). Against dense eigvalsh: RTOL_ITER-like
# 1e-6, the accuracy of a Rayleigh quotient stopped at a relative change of 1e-10.
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("method", ["power", "lanczos"])
def test_ensemble_sharpness_equals_per_member_sharpness(layout, method):
    members = [mlp_params(seed) for seed in range(4)]
    batch, key = mlp_batch(), jax.random.PRNGKey(7)
    kwargs = dict(method=method, iterations=200, tol=1e-10, key=key)
    got = ensemble_sharpness(mlp_loss, stack(members), batch, layout=layout, **kwargs)
    want = [sharpness(mlp_loss, p, batch, **kwargs) for p in members]
    assert got.eigenvalue.shape == got.iterations.shape == got.converged.shape == (4,)
    np.testing.assert_allclose(got.eigenvalue, [w.eigenvalue for w in want], rtol=RTOL_EXACT)
    np.testing.assert_array_equal(got.iterations, [w.iterations for w in want])
    np.testing.assert_array_equal(got.converged, [w.converged for w in want])
    exact = [np.linalg.eigvalsh(dense_hessian(mlp_loss, p, batch))[-1] for p in members]
    np.testing.assert_allclose(got.eigenvalue, exact, rtol=1e-6)


@pytest.mark.parametrize("layout", ["vmap", "map"])
def test_ensemble_sharpness_per_member_batches(layout):
    # member m: its own quadratic 1/2 w^T A_m w, lambda_max(A_m) = 3 + m by construction; the matrices are
    # stacked on axis 1 to exercise batch_axis != 0
    tops = [3.0, 4.0, 5.0]
    mats = [quad_matrix([-2.0, 0.5, 1.0, t], seed=m) for m, t in enumerate(tops)]
    params = stack([quad_params(4)] * 3)
    got = ensemble_sharpness(quad_loss, params, jnp.stack(mats, axis=1), batch_axis=1, layout=layout,
                             iterations=1000, tol=1e-13)
    np.testing.assert_allclose(got.eigenvalue, tops, rtol=RTOL_ITER)
    want = [sharpness(quad_loss, quad_params(4), a, iterations=1000, tol=1e-13).eigenvalue for a in mats]
    np.testing.assert_allclose(got.eigenvalue, want, rtol=RTOL_EXACT)


def test_ensemble_sharpness_float32_single_member():
    params, batch = mlp_params(dtype=jnp.float32), mlp_batch(jnp.float32)
    as64 = jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), (params, batch))
    want = np.linalg.eigvalsh(dense_hessian(mlp_loss, *as64))[-1]
    for layout in ("vmap", "map"):
        got = ensemble_sharpness(mlp_loss, stack([params]), batch, iterations=300, tol=1e-6, layout=layout)
        assert got.eigenvalue.dtype == jnp.float32 and got.eigenvalue.shape == (1,)
        np.testing.assert_allclose(got.eigenvalue[0], want, rtol=RTOL_F32)


def test_auto_layout_threshold():
    assert set(_AUTO_MAP_PARAMETERS) == {"power", "lanczos"}
    for method, threshold in _AUTO_MAP_PARAMETERS.items():
        if threshold > 1:
            assert _auto_layout(method, threshold - 1) == "vmap"
        assert _auto_layout(method, max(threshold, 1)) == "map"
        assert _auto_layout(method, 10**6) == "map"


def test_ensemble_sharpness_bad_inputs_raise_naming_the_field():
    params, batch = stack([mlp_params(0), mlp_params(1)]), mlp_batch()
    ragged = {**params, "b1": params["b1"][:1]}
    cases = [
        ("layout", lambda: ensemble_sharpness(mlp_loss, params, batch, layout="pmap")),
        ("layout", lambda: ensemble_sharpness(mlp_loss, params, batch, layout=None)),
        ("params", lambda: ensemble_sharpness(mlp_loss, ragged, batch)),
        ("params", lambda: ensemble_sharpness(mlp_loss, {"w": jnp.float64(1.0)}, batch)),
        ("batch_axis", lambda: ensemble_sharpness(mlp_loss, params, batch, batch_axis=0)),  # n = 8, M = 2
        ("batch_axis", lambda: ensemble_sharpness(mlp_loss, params, batch, batch_axis=5)),
        ("batch_axis", lambda: ensemble_sharpness(mlp_loss, params, batch, batch_axis="0")),
        ("method", lambda: ensemble_sharpness(mlp_loss, params, batch, method="arnoldi")),
        ("tol", lambda: ensemble_sharpness(mlp_loss, params, batch, tol=-1.0)),
    ]
    for field, call in cases:
        with pytest.raises(ValueError, match=f"^{field}:"):
            call()


# ------------------------------------------------------------------------------------ Lanczos top-k


def test_top_eigenvalues_equal_k_largest_exact():
    params, batch = mlp_params(), mlp_batch()
    exact = np.linalg.eigvalsh(dense_hessian(mlp_loss, params, batch))[::-1]
    full = top_eigenvalues(mlp_loss, params, batch, 5, iterations=25, key=jax.random.PRNGKey(2))  # P = 25
    np.testing.assert_allclose(full, exact[:5], rtol=RTOL_EXACT, atol=1e-10)
    eigs = np.concatenate([[9.0, 7.0, 5.0], np.linspace(-1.0, 1.0, 37)])  # 3 outliers above a bulk
    a = quad_matrix(eigs, seed=4)
    partial = top_eigenvalues(quad_loss, quad_params(40), a, 4, iterations=20)  # 20 of 40 steps
    np.testing.assert_allclose(partial[:3], [9.0, 7.0, 5.0], rtol=1e-8)  # exact by construction
    assert 0.9 < partial[3] <= 1.0 + 1e-12  # Ritz values interlace: the 4th approaches the bulk edge 1 from below


def test_top_eigenvalues_low_rank_breakdown():
    eigs = np.concatenate([[9.0, 7.0, 5.0], np.zeros(37)])  # rank 3: Krylov space exhausted after 4 steps
    a = quad_matrix(eigs, seed=5)
    got = top_eigenvalues(quad_loss, quad_params(40), a, 4, iterations=20)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, [9.0, 7.0, 5.0, 0.0], rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------- preconditioned / Adam


def test_preconditioned_sharpness_matches_dense():  # the P^{-1/2} scaling is shared by both methods
    params, batch = mlp_params(), mlp_batch()
    precond = jax.tree_util.tree_map(lambda p: 0.2 + jnp.abs(jnp.sin(p * 3.0)), params)  # positive diag
    h = dense_hessian(mlp_loss, params, batch)
    p = np.asarray(ravel_pytree(precond)[0])
    want = np.max(np.linalg.eigvals(np.diag(1 / p) @ h).real)  # dense non-symmetric P^{-1} H
    est = preconditioned_sharpness(mlp_loss, params, batch, precond, iterations=500, tol=TOL_ITER)
    np.testing.assert_allclose(est.eigenvalue, want, rtol=RTOL_ITER)


def test_adam_preconditioner_reproduces_optax_update():
    b1, b2, eps, lr = 0.9, 0.99, 1e-3, 0.05
    opt = optax.adam(lr, b1=b1, b2=b2, eps=eps)
    params = {"a": jnp.zeros(4), "b": jnp.zeros((2, 3))}
    state = opt.init(params)
    rng = np.random.default_rng(0)
    update = jax.jit(opt.update)
    for _ in range(7):
        grads = jax.tree_util.tree_map(lambda p: jnp.asarray(rng.normal(size=p.shape)), params)
        updates, state = update(grads, state, params)
    adam_state = state[0]  # ScaleByAdamState(count, mu, nu)
    precond = adam_preconditioner(adam_state.nu, adam_state.count, b1, b2, eps)
    want = jax.tree_util.tree_map(lambda m, p: -lr * m / p, adam_state.mu, precond)  # -eta P^{-1} mu_t
    for got_leaf, want_leaf in zip(jax.tree_util.tree_leaves(updates), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(got_leaf, want_leaf, rtol=RTOL_EXACT)


def test_adam_threshold_from_frozen_preconditioner_recursion():
    # Frozen-P Adam on 1/2 lambda w^2 (lambda = eigenvalue of P^{-1} H): state (w, m) evolves linearly,
    # m' = b1 m + (1 - b1) lambda w, w' = w - eta m'. Stable iff spectral radius < 1; the threshold is
    # lambda* = (2 + 2 b1) / ((1 - b1) eta) = 38 / eta at b1 = 0.9 (Cohen et al. 2022, arXiv:2207.14484).
    b1, eta = 0.9, 0.01
    threshold = (2 + 2 * b1) / ((1 - b1) * eta)
    np.testing.assert_allclose(threshold, 38 / eta)

    def radius(lam):
        step = np.array([[b1, (1 - b1) * lam], [-eta * b1, 1 - eta * (1 - b1) * lam]])  # (m, w) -> (m', w')
        return np.max(np.abs(np.linalg.eigvals(step)))

    assert radius(0.99 * threshold) < 1 < radius(1.01 * threshold)


# ------------------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_naming_the_field():
    params, batch = mlp_params(), mlp_batch()
    cases = [
        ("method", lambda: sharpness(mlp_loss, params, batch, method="arnoldi")),
        ("iterations", lambda: sharpness(mlp_loss, params, batch, iterations=0)),
        ("iterations", lambda: sharpness(mlp_loss, params, batch, iterations=2.5)),
        ("tol", lambda: sharpness(mlp_loss, params, batch, tol=0.0)),
        ("k", lambda: top_eigenvalues(mlp_loss, params, batch, 6, iterations=5)),
        ("k", lambda: top_eigenvalues(mlp_loss, params, batch, 0, iterations=5)),
        ("iterations", lambda: top_eigenvalues(mlp_loss, params, batch, 1, iterations=26)),  # P = 25
        ("v", lambda: hvp(mlp_loss, params, batch, {"w1": params["w1"]})),
        ("preconditioner", lambda: preconditioned_sharpness(mlp_loss, params, batch, [1.0])),
        ("b1", lambda: adam_preconditioner(params, 1, b1=1.0)),
        ("eps", lambda: adam_preconditioner(params, 1, eps=-1.0)),
        ("step", lambda: adam_preconditioner(params, 0)),
    ]
    for field, call in cases:
        with pytest.raises(ValueError, match=f"^{field}:"):
            call()


# ------------------------------------------------------------------------------ probes for the trainer


def test_probe_builders_run_in_the_trainer_with_their_layout_rules():
    """Sharpness of a quadratic is lambda_max(A) = 3 at every step; the NTK of f(x) = x.w is X X^T."""
    a = quad_matrix([3.0, 1.0, -0.5])
    probes = [sharpness_probe(quad_loss, method="power", iterations=500, tol=1e-12, every=5),
              sharpness_probe(quad_loss, name="lanczos", method="lanczos", iterations=3, every=5),
              ntk_probe(lambda p, x: x @ p["w"][:, None], 2 * jnp.eye(3), steps=[10])]
    assert (probes[0].map_from, probes[1].map_from) == (0, _AUTO_MAP_PARAMETERS["lanczos"])
    r = train(params0={"w": jnp.ones((1, 3))}, loss=quad_loss, data=a, seeds=[0], steps=[0, 10], probes=probes,
              optimizer=OptimizerSpec("sgd", {"learning_rate": 0.1}))
    np.testing.assert_array_equal(r.probes["sharpness"].steps, [0, 5, 10])
    np.testing.assert_allclose(r.probes["sharpness"].values, 3.0, rtol=RTOL_ITER)
    np.testing.assert_allclose(r.probes["lanczos"].values, 3.0, rtol=RTOL_EXACT)
    np.testing.assert_allclose(r.probes["ntk"].values[0, 0], 4 * np.eye(3), atol=1e-12)
