"""Tests of the claim universal.data-spectra: judge logic on synthetic spectra, and the quick run."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from learnmech.atlas.contract import Curve  # noqa: E402
from learnmech.atlas.universal.data_spectra import (  # noqa: E402
    CLAIM,
    EXPONENT_TOL,
    R2_MIN,
    rbf_gram,
    split_halves,
)

D = 784


def _record(full, halves, digits=None, target=None, total=1.0):
    """A measurement record with the stored keys of the claim, from synthetic spectra."""
    k = np.arange(1.0, D + 1.0)
    digits = np.arange(1.0, 65.0) ** -1.5 if digits is None else digits
    target = k[:600] ** -2.0 if target is None else target  # b = 2
    return {
        "spectrum/mnist": Curve(k, full),
        "spectrum/halves": Curve(k, np.stack(halves)),
        "spectrum/digits": Curve(np.arange(1.0, 65.0), digits),
        "target/mnist": Curve(np.arange(1.0, target.size + 1.0), target),
        "target_total/mnist": Curve(np.zeros(1), np.array([[total]])),
    }


def _judge(rec, **overrides):
    cfg = CLAIM.make_config("quick", overrides)
    return CLAIM.judge(cfg, CLAIM.predict(cfg), rec)


def test_judge_holds_on_exact_power_law():
    k = np.arange(1.0, D + 1.0)
    law = lambda a: 3.0 * k**-a  # noqa: E731
    v = _judge(_record(law(1.5), [law(1.5), law(1.55)]))
    assert v.status == "holds"
    assert v.value == pytest.approx(1.0, abs=1e-12)
    assert v.details["a/mnist"] == pytest.approx(1.5, abs=1e-10)
    assert v.details["exponent_spread_max"] == pytest.approx(0.05, abs=1e-10)
    # target power k^-2 on 600 modes: the unexplained fraction is ~ 1/k - 1/600, whose log-log slope
    # over 5..200 is steeper than -1 (the finite cut-off); reference: a direct sum and numpy's polyfit.
    p = k[:600] ** -2.0
    tail = np.array([p[i:].sum() for i in range(5, 201)]) / p.sum()  # ranks 5..200: sum_{i > k}
    b_ref = 1.0 - np.polyfit(np.log(k[4:200]), np.log(tail), 1)[0]
    assert 2.0 < b_ref < 2.3
    assert v.details["b/mnist"] == pytest.approx(b_ref, abs=1e-8)
    assert v.details["beta_predicted/mnist"] == pytest.approx(v.details["b/mnist"] - 1.0, abs=1e-12)
    assert v.details["b_per_mode/mnist"] == pytest.approx(2.0, abs=1e-10)
    assert v.details["target_out_of_span/mnist"] == pytest.approx(1.0 - np.sum(k[:600] ** -2.0), abs=1e-12)


def test_judge_fails_when_halves_disagree():
    k = np.arange(1.0, D + 1.0)
    v = _judge(_record(k**-1.5, [k**-1.4, k**-(1.4 + EXPONENT_TOL + 0.05)]))
    assert v.status == "fails"
    assert "half" in v.metric
    assert v.value == pytest.approx(EXPONENT_TOL + 0.05, abs=1e-10)


def test_judge_uses_the_worst_split():
    k = np.arange(1.0, D + 1.0)
    halves = [k**-1.5, k**-1.5, k**-1.5, k**-1.75]  # split 0 agrees, split 1 does not
    v = _judge(_record(k**-1.5, halves), splits=2)
    assert v.status == "fails" and v.details["worst_split"] == 1.0
    assert v.value == pytest.approx(0.25, abs=1e-10)


def test_judge_fails_when_not_a_power_law():
    # exp(-k/30) is straight in log-linear, strongly curved in log-log over 5..200: R^2 < 0.95
    k = np.arange(1.0, D + 1.0)
    spec = np.exp(-k / 30.0)
    v = _judge(_record(spec, [spec, spec]))
    assert v.status == "fails"
    assert v.metric.startswith("R^2") and v.value < R2_MIN and v.threshold == R2_MIN


def test_judge_inconclusive_without_the_fit_range():
    k = np.arange(1.0, D + 1.0)
    spec = np.where(k <= 150, k**-1.5, 0.0)  # only 150 positive eigenvalues: ranks 5..200 unavailable
    v = _judge(_record(spec, [spec, spec]))
    assert v.status == "inconclusive"


def test_split_halves_are_disjoint_and_reproducible():
    a = split_halves(11, 3, 7)
    b = split_halves(11, 3, 7)
    assert len(a) == 3
    for (h1, h2), (g1, g2) in zip(a, b):
        assert h1.size == h2.size == 5 and not set(h1) & set(h2)
        np.testing.assert_array_equal(h1, g1)
        np.testing.assert_array_equal(h2, g2)
    assert not np.array_equal(a[0][0], a[1][0])


def test_rbf_gram_against_direct_formula():
    x = np.random.default_rng(0).standard_normal((9, 4))
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(rbf_gram(x), np.exp(-d2 / d2.mean()), rtol=1e-10, atol=1e-14)


def test_config_rejects_unknown_kernel_and_bad_ranges():
    with pytest.raises(ValueError):
        CLAIM.make_config("quick", {"kernels": ("laplace",)})
    with pytest.raises(ValueError):
        CLAIM.make_config("quick", {"digits_range": (10, 5)})


def test_quick_claim_end_to_end():
    cfg = CLAIM.make_config("quick")
    prediction = CLAIM.predict(cfg)
    measurement = CLAIM.measure(cfg, None)
    assert measurement["spectrum/mnist"].y.shape == (1, D)
    assert measurement["spectrum/halves"].y.shape == (2, D)
    v = CLAIM.judge(cfg, prediction, measurement)
    assert v.status in ("holds", "fails")
    assert np.isfinite(v.value) and 0.0 < v.details["a/mnist"]
    # the linear kernel's eigenvalues are the covariance spectrum; its modes hold part of the label power
    assert 0.0 < v.details["target_out_of_span/mnist"] < 1.0
    fig = CLAIM.plot(cfg, prediction, measurement, v)
    assert len(fig.axes) == 3
