"""laws.edge-of-stability: the stability thresholds, the optimiser recursion, the probe, the summary and the rules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from learnmech.atlas.contract import Curve
from learnmech.atlas.keys import key
from learnmech.atlas.laws.edge_of_stability import CLAIM, run_specs, setup, summarize
from learnmech.observe import mse
from learnmech.theory.stability import adam_preconditioner, stability_threshold

# ------------------------------------------------------------------------------------------------
# (1) The thresholds: iterate the optimisers on a 1-D quadratic L = lambda w^2 / 2 just below and just
# above the threshold. The expected thresholds are written out here (2/eta, (2+2beta)/eta, and
# (2+2b1)/((1-b1) eta) p for an EMA momentum with a frozen preconditioner p), not taken from the module.


def _final_size(opt, lam: float, steps: int = 3000) -> float:
    """|w| after ``steps`` updates of the optax transformation ``opt`` from w = 1 on L = lam w^2 / 2."""

    def step(carry, _):
        w, state = carry
        delta, state = opt.update(lam * w, state, w)  # gradient lam * w
        return (w + delta, state), None

    w0 = jnp.asarray(1.0, jnp.float64)
    (w, _), _ = jax.lax.scan(step, (w0, opt.init(w0)), None, length=steps)
    return float(jnp.abs(w))  # inf or nan when it blew up


def _ema_frozen(eta: float, b1: float, p: float):
    """m <- b1 m + (1 - b1) g, w <- w - eta m / p: Adam's recursion with its preconditioner frozen at p."""
    return optax.chain(optax.ema(b1, debias=False), optax.scale(-eta / p))


CASES = [  # (name, optax transformation, threshold written out by hand)
    ("gd eta=0.1", optax.sgd(0.1), 2 / 0.1),
    ("gd eta=0.7", optax.sgd(0.7), 2 / 0.7),
    ("heavy ball 0.9", optax.sgd(0.05, momentum=0.9), (2 + 2 * 0.9) / 0.05),  # optax: v = g + beta v, w -= eta v
    ("heavy ball 0.5", optax.sgd(0.3, momentum=0.5), (2 + 2 * 0.5) / 0.3),
    ("ema 0.9, p=0.02", _ema_frozen(0.01, 0.9, 0.02), (2 + 2 * 0.9) / ((1 - 0.9) * 0.01) * 0.02),
]


@pytest.mark.parametrize("name, opt, threshold", CASES, ids=[c[0] for c in CASES])
def test_quadratic_is_stable_just_below_the_threshold_and_unstable_just_above(name, opt, threshold):
    # 2% on either side: the slowest mode contracts/expands by >= ~1% per step, so 3000 steps separate
    # the two by many orders of magnitude (|w| < 1e-6 against overflow or > 1e6).
    assert _final_size(opt, 0.98 * threshold) < 1e-6
    assert not _final_size(opt, 1.02 * threshold) < 1e6


def test_module_thresholds_match_the_hand_derived_values():
    assert stability_threshold(0.1) == pytest.approx(20.0)
    assert stability_threshold(0.05, 0.9, 1.0) == pytest.approx(76.0)  # (2 + 1.8) / 0.05
    assert stability_threshold(0.01, 0.9, 0.1) == pytest.approx(3800.0)  # 38 / eta
    cfg = CLAIM.make_config("quick")
    prediction = CLAIM.predict(cfg)
    for spec in run_specs(cfg):
        expected = {"momentum": (2 + 2 * cfg.momentum) / cfg.momentum_lr,
                    "adam": 38 / cfg.adam_lr if cfg.adam_b1 == 0.9 else None}.get(spec.name, 2 / spec.eta)
        assert prediction[key("threshold", spec.name)].y[0, 0] == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------------------------
# The recursion m <- a m + c g, w <- w - eta P^-1 m behind the thresholds equals optax's sgd, heavy ball and
# adam with (a, c) = (0, 1), (beta, 1), (b1, 1 - b1) and P = adam_preconditioner (theory.stability).


