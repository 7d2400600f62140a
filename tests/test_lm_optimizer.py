"""AdamW with LM schedules (train/lm_optimizer.py) against closed forms and a hand-written numpy AdamW."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from learnmech.train import lm_update_rule, schedule_value

# ---------------------------------------------------------------- schedules: closed forms


def test_cosine_schedule_values():
    T, W, f, peak = 100, 10, 0.1, 3e-3  # warmup 0.1 of 100 updates
    kw = dict(schedule="cosine", warmup=0.1, final_fraction=f)
    got = schedule_value([0, 5, 10, 55, 100, 250], T, peak, **kw)
    expected = [0.0, peak * 5 / W, peak,  # linear warm-up from 0, peak at its end
                peak * (f + (1 - f) / 2),  # midpoint of the cosine (u = 1/2): halfway between peak and f peak
                peak * f, peak * f]  # end, and held past the end
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    u = (30 - W) / (T - W)  # any other point: f + (1 - f)(1 + cos(pi u)) / 2
    np.testing.assert_allclose(schedule_value(30, T, peak, **kw), peak * (f + (1 - f) * (1 + np.cos(np.pi * u)) / 2),
                               rtol=1e-12)


def test_wsd_and_constant_schedule_values():
    T, peak = 200, 1.0  # warm-up 20 updates, plateau to 160, linear decay over the last 40 to f = 0
    kw = dict(schedule="wsd", warmup=0.1, decay_fraction=0.2, final_fraction=0.0)
    got = schedule_value([10, 20, 100, 160, 180, 200], T, peak, **kw)
    np.testing.assert_allclose(got, [0.5, 1.0, 1.0, 1.0, 0.5, 0.0], rtol=1e-12, atol=1e-15)
    got = schedule_value([190], T, 2.0, schedule="wsd", warmup=0.0, decay_fraction=0.2, final_fraction=0.1)
    np.testing.assert_allclose(got, [2.0 * (1 - 0.9 * 30 / 40)], rtol=1e-12)  # 3/4 of the way from 1 to f
    np.testing.assert_allclose(schedule_value([0, 5, 10, 1000], 100, 1.0, schedule="constant", warmup=0.1),
                               [0.0, 0.5, 1.0, 1.0], rtol=1e-12)


def test_bad_settings_are_rejected():
    for kwargs, match in [(dict(schedule="linear"), "schedule: must be one of"), (dict(warmup=1.5), "warmup"),
                          (dict(schedule="wsd", warmup=0.5, decay_fraction=0.6), "warmup \\+ decay_fraction"),
                          (dict(clip=0.0), "clip"), (dict(b2=1.0), "b2")]:
        with pytest.raises(ValueError, match=match):
            lm_update_rule(**kwargs)
    with pytest.raises(ValueError, match="hp\\['steps'\\]"):
        lm_update_rule()({"learning_rate": 1e-3})


# ---------------------------------------------------------------- AdamW steps against numpy

PARAMS = {"w": np.array([[0.5, -1.0, 0.2], [0.3, 0.8, -0.4]], np.float32), "b": np.array([0.1, -0.2, 0.3], np.float32)}
MASK = {"w": True, "b": False}  # decay matrices only
_rng = np.random.default_rng(7)
GRADS = [{k: (scale * _rng.standard_normal(v.shape)).astype(np.float32) for k, v in PARAMS.items()}
         for scale in (5.0, 0.1, 2.0, 0.3)]  # norms ~ 10 (clipped), ~ 0.2 (not), ...


def _numpy_adamw(lrs, clip, lam, b1=0.9, b2=0.95, eps=1e-8):
    """AdamW by hand (float64): clip by the global norm, Adam with bias correction, decoupled decay on MASK."""
    w = {k: v.astype(np.float64) for k, v in PARAMS.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    for t, (g, lr) in enumerate(zip(GRADS, lrs), start=1):
        norm = np.sqrt(sum(np.sum(x.astype(np.float64) ** 2) for x in g.values()))
        g = {k: x * min(1.0, clip / norm) for k, x in g.items()}
        for k in w:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            adam = (m[k] / (1 - b1**t)) / (np.sqrt(v[k] / (1 - b2**t)) + eps)
            w[k] = w[k] - lr * (adam + (lam * w[k] if MASK[k] else 0.0))
    return w


def _optax_run(tx, n_steps):
    params = jax.tree.map(jnp.asarray, PARAMS)
    state = tx.init(params)
    for g in GRADS[:n_steps]:
        updates, state = tx.update(jax.tree.map(jnp.asarray, g), state, params)
        params = optax.apply_updates(params, updates)
    return params


def test_adamw_steps_match_numpy_with_clipping_and_cosine_rates():
    T, peak, lam = 8, 0.01, 0.1  # warmup 0.25 T = 2 updates: rates eta s(t) for t = 0 .. 3 written out
    cosine = lambda t: 0.1 + 0.9 * (1 + np.cos(np.pi * (t - 2) / 6)) / 2  # noqa: E731 f = 0.1, u = (t - W) / (T - W)
    lrs = [0.0, peak / 2, peak * cosine(2), peak * cosine(3)]
    rule = lm_update_rule("cosine", warmup=0.25, final_fraction=0.1, clip=1.0, weight_decay=lam, decay_mask=MASK)
    got = _optax_run(rule({"learning_rate": jnp.float64(peak), "steps": jnp.int32(T)}), 4)
    expected = _numpy_adamw(lrs, clip=1.0, lam=lam)
    for k in PARAMS:
        assert got[k].dtype == jnp.float32  # float64 hyperparameters keep float32 parameters
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-6, atol=1e-7)  # float32 against float64
    # one step without warm-up: the first update moves by ~peak per coordinate (Adam's normalisation)
    one = lm_update_rule("constant", warmup=0.0, clip=1.0, weight_decay=lam, decay_mask=MASK)
    got = _optax_run(one({"learning_rate": peak, "steps": 4, "weight_decay": 0.0}), 1)  # hp overrides lambda
    expected = _numpy_adamw([peak], clip=1.0, lam=0.0)
    for k in PARAMS:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-6, atol=1e-7)


def test_traced_peak_and_length_under_vmap_equal_separate_runs():
    """Three members (peak, T) vmapped through one program equal three runs with python scalars (float32, 1e-6)."""
    rule = lm_update_rule("wsd", warmup=0.2, decay_fraction=0.4, final_fraction=0.0, clip=0.5, weight_decay=0.05)
    target = jnp.asarray(PARAMS["w"]) * 0.0 + 1.0

    def run(hp):
        tx = rule(hp)
        loss = lambda p: jnp.sum((p["w"] - target) ** 2) + jnp.sum(p["b"] ** 2)  # noqa: E731
        params = jax.tree.map(jnp.asarray, PARAMS)

        def body(_, carry):
            params, state = carry
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            return optax.apply_updates(params, updates), state

        return jax.lax.fori_loop(0, 6, body, (params, tx.init(params)))[0]

    peaks, lengths = [1e-3, 1e-2, 5e-2], [5, 10, 10]
    hp = {"learning_rate": jnp.asarray(peaks, jnp.float32), "steps": jnp.asarray(lengths, jnp.int32)}
    batched = jax.jit(jax.vmap(run))(hp)
    for i, (peak, n) in enumerate(zip(peaks, lengths)):
        alone = run({"learning_rate": peak, "steps": n})
        for k in PARAMS:
            np.testing.assert_allclose(batched[k][i], alone[k], rtol=1e-6, atol=1e-7)
    assert not np.allclose(batched["w"][0], batched["w"][2])  # the peaks matter
