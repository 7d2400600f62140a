"""laws.kernel-scaling: the exponent formula against the exact theory, the summary and rules, and a small run."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.special

from learnmech.atlas.contract import Curve
from learnmech.atlas.keys import key
from learnmech.atlas.laws.kernel_scaling import CLAIM, EXPONENT_TOL
from learnmech.theory.eigenlearning import learning_curve
from learnmech.theory.spectral import predicted_learning_curve_exponent


@pytest.mark.parametrize("a, b", [(2.0, 2.5),  # target-limited: b - 1 = 1.5 < 2a = 4
                                  (2.0, 7.0)])  # kernel-limited: b - 1 = 6 > 2a = 4
def test_eigenlearning_slope_is_min_b_minus_1_2a(a, b):
    """Independent check of the formula: the ridgeless eigenlearning curve on an exact power law
    ``lambda_k = k^-a``, ``v_k^2 = k^-b`` (2e5 modes) has log-log slope ``-min(b - 1, 2a)`` within 0.05
    between n = 200 and 800 (n << number of modes, so the truncation does not matter)."""
    k = np.arange(1, 200_001, dtype=np.float64)
    n = np.array([200.0, 800.0])
    err = learning_curve(k**-a, np.sqrt(k**-b), n).test_mse
    slope = -np.diff(np.log(err))[0] / np.diff(np.log(n))[0]
    assert slope == pytest.approx(predicted_learning_curve_exponent(a, b), abs=0.05)


def _records(cfg, a, b, measured_exponent, nan=False, zero=False):
    """Records of an exact power-law pool and a measured curve n^-measured_exponent."""
    ranks = np.arange(1, 4 * cfg.k_max + 1, dtype=np.float64)
    power = ranks**-b
    tail = scipy.special.zeta(b, ranks + 1) / scipy.special.zeta(b, 1)  # sum_{i > k} i^-b / sum_i i^-b, exact
    grid = np.unique(np.round(np.geomspace(cfg.k_min, cfg.k_max, cfg.n_points)))
    el = learning_curve(ranks**-a, np.sqrt(power), grid).test_mse
    prediction = {key("gaussian", "eigenvalues"): Curve(ranks, ranks**-a),
                  key("gaussian", "target_power"): Curve(ranks, power),
                  key("gaussian", "target_tail"): Curve(ranks, tail),
                  key("gaussian", "eigenlearning"): Curve(grid, el),
                  key("gaussian", "eigenlearning", "curve"): Curve(grid, el)}
    rng = np.random.default_rng(0)
    draws = grid**-measured_exponent * np.exp(0.01 * rng.standard_normal((4, grid.size)))  # (4, T)
    if nan:
        draws[1, 2] = np.nan
    if zero:
        draws[0, 0] = 0.0
    return prediction, {key("gaussian", "test_mse"): Curve(grid, draws)}


def test_summary_and_rules_hold_fail_inconclusive():
    cfg = CLAIM.make_config("quick")
    a, b = 1.5, 2.5
    prediction, exact = _records(cfg, a, b, 1.5)
    s = CLAIM.summarize(cfg, prediction, exact)
    predicted = s["gaussian/predicted"]
    assert predicted == pytest.approx(1.5, abs=0.02)  # min(b - 1, 2a) = 1.5 on the exact power laws
    assert s["gaussian/a"] == pytest.approx(a, abs=1e-10)
    ranks = s["gaussian/eigenvalue_fit"].x
    np.testing.assert_allclose(s["gaussian/eigenvalue_fit"].y[0], ranks**-a, rtol=1e-10)  # the fitted law, drawn

    _, good = _records(cfg, a, b, predicted + 0.05)
    verdict = CLAIM.judge(cfg, prediction, good)
    assert verdict.status == "holds" and verdict.threshold == EXPONENT_TOL
    assert verdict.value == pytest.approx(0.05, abs=0.01)
    assert verdict.value == verdict.details["gaussian/exponent_error"]  # one data set: the max is its error

    _, bad = _records(cfg, a, b, predicted - 0.2)
    verdict = CLAIM.judge(cfg, prediction, bad)
    assert verdict.status == "fails" and verdict.value == pytest.approx(0.2, abs=0.01)

    _, broken = _records(cfg, a, b, predicted, nan=True)
    verdict = CLAIM.judge(cfg, prediction, broken)
    assert verdict.status == "inconclusive" and verdict.metric == "diverged members" and verdict.value == 1.0
    _, zero = _records(cfg, a, b, predicted, zero=True)
    verdict = CLAIM.judge(cfg, prediction, zero)
    assert verdict.status == "inconclusive" and verdict.metric == "zero test errors" and verdict.value == 1.0


def test_small_quick_run_end_to_end():
    """The quick preset on a smaller pool (runtime): records complete, exponents sane, figure built."""
    cfg = CLAIM.make_config("quick", {"pool": 512, "features": 1024, "k_min": 8, "k_max": 64, "n_points": 5,
                                      "seeds": 6})
    prediction = CLAIM.predict(cfg)
    measurement = CLAIM.measure(cfg, None)
    assert measurement["gaussian/test_mse"].y.shape == (6, 5)
    summary, verdict = CLAIM.evaluate(cfg, prediction, measurement)
    assert verdict.status in ("holds", "fails")  # not inconclusive: every error finite and positive
    assert verdict.details["gaussian/a"] == pytest.approx(cfg.covariance_exponent, abs=0.15)
    assert verdict.details["gaussian/b"] == pytest.approx(cfg.target_exponent, abs=0.2)
    assert np.isfinite(verdict.details["gaussian/fitted"])
    fig = CLAIM.plot(cfg, prediction, measurement, summary, verdict)
    assert len(fig.axes) == 2
    plt.close(fig)


def test_config_rejects_ranges_beyond_the_pool():
    with pytest.raises(ValueError, match="N/8"):
        CLAIM.make_config("quick", {"pool": 1024, "k_max": 256})
    with pytest.raises(ValueError, match="4 k_min"):
        CLAIM.make_config("quick", {"k_min": 100, "k_max": 200})
