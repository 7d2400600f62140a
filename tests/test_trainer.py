"""The vectorised trainer (train/) against hand-written references.

References: a plain per-member gradient-descent loop written here with ``jax.grad`` (no optax,
no trainer code), closed forms of gradient descent on a quadratic, heavy-ball and Adam
recursions written in numpy, and brute-force identification of a minibatch.

Every ``train`` call compiles its own program (a few seconds on a CPU), so the calls below are
few and shared between tests through module-scoped fixtures.
"""

import doctest
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from learnmech.nets import MLP
from learnmech.observe import mse_loss, parameter_norms
from learnmech.observe.probes import preconditioned_sharpness_probe, sharpness_probe
from learnmech.train import (
    OneOf,
    OptimizerSpec,
    Probe,
    build_optimizer,
    ensemble_members,
    linear_schedule,
    log_schedule,
    train,
    validate_schedule,
)
from learnmech.train import schedule as schedule_module
from learnmech.train.member import call_with_hp

# ---------------------------------------------------------------- a tiny tanh network

MODEL = MLP((3, 8, 2), activation="tanh", dtype="float64")
_rng = np.random.default_rng(0)
DATA = (_rng.standard_normal((16, 3)), _rng.standard_normal((16, 2)))  # x (16, 3), y (16, 2)
LOSS = mse_loss(MODEL.apply)
_FLAT0, UNRAVEL = ravel_pytree(
    [{"w": np.zeros((3, 8)), "b": np.zeros(8)}, {"w": np.zeros((8, 2)), "b": np.zeros(2)}]
)


def INIT(key):
    """Every parameter N(0, 0.25) from one draw (one random draw keeps each compile short)."""
    return UNRAVEL(0.5 * jax.random.normal(key, _FLAT0.shape, jnp.float64))


def OBSERVE(params, params0):
    return {"flat": ravel_pytree(params)[0], "norms": parameter_norms(params)}


SEEDS = [0, 1, 2]
LRS = [0.1, 0.3]  # stable rates
LR_DIVERGE = 50.0  # the loss passes 1e6 x its initial value within 3 steps (measured)
STEPS = [0, 1, 2, 3, 4, 6, 9, 14, 20, 30]  # uneven gaps: one compiled chunk serves them all


def _train_mlp(lrs, seeds=SEEDS, layout="vmap"):
    return train(init=INIT, loss=LOSS, data=DATA, optimizer=OptimizerSpec("sgd"), seeds=seeds,
                 grid={"learning_rate": lrs}, steps=STEPS, observe=OBSERVE, layout=layout)


@pytest.fixture(scope="module")
def run_stable():
    return _train_mlp(LRS)


@pytest.fixture(scope="module")
def run_with_divergence():
    return _train_mlp(LRS + [LR_DIVERGE])


def _reference_member(seed, lr):
    """Plain GD loop for one member: init key = first half of split(key(seed)) (trainer contract)."""
    params = _INIT_JIT(jax.random.split(jax.random.key(seed))[0])
    losses, flats = [], []
    for k in range(STEPS[-1] + 1):
        if k in STEPS:
            losses.append(float(_LOSS_JIT(params)))
            flats.append(np.asarray(ravel_pytree(params)[0]))
        params = _GD_STEP(params, lr)
    return np.array(losses), np.array(flats)


_INIT_JIT = jax.jit(INIT)
_LOSS_JIT = jax.jit(lambda p: LOSS(p, DATA))
_GD_STEP = jax.jit(lambda p, lr: jax.tree.map(lambda a, g: a - lr * g, p, jax.grad(LOSS)(p, DATA)))


