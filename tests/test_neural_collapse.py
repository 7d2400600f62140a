"""Neural-collapse metrics against independent references, and the claim's tiny preset.

References: hand-written numpy loops of Papyan, Han & Donoho 2020 (arXiv:2008.08186) definitions;
scipy.linalg.pinv for NC1 (what tding1/Neural-Collapse calls); an exactly constructed simplex ETF for the
collapsed limit; scipy.stats.spearmanr for the verdict's rank correlation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
import scipy.stats

from learnmech.atlas.contract import Curve
from learnmech.observe.collapse import (
    between_class_covariance,
    class_statistics,
    collapse_metrics,
    equiangularity,
    equinorm,
    etf_distance,
    nc1,
    ncc_disagreement,
    self_duality,
    within_class_covariance,
)

TOL = 1e-10  # float64 throughout: the metrics are a few matrix products, exact to ~1e-13 relative


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _case(n=60, p=7, k=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])  # every class present, unbalanced
    centres = 2.0 * rng.standard_normal((k, p))
    feats = centres[labels] + rng.standard_normal((n, p)) + 3.0  # offset: centring matters
    return feats, labels, k


def _numpy_stats(feats, labels, k):
    """Loops over classes and examples, straight from the definitions."""
    means = np.stack([feats[labels == c].mean(axis=0) for c in range(k)])
    mu_g = feats.mean(axis=0)
    sw = sum(np.outer(h - means[y], h - means[y]) for h, y in zip(feats, labels)) / len(feats)
    sb = sum(np.outer(m - mu_g, m - mu_g) for m in means) / k
    return means, mu_g, sw, sb


def test_class_statistics_and_covariances_match_loops():
    feats, labels, k = _case()
    means, mu_g, sw, sb = _numpy_stats(feats, labels, k)
    stats = class_statistics(jnp.asarray(feats), jnp.asarray(labels), k)
    np.testing.assert_allclose(stats.means, means, atol=TOL)
    np.testing.assert_allclose(stats.global_mean, mu_g, atol=TOL)
    np.testing.assert_array_equal(stats.counts, np.bincount(labels, minlength=k))
    np.testing.assert_allclose(within_class_covariance(feats, jnp.asarray(labels), stats.means), sw, atol=TOL)
    np.testing.assert_allclose(between_class_covariance(stats.means, stats.global_mean), sb, atol=TOL)


@pytest.mark.parametrize("p", [7, 3])  # p = 3 < K - 1 = 4: Sigma_B of rank 3, the pinv cutoff does the work
def test_nc1_matches_scipy_pinv(p):
    feats, labels, k = _case(p=p, k=5)
    _, _, sw, sb = _numpy_stats(feats, labels, k)
    expected = np.trace(sw @ scipy.linalg.pinv(sb)) / k  # tding1/Neural-Collapse validate_NC.py's formula
    assert float(nc1(jnp.asarray(feats), jnp.asarray(labels), k)) == pytest.approx(expected, rel=1e-9)


def test_nc1_is_invariant_to_rotation_scale_and_shift():
    feats, labels, k = _case()
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((7, 7)))
    base = float(nc1(feats, jnp.asarray(labels), k))
    moved = float(nc1(3.0 * feats @ q + 5.0, jnp.asarray(labels), k))  # tr(Sigma_W Sigma_B^+) is invariant
    assert moved == pytest.approx(base, rel=1e-9)


def test_nc2_metrics_match_loops():
    feats, labels, k = _case(k=5)
    means, mu_g, _, _ = _numpy_stats(feats, labels, k)
    m = means - mu_g
    norms = np.linalg.norm(m, axis=1)
    cos = [m[a] @ m[b] / (norms[a] * norms[b]) for a in range(k) for b in range(k) if a != b]
    angles = equiangularity(jnp.asarray(m))
    assert float(equinorm(m)) == pytest.approx(np.std(norms) / np.mean(norms), rel=1e-12)
    assert float(angles.mean_cosine) == pytest.approx(np.mean(cos), abs=TOL)
    assert float(angles.std_cosine) == pytest.approx(np.std(cos), abs=TOL)
    assert float(angles.shifted_cosine) == pytest.approx(np.mean(np.abs(np.asarray(cos) + 1 / (k - 1))), abs=TOL)
    gram = m @ m.T  # tding1's compute_ETF: W W^T / ||W W^T||_F - (I - 11^T/K) / sqrt(K-1)
    ref = np.linalg.norm(gram / np.linalg.norm(gram) - (np.eye(k) - np.ones((k, k)) / k) / np.sqrt(k - 1))
    assert float(etf_distance(m)) == pytest.approx(ref, abs=TOL)


def test_nc3_and_nc4_match_loops():
    feats, labels, k = _case(k=5)
    means, mu_g, _, _ = _numpy_stats(feats, labels, k)
    m = means - mu_g
    w = np.random.default_rng(2).standard_normal((k, feats.shape[1]))
    ref3 = np.sum((w / np.linalg.norm(w) - m / np.linalg.norm(m)) ** 2)  # Papyan's ||W^T/||W|| - M/||M|| ||_F^2
    assert float(self_duality(w, m)) == pytest.approx(ref3, abs=TOL)
    preds = np.random.default_rng(3).integers(0, k, len(labels))
    ncc = [min(range(k), key=lambda c: np.linalg.norm(h - means[c])) for h in feats]
    ref4 = np.mean(np.asarray(ncc) != preds)
    assert float(ncc_disagreement(feats, jnp.asarray(means), jnp.asarray(preds))) == pytest.approx(ref4, abs=0)


def _simplex_etf(k, p, seed=0):
    """``k`` rows of a simplex ETF in ``R^p``: ``sqrt(k/(k-1)) U (I - 11^T/k)``, ``U`` orthonormal ``(p, k)``."""
    u, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((p, k)))
    return np.sqrt(k / (k - 1)) * (np.eye(k) - 1 / k) @ u.T  # (k, p), unit rows, pairwise cos -1/(k-1)


def test_exact_simplex_etf_is_fully_collapsed():
    k, p, per = 6, 9, 4
    m = _simplex_etf(k, p)
    labels = np.repeat(np.arange(k), per)
    feats = 2.5 * m[labels] + 1.7  # zero within-class variance, a global offset
    out = collapse_metrics(jnp.asarray(feats), jnp.asarray(labels), jnp.asarray(m), jnp.asarray(labels), k)
    assert float(out.nc1) == pytest.approx(0.0, abs=TOL)
    assert float(out.mean_cosine) == pytest.approx(-1 / (k - 1), abs=TOL)  # the ETF's cosine
    for name in ("equinorm_means", "equinorm_classifier", "std_cosine", "shifted_cosine", "etf_distance", "nc3",
                 "nc4"):
        assert float(getattr(out, name)) == pytest.approx(0.0, abs=1e-7), name  # etf_distance: sqrt of ~1e-16


def test_bad_shapes_raise_one_line():
    feats, labels, k = _case()
    with pytest.raises(ValueError, match="features, labels"):
        nc1(feats, labels[:-1], k)
    with pytest.raises(ValueError, match="classifier"):
        collapse_metrics(feats, jnp.asarray(labels), jnp.ones((k, 3)), jnp.asarray(labels), k)


# ---------------------------------------------------------------------------------------------
# The claim: verdict logic on a hand-made measurement, and the tiny preset end to end


def _measurement(fall: float, nc4_end: float = 0.0):
    """Two seeds, 8 measurements; zero training error from the third on; metrics falling geometrically."""
    from learnmech.atlas.laws.neural_collapse import RECORDED

    t = np.arange(8) * 10.0
    decay = np.exp(-np.log(fall) * np.clip(t - 20.0, 0, None) / 50.0)  # NC1 falls by `fall` from t=20 to t=70
    curves = {name: np.vstack([decay, 0.9 * decay]) for name in RECORDED}
    curves["train_error"] = np.vstack([[0.5, 0.1] + [0.0] * 6] * 2)
    curves["mean_cosine"] = np.full((2, 8), -1.0 / 9.0 + 0.01)
    curves["nc4"] = np.vstack([np.linspace(0.05, nc4_end, 8), np.zeros(8)])  # seed 1: NCC rule throughout
    curves["loss"] = np.vstack([decay, decay])
    return {name: Curve(t, y) for name, y in curves.items()}


def test_summary_and_verdict_on_constructed_runs():
    from learnmech.atlas.laws.neural_collapse import CLAIM

    cfg = CLAIM.make_config("tiny")
    meas = _measurement(fall=20.0)
    summary, verdict = CLAIM.evaluate(cfg, CLAIM.predict(cfg), meas)
    assert summary["seed/0/zero_error_epoch"] == 20.0 and summary["seed/0/terminal_points"] == 6.0
    assert summary["min_nc1_fall"] == pytest.approx(20.0, rel=1e-12)  # decay(20) / decay(70) = 20
    t, v = meas["nc4"].x[2:], meas["nc4"].y[0, 2:]
    assert summary["seed/0/rho_nc4"] == pytest.approx(scipy.stats.spearmanr(t, v).statistic, abs=1e-12)
    assert summary["seed/1/rho_nc4"] == -1.0  # NC4 identically 0 over the phase: the stated convention
    assert summary["max_cosine_gap"] == pytest.approx(0.01, abs=1e-12)
    assert verdict.status == "holds"
    _, weak = CLAIM.evaluate(cfg, CLAIM.predict(cfg), _measurement(fall=5.0))
    assert weak.status == "fails" and weak.metric.startswith("min NC1 fall")
    _, ncc = CLAIM.evaluate(cfg, CLAIM.predict(cfg), _measurement(fall=20.0, nc4_end=0.02))
    assert ncc.status == "fails" and ncc.metric == "max NCC disagreement at the end"


# ---------------------------------------------------------------------------------------------
# The experiment's conventions (audit of the failing verdict): update rule, schedule, probed layer


def test_optimizer_is_pytorch_sgd_with_l2_and_step_drops():
    """Papyan et al.'s rule (PyTorch ``SGD(momentum, weight_decay)`` + ``MultiStepLR``), by hand:
    ``d = g + lambda w``, ``b <- mu b + d`` (``b = d`` on the first step), ``w <- w - eta_t b``, with
    ``eta_t`` divided by 10 from step ``floor(f T)`` on. A decoupled decay (``w <- (1 - eta lambda) w``
    after the momentum), a drop one step late or a missing drop would all differ at 1e-3 or more."""
    from learnmech.atlas.laws.neural_collapse import CLAIM, _optimizer

    cfg = CLAIM.make_config("tiny").model_copy(update={"epochs": 8, "every": 1, "lr_drops": (0.25, 0.5),
                                                      "learning_rate": 0.3, "weight_decay": 0.05})
    a = np.array([[2.0, -1.0], [0.5, 3.0]])
    grad = lambda w: a.T @ (a @ w - 1.0) + np.sin(w)  # noqa: E731  a fixed non-linear gradient field
    tx = _optimizer(cfg)({})
    w = jnp.asarray([0.7, -1.2])
    state = tx.init(w)
    w_ref, buf = np.array([0.7, -1.2]), None
    for t in range(8):  # 8 full-batch steps: the rate drops at steps int(0.25 * 8) = 2 and int(0.5 * 8) = 4
        updates, state = tx.update(jnp.asarray(grad(np.asarray(w))), state, w)
        w = optax.apply_updates(w, updates)
        d = grad(w_ref) + cfg.weight_decay * w_ref
        buf = d if buf is None else cfg.momentum * buf + d
        w_ref = w_ref - cfg.learning_rate * 0.1 ** ((t >= 2) + (t >= 4)) * buf
    np.testing.assert_allclose(np.asarray(w), w_ref, rtol=1e-12)  # float64 under the x64 fixture


def test_probe_reads_the_last_hidden_layer_and_the_classifier():
    """The probe's metrics are those of the post-ReLU features of the last hidden layer (Papyan's
    penultimate features, the classifier's input) with the classifier ``W = w^T``, on the data it is given;
    reference: a numpy forward pass of the same parameters."""
    from learnmech.atlas.laws.neural_collapse import CLAIM, _network, _probe

    cfg = CLAIM.make_config("tiny").model_copy(update={"width": 6, "hidden_layers": 2})
    net = _network(cfg, 5)
    params = jax.tree.map(lambda a: a.astype(jnp.float64), net.init(jax.random.key(0)))
    params = [{"w": layer["w"], "b": layer["b"] + 0.1} for layer in params]  # non-zero biases: they count
    rng = np.random.default_rng(4)
    x, labels = rng.standard_normal((40, 5)), np.arange(40) % 10
    z = x
    for layer in params[:-1]:
        z = np.maximum(z @ np.asarray(layer["w"]) + np.asarray(layer["b"]), 0.0)  # (40, 6) post-ReLU
    logits = z @ np.asarray(params[-1]["w"]) + np.asarray(params[-1]["b"])
    ref = collapse_metrics(jnp.asarray(z), jnp.asarray(labels), jnp.asarray(params[-1]["w"]).T,
                           jnp.asarray(logits.argmax(1)), 10)
    out = _probe(net)(params, None, (jnp.asarray(x), jnp.asarray(labels)))
    for name in ("nc1", "std_cosine", "etf_distance", "nc3", "nc4"):
        assert float(out[name]) == pytest.approx(float(getattr(ref, name)), rel=1e-9), name
    assert float(out["train_error"]) == pytest.approx(np.mean(logits.argmax(1) != labels), abs=1e-7)  # a float32 mean
    ce = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(40), labels])  # mean cross-entropy
    assert float(out["loss"]) == pytest.approx(ce, rel=1e-9)


def test_config_refuses_learning_rate_drops_that_merge():
    from pydantic import ValidationError

    from learnmech.atlas.laws.neural_collapse import CLAIM

    base = CLAIM.make_config("tiny").model_dump()
    with pytest.raises(ValidationError, match="lr_drops: must fall on distinct steps"):
        CLAIM.config(**{**base, "epochs": 3, "every": 1, "lr_drops": (0.3, 0.35)})  # steps 0 and 1 of 3
