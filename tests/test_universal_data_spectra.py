"""Tests of the claim universal.data-spectra: summary and rules on synthetic spectra, and a small run."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from learnmech.atlas.contract import Curve  # noqa: E402
from learnmech.atlas.keys import key  # noqa: E402
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
        key("spectrum", "mnist"): Curve(k, full),
        key("spectrum", "halves"): Curve(k, np.stack(halves)),
        key("spectrum", "digits"): Curve(np.arange(1.0, 65.0), digits),
        key("target", "mnist"): Curve(np.arange(1.0, target.size + 1.0), target),
        key("target_total", "mnist"): total,
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


def test_summary_holds_the_fitted_laws_the_figure_draws():
    k = np.arange(1.0, D + 1.0)
    rec = _record(3.0 * k**-1.5, [k**-1.5, k**-1.5])
    cfg = CLAIM.make_config("quick")
    s = CLAIM.summarize(cfg, CLAIM.predict(cfg), rec)
    line = s["fit/mnist"]
    np.testing.assert_array_equal(line.x, np.arange(5.0, 201.0))  # the fit range, ranks 5..200
    np.testing.assert_allclose(line.y[0], 3.0 * line.x**-1.5, rtol=1e-10)
    np.testing.assert_allclose(s["fit/digits"].y[0], s["fit/digits"].x ** -1.5, rtol=1e-10)  # ranks 5..40
    tail = s["tail/mnist"]  # T(k) = 1 - sum_{i <= k} v_i^2 / sum_i v_i^2, from numpy's cumsum
    p = k[:600] ** -2.0
    np.testing.assert_allclose(tail.y[0], 1.0 - np.cumsum(p) / p.sum(), atol=1e-12)
    assert "tail_fit/mnist" in s and s["fit_usable"] == 1.0


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
    assert v.status == "inconclusive" and v.value == 0.0 and "no positive eigenvalues" in v.reason
    half = np.where(k <= 150, k**-1.5, 0.0)
    v = _judge(_record(k**-1.5, [k**-1.5, half]))  # the full spectrum fits, one half does not
    assert v.status == "inconclusive" and v.details["r2/mnist"] == pytest.approx(1.0)


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
    with pytest.raises(ValueError, match="strictly increasing"):
        CLAIM.make_config("quick", {"digits_range": (10, 5)})
    with pytest.raises(ValueError, match="at most 2"):
        CLAIM.make_config("quick", {"target_range": (5, 100, 200)})
    with pytest.raises(ValueError, match="strictly increasing"):
        CLAIM.make_config("quick", {"target_range": (0, 100)})  # ranks are 1-based


def test_small_run_end_to_end():
    """The first 600 images, no kernels: the halves (300 images, rank <= 299 < 784) are padded with
    zeros to 784 ranks; the linear kernel's modes hold part of the label power."""
    cfg = CLAIM.make_config("tiny", {"images": 600, "kernels": ()})
    prediction = CLAIM.predict(cfg)
    measurement = CLAIM.measure(cfg, None)
    halves = measurement["spectrum/halves"].y
    assert measurement["spectrum/mnist"].y.shape == (1, D) and halves.shape == (4, D)
    assert np.all(halves[:, :250] > 0) and np.all(halves[:, 300:] == 0)
    summary, v = CLAIM.evaluate(cfg, prediction, measurement)
    assert v.status != "inconclusive" and 0.0 < v.details["a/mnist"]
    assert 0.0 < v.details["target_out_of_span/mnist"] < 1.0
    fig = CLAIM.plot(cfg, prediction, measurement, summary, v)
    assert len(fig.axes) == 3