def test_vectorised_trainer_equals_a_per_member_loop(run_stable):
    r = run_stable
    assert r.shape == (2, 3) and r["loss"].shape == (2, 3, len(STEPS))  # (lr, seed, step)
    np.testing.assert_array_equal(r.steps, STEPS)
    for (g, lr), (s, seed) in itertools.product(enumerate(LRS), enumerate(SEEDS)):
        losses, flats = _reference_member(seed, lr)
        # float64; vmap may reorder sums, so 1e-6 is generous (observed agreement ~1e-15)
        np.testing.assert_allclose(r["loss"][g, s], losses, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(r["flat"][g, s], flats, rtol=1e-6, atol=1e-12)
        final = ravel_pytree(jax.tree.map(lambda a: a[g, s], r.params))[0]
        np.testing.assert_allclose(final, flats[-1], rtol=1e-6, atol=1e-12)
    assert not r.diverged.any() and np.all(r.diverged_step == -1)
    assert np.all(np.diff(r["loss"], axis=-1) < 0)  # small-step GD descends at every observation


def test_diverging_member_is_marked_and_isolated(run_stable, run_with_divergence):
    r = run_with_divergence
    assert r.diverged.shape == (3, 3)
    assert r.diverged[2].all() and not r.diverged[:2].any()
    np.testing.assert_array_equal(r.diverged_step[:2], -1)
    steps = np.asarray(STEPS)
    for s in range(len(SEEDS)):
        d = r.diverged_step[2, s]
        assert 0 <= d < STEPS[-1]
        for name in ("loss", "norms", "flat"):
            obs = r[name][2, s]  # (T, ...)
            assert np.isnan(obs[steps > d]).all(), name  # NaN after the divergence step
            assert np.isfinite(obs[steps <= d]).all(), name  # recorded up to it
        frozen = ravel_pytree(jax.tree.map(lambda a: a[2, s], r.params))[0]
        assert np.isfinite(frozen).all()
        if d in STEPS:  # parameters freeze at the last finite state, the one observed at step d
            np.testing.assert_array_equal(frozen, r["flat"][2, s][STEPS.index(d)])
    # the other members do not notice: equal to the run without the diverging rate
    for name in ("loss", "norms", "flat"):
        np.testing.assert_allclose(r[name][:2], run_stable[name], rtol=1e-12, atol=0)
    for a, b in zip(jax.tree.leaves(r.params), jax.tree.leaves(run_stable.params)):
        np.testing.assert_allclose(a[:2], b, rtol=1e-12, atol=0)


# ---------------------------------------------------------------- optimisers on a quadratic

A = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])  # SPD, eigenvalues in (0.4, 2.1)
X0 = np.array([1.0, -2.0, 0.5])
QSTEPS = [0, 1, 2, 3, 4, 5, 6, 8, 10]


def _quadratic(params, a):
    """sum over leaves of 1/2 x^T A x; gradient A x per leaf."""
    return sum(0.5 * x @ a @ x for x in params)


def _train_quadratic(optimizer, grid, n_leaves=1, lr_multipliers=None, layout="vmap"):
    def init(key, hp):  # deterministic: the key is unused
        return [hp.get("scale", 1.0) * jnp.asarray(X0)] * n_leaves

    return train(init=init, loss=_quadratic, data=A, optimizer=optimizer, seeds=[0], grid=grid,
                 steps=QSTEPS, observe=lambda p, p0: {"x": jnp.stack(p)}, lr_multipliers=lr_multipliers,
                 layout=layout)


# learning rate 1.5 with multiplier 2 gives |1 - 3 lambda_max| ~ 5.3 on the third leaf: GD diverges
Q_LRS, Q_SCALES, Q_MULTIPLIERS = [0.1, 0.3, 1.5], [1.0, -2.0], [1.0, 0.0, 2.0]


def _train_quadratic_sgd(layout):
    # "scale" is a model hyperparameter, passed to init
    return _train_quadratic(OptimizerSpec("sgd"), {"learning_rate": Q_LRS, "scale": Q_SCALES},
                            n_leaves=3, lr_multipliers=Q_MULTIPLIERS, layout=layout)


@pytest.fixture(scope="module")
def run_quadratic_sgd():
    return _train_quadratic_sgd("vmap")


def _gd_closed_form(lr, c, k):
    """Leaves after k GD steps: x_k = (I - eta m A)^k x_0 with lr multiplier m (0 freezes the leaf)."""
    return np.stack([np.linalg.matrix_power(np.eye(3) - m * lr * A, k) @ (c * X0) for m in Q_MULTIPLIERS])


