"""universal.representations: the summary and rules on synthetic measurements, the metric agreement
against hand counts, and the two training layouts (padded, per width) against each other.

The lazy CKA of prediction (ii) is tested in tests/test_observe_representation.py, the masked muP
network in tests/test_nets_masked.py; the ``tiny`` run and its figure in the conformance test.
"""

import numpy as np
import pytest
from pydantic import ValidationError

from learnmech.atlas.contract import Curve
from learnmech.atlas.keys import key
from learnmech.atlas.universal.representations import CLAIM, metric_agreement

WIDTHS = (8, 16, 64)


def _synthetic(cfg, means, *, seeds=4, final_loss=0.01, nan=False):
    """A measurement whose similarity/{metric} has the given per-width means (pairs vary by +-0.01)."""
    pairs = seeds * (seeds - 1) // 2
    x = np.asarray(cfg.widths, float)
    wiggle = np.linspace(-0.01, 0.01, pairs)[:, None]  # (pairs, 1)
    out = {}
    for m in cfg.metrics:
        y = np.asarray(means[m], float)[None, :] + wiggle  # (pairs, W)
        out[key("similarity", m)] = Curve(x, y)
        out[key("init_similarity", m)] = Curve(x, y / 2)
    for i in range(len(x)):
        loss = np.tile([0.45, 0.1, final_loss], (seeds, 1))
        if nan and i == 0:
            loss[0, -1] = np.nan
        out[key("train_loss", i)] = Curve([0, 10, 100], loss)
    out["test_accuracy"] = Curve(x, np.full((seeds, len(x)), 0.9))
    out["test_loss"] = Curve(x, np.full((seeds, len(x)), 0.05))
    return out


def _prediction(cfg):
    x = np.asarray(cfg.widths, float)
    return {"lazy_linear_cka": Curve(x, 1 / (1 + 4 / x)), "limit": Curve(x, np.ones(x.size))}


@pytest.fixture(scope="module")
def cfg():
    return CLAIM.make_config("quick", {"widths": WIDTHS})


def test_holds_when_every_metric_rises(cfg):
    means = {"linear_cka": [0.8, 0.85, 0.9], "debiased_cka": [0.7, 0.8, 0.9], "mutual_knn": [0.3, 0.5, 0.6]}
    v = CLAIM.judge(cfg, _prediction(cfg), _synthetic(cfg, means))
    assert v.status == "holds"
    assert v.value == pytest.approx(0.1)  # the smallest gain: linear CKA 0.9 - 0.8
    assert v.metric.startswith("min over metrics") and v.threshold == 0.0
    assert v.details["order_disagreements/linear_cka~mutual_knn"] == 0
    assert v.details["spearman/linear_cka~debiased_cka"] == pytest.approx(1.0)
    assert v.details["gain/mutual_knn"] == pytest.approx(0.3)
    assert v.details["linear_cka_init/16"] == pytest.approx(0.85 / 2)  # the init mean over pairs


def test_fails_when_one_metric_falls_and_flags_the_disagreement(cfg):
    means = {"linear_cka": [0.8, 0.85, 0.9], "debiased_cka": [0.7, 0.8, 0.9], "mutual_knn": [0.6, 0.5, 0.55]}
    v = CLAIM.judge(cfg, _prediction(cfg), _synthetic(cfg, means))
    assert v.status == "fails"
    assert v.value == pytest.approx(-0.05) and v.metric.startswith("min over metrics")
    assert "mutual kNN gain widest - narrowest -0.05 > 0 (not met)" in v.reason
    assert "linear CKA gain widest - narrowest 0.1 > 0;" in v.reason  # every check listed, passing ones too
    # kNN orders (8, 16) and (8, 64) opposite to CKA; (16, 64) agrees
    assert v.details["order_disagreements/linear_cka~mutual_knn"] == 2


def test_inconclusive_on_divergence_or_short_training(cfg):
    means = {m: [0.5, 0.6, 0.7] for m in cfg.metrics}
    v = CLAIM.judge(cfg, _prediction(cfg), _synthetic(cfg, means, nan=True))
    assert v.status == "inconclusive" and v.metric == "diverged members" and v.value == 1.0
    v = CLAIM.judge(cfg, _prediction(cfg), _synthetic(cfg, means, final_loss=0.2))  # 0.2 / 0.45 > 0.25
    assert v.status == "inconclusive" and v.value == pytest.approx(0.2 / 0.45)
    assert v.threshold == cfg.converged_loss
    v = CLAIM.judge(cfg, _prediction(cfg), _synthetic(cfg, means, final_loss=0.1))  # 0.1 / 0.45 < 0.25
    assert v.status == "holds"


def test_summary_of_the_init_prediction(cfg):
    """prediction (ii) is 1 / (1 + 4/m) here; measured init linear CKA is half the trained mean."""
    means = {m: [0.5, 0.6, 0.7] for m in cfg.metrics}
    s = CLAIM.summarize(cfg, _prediction(cfg), _synthetic(cfg, means))
    pred = 1 / (1 + 4 / np.asarray(WIDTHS, float))
    init = np.array([0.25, 0.3, 0.35])
    assert s["init_one_minus_cka_rel_error_max"] == pytest.approx(np.max(np.abs((1 - init) / (1 - pred) - 1)))
    assert s["slope_one_minus_linear_cka"] == pytest.approx(np.polyfit(np.log(WIDTHS), np.log([0.5, 0.4, 0.3]), 1)[0])
    assert s["gain_min"] == pytest.approx(0.2) and s["diverged"] == 0.0


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
    with pytest.raises(ValidationError, match="strictly increasing widths"):
        CLAIM.make_config("quick", {"widths": (128, 16)})
    with pytest.raises(ValidationError, match="debiased_cka"):
        CLAIM.make_config("quick", {"metrics": ("linear_cka", "mutual_knn")})


def test_per_width_layout_measures_what_the_padded_one_does():
    """``pad_widths=False`` (one network shape per width) against the padded layout of ``tiny``:
    the init similarities are the same numbers (the same numpy draws; zero columns change no metric,
    float32 rounding aside), and the trained ones are valid similarities."""
    padded, own = (CLAIM.make_config("tiny", {"pad_widths": pad, "steps": 20}) for pad in (True, False))
    a, b = CLAIM.measure(padded, None), CLAIM.measure(own, None)
    assert a.keys() == b.keys()
    for m in own.metrics:
        np.testing.assert_allclose(b[key("init_similarity", m)].y, a[key("init_similarity", m)].y, atol=1e-5)
        y = b[key("similarity", m)].y
        assert y.shape == (3, 2) and np.all(np.isfinite(y)) and np.all(y <= 1 + 1e-5)
    assert b[key("train_loss", 1)].x[0] == 0 and b["test_accuracy"].y.shape == (3, 2)