def _recursion(params, grad, steps, eta, a, c, adam, b1=0.9, b2=0.999, eps=1e-8):
    """The recursion written out here (python loop): ``steps`` updates from ``params``."""
    m = jax.tree.map(jnp.zeros_like, params)
    nu = jax.tree.map(jnp.zeros_like, params)
    for t in range(1, steps + 1):
        g = grad(params)
        m = jax.tree.map(lambda m, g: a * m + c * g, m, g)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, nu, g)
        P = adam_preconditioner(nu, t, b1=b1, b2=b2, eps=eps) if adam else jax.tree.map(jnp.ones_like, nu)
        params = jax.tree.map(lambda w, m, p: w - eta * m / p, params, m, P)
    return params


@pytest.mark.parametrize("hp, opt", [
    ({"eta": 0.3, "a": 0.0, "c": 1.0, "adam": False}, optax.sgd(0.3)),
    ({"eta": 0.2, "a": 0.9, "c": 1.0, "adam": False}, optax.sgd(0.2, momentum=0.9)),
    ({"eta": 0.01, "a": 0.9, "c": 0.1, "adam": True}, optax.adam(0.01, b1=0.9, b2=0.999, eps=1e-8)),
], ids=["sgd", "heavy-ball", "adam"])
def test_recursion_matches_optax(hp, opt):
    key = jax.random.key(0)
    params = {"w": jax.random.normal(key, (3, 2), jnp.float64), "b": jnp.arange(2.0)}
    target = jax.random.normal(jax.random.key(1), (3, 2), jnp.float64)

    def loss(p):  # a smooth non-quadratic loss, so gradients change from step to step
        return jnp.sum(jnp.tanh(p["w"] + p["b"]) * target) + 0.5 * jnp.sum(p["w"] ** 2)

    ref, _ = _optax_run(opt, loss, params, 6)
    mine = _recursion(params, jax.grad(loss), 6, **hp)
    np.testing.assert_allclose(ravel_pytree(mine)[0], ravel_pytree(ref)[0], rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# (3) The probe on a tiny problem against the dense Hessian (jax.hessian + numpy eigvalsh), at the initial
# point (every run) and after 10 steps (GD; Adam's preconditioned sharpness with P rebuilt from optax's nu).

TINY = {"seeds": 1, "n_samples": 16, "input_dim": 3, "outputs": 2, "width": 4, "hidden_layers": 1,
        "steps": 10, "every": 10, "lanczos": 26}  # P = 3*4 + 4 + 4*2 + 2 = 26: Lanczos spans the whole space


def _dense_hessians(net, data, *points) -> list[np.ndarray]:
    """The ``(P, P)`` Hessian of the loss at each parameter point, in float64 (one compiled, vmapped call)."""
    _, unravel = ravel_pytree(points[0])
    flats = jnp.stack([ravel_pytree(p)[0].astype(jnp.float64) for p in points])  # (points, P)
    X, Y = (jnp.asarray(a, jnp.float64) for a in data)
    unravel64 = lambda v: jax.tree.map(lambda w: w.astype(jnp.float64), unravel(v))  # noqa: E731
    H = jax.jit(jax.vmap(jax.hessian(lambda v: mse(net.apply(unravel64(v), X), Y))))(flats)  # (points, P, P)
    return list(np.asarray(H))


def _optax_run(opt, loss, params, steps: int):
    """``steps`` updates of ``opt`` on ``loss`` (one compiled scan); returns (params, optimizer state)."""

    def step(carry, _):
        p, st = carry
        delta, st = opt.update(jax.grad(loss)(p), st, p)
        return (optax.apply_updates(p, delta), st), None

    return jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), None, length=steps)[0])(params)