def test_sgd_matches_closed_form_and_lr_multipliers_scale_the_step(run_quadratic_sgd):
    r = run_quadratic_sgd
    assert r["x"].shape == (3, 2, 1, len(QSTEPS), 3, 3)  # (lr, scale, seed, T, leaf, 3)
    for (i, lr), (j, c) in itertools.product(enumerate(Q_LRS), enumerate(Q_SCALES)):
        # the divergence rule, from the closed form: first k with loss(x_k) > 1e6 loss(x_0)
        losses = np.array([_quadratic(_gd_closed_form(lr, c, k), A) for k in range(QSTEPS[-1] + 1)])
        above = np.flatnonzero(losses > 1e6 * losses[0])
        d = int(above[0]) if above.size else -1
        assert r.diverged_step[i, j, 0] == d and r.diverged[i, j, 0] == (d >= 0)
        for t, k in enumerate(QSTEPS):
            x = r["x"][i, j, 0, t]  # (leaf, 3)
            if d >= 0 and k > d:
                assert np.isnan(x).all() and np.isnan(r["loss"][i, j, 0, t])
                continue
            expected = _gd_closed_form(lr, c, k)
            np.testing.assert_allclose(x[0], expected[0], rtol=1e-12)
            np.testing.assert_array_equal(x[1], c * X0)  # multiplier 0: frozen
            np.testing.assert_allclose(x[2], expected[2], rtol=1e-12, atol=1e-15)  # multiplier 2: step doubled
            np.testing.assert_allclose(r["loss"][i, j, 0, t], losses[k], rtol=1e-12)
    assert (r.diverged_step[2] >= 0).all() and (r.diverged_step[:2] == -1).all()  # only eta = 1.5 diverges


