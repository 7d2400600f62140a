"""Shuffled epochs (train/shuffle.py, sampling="epochs") and per-member step counts (member_steps).

References: exhaustive bijection checks, chi-square uniformity over many keys, the documented
position formula replayed per position, a numpy SGD replay of the examples it names, and separate
runs of the trainer for each member's length.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from learnmech.train import epochs_read, lm_update_rule, permute, train
from learnmech.train.sampling import draw_batch
from learnmech.train.shuffle import default_rounds

# ---------------------------------------------------------------- the keyed permutation

# permute is integer arithmetic and threefry bits: XLA's optimisation level cannot change its results, and
# without LLVM optimisation each permute program compiles in a fraction of the time (the compile is the cost).
FAST_COMPILE = {"xla_backend_optimization_level": "0"}


def _compiled(fn, *args):
    """``fn(*args)`` as one jitted program compiled with :data:`FAST_COMPILE`, as a numpy array."""
    return np.asarray(jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)(*args))


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1000])
def test_permute_is_a_bijection_of_range_n(n):
    keys = jax.random.split(jax.random.key(n), 2)
    orders = _compiled(jax.vmap(lambda k: permute(k, jnp.arange(n), n)), keys)  # (2, n)
    assert orders.dtype == np.int32
    for out in orders:
        np.testing.assert_array_equal(np.sort(out), np.arange(n))  # every example exactly once


def test_permute_works_elementwise_on_any_shape():
    def three(key):  # the same key on a flat range, its (3, 4) reshape, and the range shifted by n
        return permute(key, jnp.arange(12), 12), permute(key, jnp.arange(12).reshape(3, 4), 12), \
            permute(key, jnp.arange(12, 24), 12)

    flat, grid, shifted = jax.jit(three).lower(jax.random.key(1)).compile(compiler_options=FAST_COMPILE)(
        jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(grid), np.asarray(flat).reshape(3, 4))
    np.testing.assert_array_equal(np.asarray(shifted), np.asarray(flat))  # indices taken mod n


def test_two_keys_give_different_orders():
    a, b = _compiled(jax.vmap(lambda s: permute(jax.random.key(s), jnp.arange(100), 100)), jnp.arange(2))
    assert np.mean(a != b) > 0.9  # two uniform permutations of 100 agree on ~1 point on average
    assert default_rounds(1000) == 6 * 10 + 12 and default_rounds(1) == 18  # the documented count
    with pytest.raises(ValueError, match="n: the domain size"):
        permute(jax.random.key(0), jnp.arange(3), 0)


def test_images_are_uniform_over_keys():
    """Over K = 4,200 keys, the pair (pi(0), pi(1)) of n = 7 is uniform on the 42 ordered pairs.

    Chi-square with 41 degrees of freedom, rejected above its 0.999 quantile (~74.7; a correct shuffle fails
    this with probability 1e-3, fixed keys make it deterministic). The pair test also rejects affine maps
    x -> +-x + c (what the rounds compose to if the round bits were constant): they put every pair at
    difference +-1. The marginal of pi(0) is checked the same way (6 degrees of freedom).
    """
    n, K = 7, 4200
    keys = jax.random.split(jax.random.key(2026), K)
    images = _compiled(jax.vmap(lambda k: permute(k, jnp.arange(2), n)), keys)  # (K, 2)
    pairs = np.zeros((n, n))
    np.add.at(pairs, (images[:, 0], images[:, 1]), 1)
    assert np.all(np.diag(pairs) == 0)  # a permutation never sends 0 and 1 to the same example
    observed = pairs[~np.eye(n, dtype=bool)]
    expected = K / (n * (n - 1))
    assert np.sum((observed - expected) ** 2 / expected) < stats.chi2.ppf(0.999, n * (n - 1) - 1)
    first = np.bincount(images[:, 0], minlength=n)
    assert np.sum((first - K / n) ** 2 / (K / n)) < stats.chi2.ppf(0.999, n - 1)


# ---------------------------------------------------------------- sampling="epochs"

N, B = 10, 4  # 10 examples read 4 at a time: epochs end inside a batch


_epoch_order = jax.jit(lambda key: permute(key, jnp.arange(N), N))  # (N,): the order of one epoch


def _reference_examples(key, step, n=N, batch=B):
    """The documented formula in numpy: position p reads order_e[p mod n], order_e = permute(fold_in(key, e))."""
    positions = step * batch + np.arange(batch)  # (B,)
    orders = {e: np.asarray(_epoch_order(jax.random.fold_in(key, e))) for e in set((positions // n).tolist())}
    return np.array([orders[p // n][p % n] for p in positions])


def test_epochs_draw_follows_the_position_formula_and_never_repeats_within_an_epoch():
    key = jax.random.key(5)
    data = np.arange(N)  # the data are their own indices, so a batch is the examples read
    draw = jax.jit(lambda step: draw_batch("epochs", B, key, step, data))  # one compile for every step
    draws = [np.asarray(draw(jnp.int32(s))) for s in range(5)]  # 20 positions
    for s, d in enumerate(draws):
        np.testing.assert_array_equal(d, _reference_examples(key, s))
    stream = np.concatenate(draws)  # (20,): positions 0 .. 19, two whole epochs
    np.testing.assert_array_equal(np.sort(stream[:N]), np.arange(N))  # epoch 1: each example once
    np.testing.assert_array_equal(np.sort(stream[N:]), np.arange(N))  # epoch 2: each example once
    assert np.any(stream[:N] != stream[N:])  # a fresh order
    assert epochs_read(N, B, 5) == 2.0 and epochs_read(1000, 32, 100) == 3.2  # steps B / n
    with pytest.raises(ValueError, match="epochs_read"):
        epochs_read(0, 4, 1)


def test_trainer_reads_the_epochs_stream():
    """SGD on least squares with sampling="epochs", replayed in numpy from the reference indices (float64, 1e-12)."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((N, 3)), rng.standard_normal(N)

    def loss(w, batch):
        xb, yb = batch
        return 0.5 * jnp.mean((xb @ w - yb) ** 2)

    r = train(init=lambda key: jnp.zeros(3), loss=loss, data=(x, y), optimizer=optax.sgd(0.1), seeds=[4],
              steps=[0, 6], batch_size=B, sampling="epochs", observe=lambda w, w0: {"w": w}, record_loss=False)
    k_batch = jax.random.split(jax.random.key(4))[1]  # (k_init, k_batch) = split(key(seed)), as member.start
    w = np.zeros(3)
    for s in range(6):  # 24 positions: 2.4 epochs
        idx = _reference_examples(k_batch, s)
        w = w - 0.1 * x[idx].T @ (x[idx] @ w - y[idx]) / B
    np.testing.assert_allclose(r["w"][0, -1], w, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="batch_size"):
        train(init=lambda key: jnp.zeros(3), loss=loss, data=(x, y), optimizer=optax.sgd(0.1),
              steps=[0, 1], sampling="epochs")