def test_probe_matches_the_dense_hessian_on_a_tiny_problem():
    cfg = CLAIM.make_config("quick", TINY)
    net, data, params0 = setup(cfg)
    measurement = CLAIM.measure(cfg, None)
    specs = run_specs(cfg)
    start = jax.tree.map(lambda x: x[0], params0)  # seed 0: every run starts here
    loss = lambda p: mse(net.apply(p, data[0]), data[1])  # noqa: E731
    gd, _ = _optax_run(optax.sgd(specs[0].eta), loss, start, 10)  # GD: 10 steps of optax.sgd
    opt = optax.adam(cfg.adam_lr, b1=cfg.adam_b1, b2=cfg.adam_b2, eps=cfg.adam_eps)
    ad, st = _optax_run(opt, loss, start, 10)  # Adam: 10 steps of optax.adam
    H0, H_gd, H_ad = _dense_hessians(net, data, start, gd, ad)

    top0 = np.linalg.eigvalsh(H0)[-1]
    for spec in specs:  # every run starts from the same weights
        assert measurement[key("sharpness", spec.name)].y[0, 0] == pytest.approx(top0, rel=1e-3)
    assert np.isnan(measurement["preconditioned/adam"].y[0, 0])  # P is undefined before the first step
    assert measurement["sharpness/gd-0"].y[0, 1] == pytest.approx(np.linalg.eigvalsh(H_gd)[-1], rel=1e-3)
    # P^-1 H is similar to P^-1/2 H P^-1/2, with P rebuilt from optax's nu and count
    P = jax.jit(lambda nu, t: adam_preconditioner(nu, t, b1=cfg.adam_b1, b2=cfg.adam_b2, eps=cfg.adam_eps))(
        st[0].nu, st[0].count)
    s = 1 / np.sqrt(np.asarray(ravel_pytree(P)[0], np.float64))  # (P,)
    assert measurement["preconditioned/adam"].y[0, 1] == pytest.approx(
        np.linalg.eigvalsh(s[:, None] * H_ad * s[None, :])[-1], rel=1e-3)
    assert measurement["sharpness/adam"].y[0, 1] == pytest.approx(np.linalg.eigvalsh(H_ad)[-1], rel=1e-3)


# ------------------------------------------------------------------------------------------------
# (2) The summary and the rules (CLAIM.judge = summarize + RULES) on synthetic records


def _records(cfg, shape, loss_trend=-1.0):
    """Sharpness = threshold * shape(u), u = step / steps in [0, 1]; loss ~ exp(loss_trend * 3u) with wiggles."""
    t_probe = np.arange(0, cfg.steps + 1, cfg.every, dtype=float)
    t_loss = np.arange(cfg.steps, dtype=float)
    u, v = t_probe / cfg.steps, t_loss / cfg.steps
    loss = np.exp(loss_trend * 3 * v) * (1 + 0.3 * np.sin(40 * v) ** 2)  # non-monotone, decreasing on average
    out = {}
    for spec in run_specs(cfg):
        thr = stability_threshold(spec.eta, spec.a, spec.c)
        s = thr * shape(u)
        out[key("sharpness", spec.name)] = Curve(t_probe, s)
        out[key("preconditioned", spec.name)] = Curve(t_probe, s)
        out[key("loss", spec.name)] = Curve(t_loss, loss)
        out[key("threshold", spec.name)] = Curve(np.array([0.0, cfg.steps]), np.full(2, thr))
    return out


def _rise_then(level):
    """Progressive sharpening from 0.4 to 1.05 of the threshold over the first 15%, then ``level`` +/- 3% from 20% on."""
    return lambda u: np.where(u < 0.2, np.minimum(0.4 + 0.65 * u / 0.15, 1.05), level + 0.03 * np.sin(60 * u))


def _judge(measurement):
    cfg = CLAIM.make_config("quick")
    return CLAIM.judge(cfg, CLAIM.predict(cfg), measurement)


