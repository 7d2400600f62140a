"""universal.representations: the judge on synthetic measurements, the theory against Monte Carlo,
the masked muP network against ``learnmech.nets.MLP``, and a tiny end-to-end run."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from pydantic import ValidationError

from learnmech.atlas.contract import Curve
from learnmech.atlas.universal.representations import (
    CLAIM,
    forward,
    lazy_linear_cka,
    metric_agreement,
    random_feature_moments,
    random_features,
)
from learnmech.nets import MLP
from learnmech.observe import mse
from learnmech.train import OptimizerSpec, build_optimizer

WIDTHS = (8, 16, 64)


def _synthetic(cfg, means, *, seeds=4, final_loss=0.01, nan=False):
    """A measurement whose similarity/{metric} has the given per-width means (pairs vary by +-0.01)."""
    pairs = seeds * (seeds - 1) // 2
    x = np.asarray(cfg.widths, float)
    wiggle = np.linspace(-0.01, 0.01, pairs)[:, None]  # (pairs, 1)
    out = {}
    for m in cfg.metrics:
        y = np.asarray(means[m], float)[None, :] + wiggle  # (pairs, W)
        out[f"similarity/{m}"] = Curve(x, y)
        out[f"init_similarity/{m}"] = Curve(x, y / 2)
    for i in range(len(x)):
        loss = np.tile([0.45, 0.1, final_loss], (seeds, 1))
        if nan and i == 0:
            loss[0, -1] = np.nan
        out[f"train_loss/{i}"] = Curve([0, 10, 100], loss)
    out["test_accuracy"] = Curve(x, np.full((seeds, len(x)), 0.9))
    out["test_loss"] = Curve(x, np.full((seeds, len(x)), 0.05))
    return out


def _prediction(cfg):
    x = np.asarray(cfg.widths, float)
    return {"lazy_linear_cka": Curve(x, 1 / (1 + 4 / x)), "limit": Curve(x, np.ones(x.size))}


@pytest.fixture(scope="module")
def cfg():
    return CLAIM.make_config("quick", {"widths": WIDTHS})


def test_judge_holds_when_every_metric_rises(cfg):
    means = {"linear_cka": [0.8, 0.85, 0.9], "debiased_cka": [0.7, 0.8, 0.9], "mutual_knn": [0.3, 0.5, 0.6]}
    v = CLAIM.judge(cfg, _prediction(cfg), _synthetic(cfg, means))
    assert v.status == "holds"
    assert v.value == pytest.approx(0.1)  # the smallest gain: linear CKA 0.9 - 0.8
    assert "linear_cka" in v.metric and v.threshold == 0.0
    assert v.details["order_disagreements/linear_cka~mutual_knn"] == 0
    assert v.details["spearman/linear_cka~debiased_cka"] == pytest.approx(1.0)


def test_judge_fails_when_one_metric_falls_and_flags_the_disagreement(cfg):
    means = {"linear_cka": [0.8, 0.85, 0.9], "debiased_cka": [0.7, 0.8, 0.9], "mutual_knn": [0.6, 0.5, 0.55]}
    v = CLAIM.judge(cfg, _prediction(cfg), _synthetic(cfg, means))
    assert v.status == "fails"
    assert v.value == pytest.approx(-0.05) and "mutual_knn" in v.metric
    # kNN orders (8, 16) and (8, 64) opposite to CKA; (16, 64) agrees
    assert v.details["order_disagreements/linear_cka~mutual_knn"] == 2
    assert "mutual kNN: 2" in v.reason


def test_judge_inconclusive_on_divergence_or_short_training(cfg):
    means = {m: [0.5, 0.6, 0.7] for m in cfg.metrics}
    assert CLAIM.judge(cfg, _prediction(cfg), _synthetic(cfg, means, nan=True)).status == "inconclusive"
    v = CLAIM.judge(cfg, _prediction(cfg), _synthetic(cfg, means, final_loss=0.2))  # 0.2 / 0.45 > 0.25
    assert v.status == "inconclusive" and v.value == pytest.approx(0.2 / 0.45)


def test_metric_agreement_against_hand_counts():
    a = np.array([[0.1, 0.2, 0.3], [0.2, 0.3, 0.4], [0.3, 0.4, 0.5]])  # (pairs, W), rising
    out = metric_agreement({"a": a, "b": -a, "c": a**2})
    assert out["spearman/a~b"] == pytest.approx(-1.0)
    assert out["spearman/a~c"] == pytest.approx(1.0)  # monotone transform: same ranks
    assert out["order_disagreements/a~b"] == 3  # all 3 width pairs reversed
    assert out["order_disagreements/a~c"] == 0
    assert out["spearman_within/a~b"] == pytest.approx(-1.0)


def test_config_enforces_the_span_and_the_metrics():
    with pytest.raises(ValidationError, match="8x"):
        CLAIM.make_config("quick", {"widths": (16, 64)})
    with pytest.raises(ValidationError, match="debiased_cka"):
        CLAIM.make_config("quick", {"metrics": ("linear_cka", "mutual_knn")})


def test_lazy_linear_cka_against_monte_carlo():
    """``1 / (1 + v/m)`` against the mean linear CKA of 300 independent pairs of random-feature layers.

    At ``m = 64`` the neglected terms are ``O(1/m^2)`` relative to ``1 - CKA`` ~ 0.15; tolerance 10%
    of ``1 - CKA`` (the Monte Carlo standard error of the mean is ~1% of it).
    """
    X = np.random.default_rng(0).normal(size=(40, 6))
    m_sq, fourth = random_feature_moments(X, units=200_000, seed=1)
    m = 64
    predicted = float(lazy_linear_cka([m], m_sq, fourth)[0])
    rng = np.random.default_rng(2)

    def cka(a, b):  # linear CKA in numpy (Kornblith et al. 2019, eq. for centred features)
        a, b = a - a.mean(0), b - b.mean(0)
        return np.sum((b.T @ a) ** 2) / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b))

    draws = [cka(random_features(X, m, rng), random_features(X, m, rng)) for _ in range(300)]
    assert 0.05 < 1 - predicted < 0.5  # a regime where the correction matters
    assert (1 - np.mean(draws)) == pytest.approx(1 - predicted, rel=0.1)


def test_masked_network_is_mup_adam_mlp_step_for_step():
    """The masked multiplier-gauge network equals ``MLP(..., "mup-adam", base_width)`` under Adam.

    Same function (readout ``W2 = (b/m) V``), and the same outputs after 5 full-batch Adam steps
    (``b = 8``, ``m = 32``, stored at ``M = 48`` with 16 masked units; the MLP trains with its own
    ``lr_multipliers``, the masked network with one learning rate). Tolerance 1e-5 (float32).
    """
    d, b, m, M = 10, 8, 32, 48
    rng = np.random.default_rng(3)
    x, t = jnp.asarray(rng.normal(size=(20, d)), jnp.float32), jnp.asarray(rng.normal(size=(20, 10)), jnp.float32)
    # init_params' distributions drawn in numpy (a threefry draw costs seconds of compilation; the
    # trainer runs init_params in test_tiny_run_end_to_end); non-zero biases, so the mask matters
    draw = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)  # noqa: E731
    masked = {"w1": draw(d, M) / np.sqrt(d), "b1": 0.1 * draw(M), "v": draw(M, 10) / np.sqrt(b), "b2": 0.1 * draw(10)}
    net = MLP((d, m, 10), "relu", "mup-adam", base_width=b)
    ref = [{"w": masked["w1"][:, :m], "b": masked["b1"][:m]}, {"w": masked["v"][:m] * b / m, "b": masked["b2"]}]
    np.testing.assert_allclose(forward(masked, x, m, base_width=b)[0], net.apply(ref, x), atol=1e-5)

    def run(params, loss, tx):
        def step(_, carry):
            params, state = carry
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            return optax.apply_updates(params, updates), state

        return jax.jit(lambda p: jax.lax.fori_loop(0, 5, step, (p, tx.init(p)))[0])(params)

    spec = OptimizerSpec("adam", {"learning_rate": 1e-2})
    ref = run(ref, lambda p: mse(net.apply(p, x), t), build_optimizer(spec, {}, net.lr_multipliers()))
    masked = run(masked, lambda p: mse(forward(p, x, m, base_width=b)[0], t), build_optimizer(spec, {}, None))
    out, h = forward(masked, x, m, base_width=b)
    np.testing.assert_allclose(out, net.apply(ref, x), atol=1e-5)
    assert float(jnp.abs(h[:, m:]).max()) == 0.0  # masked units stay exactly zero


def test_tiny_run_end_to_end():
    cfg = CLAIM.make_config("quick", {"widths": (4, 32), "seeds": 3, "steps": 30, "points": 2, "n_test": 40,
                                      "knn_k": 5, "theory_units": 500, "metrics": ("linear_cka", "debiased_cka",
                                                                                   "mutual_knn", "rbf_cka")})
    p = CLAIM.predict(cfg)
    assert np.all(np.diff(p["lazy_linear_cka"].y[0]) > 0) and np.all(p["lazy_linear_cka"].y < 1)
    m = CLAIM.measure(cfg, None)
    for name, kind in itertools.product(cfg.metrics, ("similarity", "init_similarity")):
        y = m[f"{kind}/{name}"].y
        assert y.shape == (3, 2) and np.all(np.isfinite(y)) and np.all(y <= 1 + 1e-5)
    assert m["test_accuracy"].y.shape == (3, 2) and m["train_loss/1"].x[0] == 0
    v = CLAIM.judge(cfg, p, m)
    assert v.status in ("holds", "fails", "inconclusive") and np.isfinite(v.value)
    fig = CLAIM.plot(cfg, p, m, v)
    assert len(fig.axes) == 4  # three panels and the loss twin axis
    assert cfg == type(cfg).model_validate_json(cfg.model_dump_json())