def test_map_layout_equals_vmap_layout(run_quadratic_sgd):
    mapped = _train_quadratic_sgd("map")
    for name in ("loss", "x"):  # NaN positions (after divergence) must agree too
        np.testing.assert_allclose(mapped[name], run_quadratic_sgd[name], rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(mapped.diverged_step, run_quadratic_sgd.diverged_step)
    for a, b in zip(jax.tree.leaves(mapped.params), jax.tree.leaves(run_quadratic_sgd.params)):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def _heavy_ball_reference(lr, beta):
    """x_k of optax's heavy ball on the quadratic: v <- beta v + grad; x <- x - eta v (optax trace)."""
    x, v, ref = X0.copy(), np.zeros(3), {0: X0.copy()}
    for k in range(1, QSTEPS[-1] + 1):
        v = beta * v + A @ x
        x = x - lr * v
        ref[k] = x
    return np.array([ref[k] for k in QSTEPS])


def _adam_reference(lr, b1=0.9, b2=0.999, eps=1e-8):
    """x_k and Adam's P_k = (1 - b1^k)(sqrt(v_k / (1 - b2^k)) + eps) (Kingma & Ba 2015, Alg. 1; eps outside the root)."""
    x, m, v, ref, P = X0.copy(), np.zeros(3), np.zeros(3), {0: X0.copy()}, {0: np.full(3, np.nan)}
    for k in range(1, QSTEPS[-1] + 1):
        g = A @ x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        x = x - lr * (m / (1 - b1**k)) / (np.sqrt(v / (1 - b2**k)) + eps)
        ref[k], P[k] = x, (1 - b1**k) * (np.sqrt(v / (1 - b2**k)) + eps)
    return np.array([ref[k] for k in QSTEPS]), np.array([P[k] for k in QSTEPS])


def test_momentum_matches_heavy_ball_recursion():
    lr, betas = 0.1, [0.5, 0.9]
    r = _train_quadratic(OptimizerSpec("momentum"), {"learning_rate": [lr], "momentum": betas})
    for j, beta in enumerate(betas):
        np.testing.assert_allclose(r["x"][0, j, 0, :, 0], _heavy_ball_reference(lr, beta), rtol=1e-12)


def test_adam_matches_hand_written_adam():
    lrs = [0.05, 0.2]  # b1, b2, eps: optax defaults, as in OPTIMIZERS
    r = _train_quadratic(OptimizerSpec("adam", {"learning_rate": 1.0}), {"learning_rate": lrs})
    for i, lr in enumerate(lrs):
        np.testing.assert_allclose(r["x"][i, 0, :, 0], _adam_reference(lr)[0], rtol=1e-12)  # (lr, seed, T, leaf, 3)


# ---------------------------------------------------------------- minibatches

_mb_rng = np.random.default_rng(1)
MB_X = _mb_rng.standard_normal((16, 8))  # (n, d)
MB_Y = _mb_rng.standard_normal(16)  # (n,)
BATCH = 4


def _mb_loss(w, batch):
    x, y = batch
    return 0.5 * jnp.mean((x @ w - y) ** 2)


def _train_minibatch(seeds, progress=None, sampling="without_replacement"):
    return train(init=lambda key: jnp.zeros(8), loss=_mb_loss, data=(MB_X, MB_Y), optimizer=OptimizerSpec("sgd"),
                 seeds=seeds, grid={"learning_rate": [0.1]}, steps=10, observe=lambda w, w0: {"w": w},
                 batch_size=BATCH, progress=progress, sampling=sampling)


def test_sampling_with_replacement_draws_iid_indices_per_step():
    # The documented draw: step s of a member reads randint(fold_in(k_batch, s), (B,), 0, n), where
    # (k_init, k_batch) = split(key(seed)); replayed here in numpy SGD.
    r = _train_minibatch([3], sampling="with_replacement")
    k_batch = jax.random.split(jax.random.key(3))[1]
    w = np.zeros(8)
    for step in range(10):
        idx = np.asarray(jax.random.randint(jax.random.fold_in(k_batch, step), (BATCH,), 0, 16))
        x, y = MB_X[idx], MB_Y[idx]
        w = w - 0.1 * x.T @ (x @ w - y) / BATCH
    np.testing.assert_allclose(r["w"][0, 0, -1], w, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="sampling: must be one of"):
        _train_minibatch([0], sampling="bootstrap")


def test_minibatches_are_reproducible_and_seeded():
    calls = []
    r = _train_minibatch([0, 1, 0], progress=lambda done, total: calls.append((done, total)))
    np.testing.assert_array_equal(r.steps, log_schedule(10))  # an int means a log schedule
    assert calls[-1] == (10, 10) and [c[0] for c in calls] == list(log_schedule(10))
    # the same seed twice: bit-for-bit the same batches, whatever the member's place in the ensemble
    np.testing.assert_array_equal(r["w"][0, 2], r["w"][0, 0])
    # the init ignores the key, so seeds 0 and 1 differ only through their batches
    assert np.abs(r["w"][0, 0, -1] - r["w"][0, 1, -1]).max() > 1e-3
    # step 1 from w = 0: w_1 = (eta / B) sum_{i in S} y_i x_i for one batch S of B distinct examples
    subsets = np.array(list(itertools.combinations(range(16), BATCH)))  # (1820, 4), without replacement
    candidates = 0.1 / BATCH * np.einsum("sb,sbd->sd", MB_Y[subsets], MB_X[subsets])  # (1820, 8)
    found = []
    for s in range(2):
        w1 = r["w"][0, s, 1]
        dist = np.sort(np.abs(candidates - w1).max(axis=1))
        assert dist[0] < 1e-14 and dist[1] > 1e-3  # exactly one batch explains the step
        found.append(int(np.argmin(np.abs(candidates - w1).max(axis=1))))
        full = 0.5 * np.mean((MB_X @ w1 - MB_Y) ** 2)  # recorded "loss" is on the full data
        np.testing.assert_allclose(r["loss"][0, s, 1], full, rtol=1e-13)
    assert found[0] != found[1]


# ---------------------------------------------------------------- pure helpers


def test_ensemble_members_are_grid_major():
    hp, seed_index = ensemble_members({"a": [1.0, 2.0], "b": [10.0, 20.0, 30.0]}, seeds=[5, 6])
    np.testing.assert_array_equal(hp["a"], [1.0] * 6 + [2.0] * 6)
    np.testing.assert_array_equal(hp["b"], [10, 10, 20, 20, 30, 30] * 2)
    np.testing.assert_array_equal(seed_index, [0, 1] * 6)


def test_call_with_hp_and_optimizer_specs():
    assert call_with_hp(lambda k: k, 1, hp={"a": 2}) == 1
    assert call_with_hp(lambda k, hp: (k, hp["a"]), 1, hp={"a": 2}) == (1, 2)
    with pytest.raises(ValueError):
        OptimizerSpec("lbfgs")
    with pytest.raises(ValueError):
        OptimizerSpec("sgd", {"momentum": 0.9})  # not a hyperparameter of plain sgd
    with pytest.raises(ValueError):
        build_optimizer(OptimizerSpec("sgd", {}))  # no learning rate anywhere
    tx = build_optimizer(OptimizerSpec("sgd"), {"learning_rate": 0.5, "width": 64})  # model keys ignored
    updates, _ = tx.update(jnp.array([2.0]), tx.init(jnp.array([0.0])))
    np.testing.assert_allclose(updates, [-1.0], rtol=0)  # -eta g


def test_the_hyperparameter_channel_is_the_name_hp():
    """Before: a loss ``(params, batch, scale=1.0)`` received the hp dict as ``scale``, and a ``*args``
    wrapper of ``init(key)`` was called with ``(key, hp)`` (TypeError)."""
    hp = {"a": 2}
    assert call_with_hp(lambda k, scale=1.0: k * scale, 3.0, hp=hp) == 3.0
    assert call_with_hp(lambda *args: args, 1, hp=hp) == (1,)
    assert call_with_hp(lambda *args, **kwargs: (args, kwargs), 1, hp=hp) == ((1,), {})
    assert call_with_hp(lambda k, *, hp: (k, hp["a"]), 1, hp=hp) == (1, 2)
    exec("def positional(k, hp, /): return k, hp['a']", namespace := {})
    assert call_with_hp(namespace["positional"], 1, hp=hp) == (1, 2)

    def scaled(params, a, scale=1.0):  # a default argument is not the hyperparameter channel
        return scale * _quadratic(params, a)

    def wrapped_init(*args):  # what a wrapper such as a parameterisation's init looks like
        return [jnp.asarray(X0)]

    kwargs = dict(data=A, optimizer=OptimizerSpec("sgd"), seeds=[0], grid={"learning_rate": [0.1]}, steps=QSTEPS,
                  observe=lambda p, p0: {"x": jnp.stack(p)})
    got = train(init=wrapped_init, loss=scaled, **kwargs)
    for t, k in enumerate(QSTEPS):  # x_k = (I - eta A)^k x_0: plain GD on the unscaled quadratic
        np.testing.assert_allclose(got["x"][0, 0, t, 0], np.linalg.matrix_power(np.eye(3) - 0.1 * A, k) @ X0,
                                   rtol=1e-12)


def test_train_rejects_bad_arguments():
    kwargs = dict(init=INIT, loss=LOSS, data=DATA, optimizer=OptimizerSpec("sgd"), steps=[0, 1])
    for bad in [dict(seeds=[]), dict(grid={"learning_rate": []}), dict(grid={"learning_rate": [[0.1]]})]:
        with pytest.raises(ValueError):
            train(**kwargs, **bad)


def test_log_schedule_examples():
    assert doctest.testmod(schedule_module, verbose=False).failed == 0  # [0, 1, 10, 100, 1000]
    np.testing.assert_array_equal(log_schedule(10_000, 5), [0, 1, 10, 100, 1000, 10_000])
    np.testing.assert_array_equal(log_schedule(10_000, 5, include_zero=False), [1, 10, 100, 1000, 10_000])
    np.testing.assert_array_equal(log_schedule(1, 1), [0, 1])
    np.testing.assert_array_equal(linear_schedule(25, 10), [0, 10, 20, 25])
    for bad in [lambda: log_schedule(0), lambda: log_schedule(10, 0), lambda: linear_schedule(10, 0),
                lambda: validate_schedule([0, 2, 2]), lambda: validate_schedule([-1, 3]),
                lambda: validate_schedule([])]:
        with pytest.raises(ValueError):
            bad()


@settings(max_examples=100, deadline=None, derandomize=True, database=None)  # fixed examples
@given(total=st.integers(1, 10**7), points=st.integers(1, 300))
def test_log_schedule_properties(total, points):
    s = log_schedule(total, points)
    assert s.dtype == np.int64 and s[0] == 0 and s[-1] == total
    assert np.all(np.diff(s) > 0) and len(s) <= points + 1
    np.testing.assert_array_equal(validate_schedule(s), s)
    if points >= 2 and len(s) > 2:
        # log spacing: consecutive steps grow at most by the grid ratio r = total^{1/(points-1)}, up to rounding
        r = total ** (1 / (points - 1))
        assert np.all(s[2:] <= (s[1:-1] + 0.5) * r + 0.5 + 1e-9 * s[2:])


def test_a_member_trained_alone_equals_its_place_in_the_ensemble(run_stable):
    """The per-seed loop through the trainer itself: seed 1 at lr 0.3 alone vs inside 3 x 2 (float64, 1e-6)."""
    alone = _train_mlp([LRS[1]], seeds=[SEEDS[1]])
    np.testing.assert_allclose(alone["loss"][0, 0], run_stable["loss"][1, 1], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(alone["flat"][0, 0], run_stable["flat"][1, 1], rtol=1e-6, atol=1e-12)


# ---------------------------------------------------------------- probes, update rules as data

LAM_MAX = float(np.linalg.eigvalsh(A)[-1])


def test_probes_run_on_their_own_schedule_and_members(run_stable):
    """Lanczos over all P = 50 parameters is exact: the probe equals eigvalsh of the dense Hessian. The extra
    stops (7, 10, 20) leave the observations as they were, bit for bit."""
    norm = Probe("norm", lambda p, P, d: jnp.linalg.norm(ravel_pytree(p)[0]), steps=[7, 30], members=[1, 3])
    sharp = sharpness_probe(LOSS, method="lanczos", iterations=50, every=10)
    r = train(init=INIT, loss=LOSS, data=DATA, optimizer=OptimizerSpec("sgd"), seeds=SEEDS[:2],
              grid={"learning_rate": LRS}, steps=STEPS, observe=OBSERVE, probes=[norm, sharp])
    np.testing.assert_array_equal(r["flat"], run_stable["flat"][:, :2])
    s = r.probes["sharpness"]
    np.testing.assert_array_equal(s.steps, [0, 10, 20, 30])
    assert s.values.shape == (4, 4) and r.probes["norm"].values.shape == (2, 2)
    hessian = jax.jit(jax.hessian(lambda v: LOSS(UNRAVEL(v), DATA)))
    for m, (g, i) in enumerate(itertools.product(range(2), range(2))):  # members grid-major: (lr, seed)
        for t, step in ((0, 0), (3, 30)):
            flat = r["flat"][g, i, STEPS.index(step)]
            assert s.values[m, t] == pytest.approx(np.linalg.eigvalsh(hessian(flat))[-1], rel=1e-9)
    for k, m in enumerate([1, 3]):  # (lr 0.1, seed 1), (lr 0.3, seed 1)
        assert r.probes["norm"].values[k, 1] == pytest.approx(np.linalg.norm(r["flat"][m // 2, m % 2, -1]), rel=1e-12)


def test_probe_values_after_divergence_are_nan_and_multipliers_precondition():
    """Leaf multipliers (1, 0, 2) make P = 1 / m, so lambda_max(P^-1 H) = 2 lambda_max(A); lr 1.5 diverges."""
    lanczos = {"method": "lanczos", "iterations": 9}
    probes = [sharpness_probe(_quadratic, every=1, **lanczos),
              preconditioned_sharpness_probe(_quadratic, name="preconditioned", steps=[0, 1, 10], **lanczos)]
    r = train(init=lambda key: [jnp.asarray(X0)] * 3, loss=_quadratic, data=A, optimizer=OptimizerSpec("sgd"),
              seeds=[0], grid={"learning_rate": [0.1, 1.5]}, steps=QSTEPS, lr_multipliers=Q_MULTIPLIERS, probes=probes)
    d = r.diverged_step[1, 0]
    assert r.diverged_step[0, 0] == -1 and 0 <= d < 9
    s = r.probes["sharpness"].values  # (2, 11)
    np.testing.assert_allclose(s[0], LAM_MAX, rtol=1e-10)
    np.testing.assert_allclose(s[1, : d + 1], LAM_MAX, rtol=1e-10)
    assert np.isnan(s[1, d + 1:]).all()
    np.testing.assert_allclose(r.probes["preconditioned"].values[0], 2 * LAM_MAX, rtol=1e-10)


def test_adam_preconditioner_is_handed_to_probes_and_one_of_mixes_rules():
    """One ensemble: GD, heavy ball (0.5) and Adam per member (OneOf); each equals its hand-written recursion,
    and the probe sees Adam's P from its state (NaN before the first update), ones for the others."""
    rule = OneOf((OptimizerSpec("momentum", {"learning_rate": 0.1, "momentum": 0.0}), OptimizerSpec("adam")))
    grid = {"run": {"rule": [0, 0, 1], "momentum": [0.0, 0.5, 0.0], "learning_rate": [0.1, 0.1, 0.2]}}
    probe = Probe("P", lambda p, P, d: P[0], steps=QSTEPS)
    r = train(init=lambda key: [jnp.asarray(X0)], loss=_quadratic, data=A, optimizer=rule, seeds=[0], grid=grid,
              steps=QSTEPS, observe=lambda p, p0: {"x": p[0]}, probes=[probe])
    assert r.shape == (3, 1) and set(r.grid) == {"rule", "momentum", "learning_rate"}
    np.testing.assert_allclose(r["x"][0, 0], [np.linalg.matrix_power(np.eye(3) - 0.1 * A, k) @ X0 for k in QSTEPS],
                               rtol=1e-12)
    np.testing.assert_allclose(r["x"][1, 0], _heavy_ball_reference(0.1, 0.5), rtol=1e-12)
    x_adam, P_adam = _adam_reference(0.2)
    np.testing.assert_allclose(r["x"][2, 0], x_adam, rtol=1e-12)
    np.testing.assert_allclose(r.probes["P"].values[2], P_adam, rtol=1e-12)  # NaN at step 0 on both sides
    np.testing.assert_array_equal(r.probes["P"].values[:2], 1.0)


def test_params0_step_loss_custom_transforms_schedules_and_weight_decay():
    """x_k = prod_t (I - eta_t (A + wd I)) x0 from the given start; the step loss is the loss before each step."""
    schedule = optax.linear_schedule(0.3, 0.05, 10)  # eta_t, t = 0 .. 9
    rules = {"factory": lambda hp: optax.sgd(hp["learning_rate"]), "transform": optax.sgd(schedule),
             "decay": OptimizerSpec("sgd", {"learning_rate": 0.1, "weight_decay": 0.5})}
    start = np.stack([X0, -X0])  # (seeds, 3): seed s starts at start[s]
    for name, rule in rules.items():
        r = train(params0=start, loss=lambda x, a: 0.5 * x @ a @ x, data=A, optimizer=rule, seeds=[0, 1],
                  grid={"learning_rate": [0.1]}, steps=[0, 10], step_loss=True, record_loss=False, observe=None)
        eta = [float(jax.jit(schedule)(jnp.int32(t))) if name == "transform" else 0.1 for t in range(10)]  # float32
        wd = 0.5 if name == "decay" else 0.0
        for s in range(2):
            x, losses = start[s], []
            for t in range(10):
                losses.append(0.5 * x @ A @ x)
                x = x - eta[t] * (A @ x + wd * x)
            np.testing.assert_allclose(r.params[0, s], x, rtol=1e-12)
            np.testing.assert_allclose(r.step_loss[0, s], losses, rtol=1e-12)
        assert r.observations == {}


def test_probes_and_rules_reject_bad_input():
    fn = lambda p, P, d: 0.0  # noqa: E731
    for bad in [dict(), dict(every=2, steps=[1]), dict(every=0), dict(layout="tiles")]:
        with pytest.raises(ValueError, match="probe"):
            Probe("p", fn, **bad)
    kwargs = dict(loss=_quadratic, data=A, optimizer=OptimizerSpec("sgd", {"learning_rate": 0.1}), steps=[0, 2])
    init = lambda key: [jnp.asarray(X0)]  # noqa: E731
    for probes, match in [([Probe("p", fn, steps=[5])], "past the last"),
                          ([Probe("p", fn, every=1, members=[1])], "members"),
                          ([Probe("p", fn, every=1), Probe("p", fn, every=2)], "distinct")]:
        with pytest.raises(ValueError, match=match):
            train(init=init, probes=probes, **kwargs)
    with pytest.raises(ValueError, match="exactly one"):
        train(init=init, params0=[X0[None]], **kwargs)
    with pytest.raises(ValueError, match="rule"):
        train(init=init, **{**kwargs, "optimizer": OneOf((OptimizerSpec("sgd"),))})
    with pytest.raises(ValueError, match="two axes"):
        train(init=init, grid={"a": [1.0], "b": {"a": [2.0]}}, **kwargs)