def test_judge_holds_when_sharpness_hovers_at_the_threshold():
    v = _judge(_records(CLAIM.make_config("quick"), _rise_then(1.0)))
    assert v.status == "holds"
    assert v.metric.startswith("max |median(sharpness after crossing) / threshold - 1|")
    assert v.value == pytest.approx(0.0, abs=0.03)


def test_summary_per_member_numbers():
    # _rise_then(1.0): the first probe >= the threshold is at u = 0.6/0.65*0.15 -> step 140 of 1000 (probes
    # every 20), 44 probes from there on; the loss exp(-3u)(1 + 0.3 sin^2 40u) falls by ~e^-1.6 over that phase
    cfg = CLAIM.make_config("quick")
    summary = summarize(cfg, CLAIM.predict(cfg), _records(cfg, _rise_then(1.0)))
    assert summary["members"] == summary["members_reached"] == summary["members_judged"] == 5  # one member a run
    assert summary["diverged"] == 0
    assert summary[key("gd-0", 0, "first_step")] == 140.0
    assert summary[key("gd-0", 0, "samples_after")] == 44.0
    assert summary[key("adam", 0, "median_ratio")] == pytest.approx(1.0, abs=0.03)
    assert 0.1 < summary["max_loss_ratio"] < 0.5


def test_judge_fails_when_sharpness_settles_at_0_7_of_the_threshold():
    v = _judge(_records(CLAIM.make_config("quick"), _rise_then(0.7)))
    assert v.status == "fails"
    assert v.value == pytest.approx(0.3, abs=0.03)


def test_judge_fails_when_the_loss_stops_decreasing():
    v = _judge(_records(CLAIM.make_config("quick"), _rise_then(1.0), loss_trend=+0.2))
    assert v.status == "fails"
    assert v.metric.startswith("max loss ratio")  # the band check passes; the loss check names the failure
    assert v.value > 1.0


def test_judge_is_inconclusive_when_the_threshold_is_never_reached():
    v = _judge(_records(CLAIM.make_config("quick"), lambda u: 0.4 + 0.4 * u))  # sharpening stalls at 0.8
    assert v.status == "inconclusive"
    assert (v.metric, v.value) == ("members reaching the threshold", 0.0)
    assert "never" in v.reason
    assert v.details[key("momentum", 0, "max_ratio")] == pytest.approx(0.8)


def test_judge_is_inconclusive_when_the_threshold_is_reached_too_late():
    # crossing at u = 0.95 (step 950): 3 probes and 5% of training left
    v = _judge(_records(CLAIM.make_config("quick"), lambda u: np.where(u < 0.95, 0.5 + 0.5 * u, 1.0)))
    assert v.status == "inconclusive"
    assert v.metric.startswith("members reaching it with")
    assert v.details["members_reached"] == 5 and v.value == 0.0


def test_judge_is_inconclusive_when_a_run_diverged():
    cfg = CLAIM.make_config("quick")
    m = dict(_records(cfg, _rise_then(1.0)))
    y = m[key("loss", "momentum")].y.copy()
    y[:, 500:] = np.nan
    m[key("loss", "momentum")] = Curve(m[key("loss", "momentum")].x, y)
    v = _judge(m)
    assert v.status == "inconclusive"
    assert "diverged" in v.reason
    assert v.value == 1  # the momentum run (one member in these records)


def test_a_failing_run_decides_before_an_unjudged_one():
    # decisive_failures: one run never reaches its threshold while the others settle at 0.7 of theirs (fail).
    cfg = CLAIM.make_config("quick")
    m = dict(_records(cfg, _rise_then(0.7)))
    m[key("preconditioned", "adam")] = Curve(m[key("preconditioned", "adam")].x,
                                             0.5 * m[key("preconditioned", "adam")].y)
    v = _judge(m)
    assert v.status == "fails"
    assert v.metric.startswith("max |median") and v.value == pytest.approx(0.3, abs=0.02)