# ---------------------------------------------------------------- member_steps

_rng = np.random.default_rng(0)
X32 = _rng.standard_normal((20, 3)).astype(np.float32)  # (n, d)
Y32 = _rng.standard_normal(20).astype(np.float32)  # (n,)
LENGTHS = [3, 7, 10]
SCHEDULE = [0, 2, 5, 8, 10]


def _loss32(w, batch):
    xb, yb = batch
    return 0.5 * jnp.mean((xb @ w - yb) ** 2)


def _run(lengths, steps, layout, member_steps=None, step_loss=False):
    """Adam with a cosine schedule over each member's own length, shuffled epochs of 4 examples, float32."""
    return train(init=lambda key: 0.1 * jax.random.normal(key, (3,), jnp.float32), loss=_loss32, data=(X32, Y32),
                 optimizer=lm_update_rule("cosine", warmup=0.2, weight_decay=0.1), seeds=[0, 1],
                 grid={"learning_rate": np.float32([0.05]), "steps": np.int32(lengths)}, steps=steps,
                 batch_size=4, sampling="epochs", observe=lambda w, w0: {"w": w}, member_steps=member_steps,
                 step_loss=step_loss, layout=layout)


@pytest.fixture(scope="module")
def run_lengths():
    return _run(LENGTHS, SCHEDULE, "map", member_steps="steps", step_loss=True)


@pytest.fixture(scope="module")
def separate_runs():
    return [_run([n], n, "map") for n in LENGTHS]  # each member alone, run exactly its length


def test_members_with_own_lengths_equal_separate_runs(run_lengths, separate_runs):
    r = run_lengths
    assert r.params.dtype == np.float32
    for i, alone in enumerate(separate_runs):
        np.testing.assert_array_equal(r.params[0, i], alone.params[0, 0])  # map layout: bit for bit
    assert not r.diverged.any() and (r.diverged_step == -1).all()  # stopping is not diverging


def test_vmapped_members_with_own_lengths_match(separate_runs):
    r = _run(LENGTHS, SCHEDULE, "vmap", member_steps="steps")
    for i, alone in enumerate(separate_runs):  # the vmapped select may round differently: float32, 1e-6
        np.testing.assert_allclose(r.params[0, i], alone.params[0, 0], rtol=1e-6, atol=1e-7)


def test_observations_repeat_the_final_state_and_step_loss_stops(run_lengths):
    r, steps = run_lengths, np.asarray(SCHEDULE)
    for i, n in enumerate(LENGTHS):
        for s in range(2):
            w = r["w"][0, i, s]  # (T, 3)
            for t in np.flatnonzero(steps >= n):
                np.testing.assert_array_equal(w[t], r.params[0, i, s])  # frozen at its own end
            if n < SCHEDULE[-1]:
                loss = r["loss"][0, i, s]
                assert np.all(loss[steps >= n] == loss[np.flatnonzero(steps >= n)[0]])
            trace = r.step_loss[0, i, s]  # (10,): entry t = the loss of step t + 1
            assert np.isfinite(trace[:n]).all() and np.isnan(trace[n:]).all()
    assert np.any(r["w"][0, 0, 0, 1] != r["w"][0, 0, 0, 0])  # it did move before stopping


def test_member_steps_is_validated():
    for grid_steps, match in [([3, 11], r"must lie in \[0, 10\]"), ([-1, 3], "must lie in"),
                              ([2.5, 3.0], "must be integers")]:
        with pytest.raises(ValueError, match=match):
            train(init=lambda key: jnp.zeros(3), loss=_loss32, data=(X32, Y32), optimizer=optax.sgd(0.1),
                  grid={"steps": grid_steps}, steps=[0, 10], member_steps="steps")
    with pytest.raises(ValueError, match="must name a grid hyperparameter"):
        train(init=lambda key: jnp.zeros(3), loss=_loss32, data=(X32, Y32), optimizer=optax.sgd(0.1),
              grid={"learning_rate": [0.1]}, steps=[0, 10], member_steps="steps")
