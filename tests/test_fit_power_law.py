"""``learnmech.fit.PowerLaw`` against exact power laws and an independent least-squares line.

The estimator contract (clone, refit, no mutation, one-line errors) is checked for every estimator in
tests/test_fit_conformance.py; here: the numbers.
"""

import math

import numpy as np
import pytest
from scipy import stats

from learnmech.fit import PowerLaw

K = np.arange(1.0, 501.0)  # (500,) ranks


def test_recovers_an_exact_power_law():
    fit = PowerLaw(k_min=5, k_max=200).fit(2.5 * K**-1.3)
    # exact data: the log-log line is exact up to rounding
    assert fit.exponent_ == pytest.approx(1.3, abs=1e-10)
    assert fit.log_prefactor_ == pytest.approx(math.log(2.5), abs=1e-10)
    assert fit.r2_ == pytest.approx(1.0, abs=1e-12)
    assert fit.n_points_ == 196  # ranks 5..200 inclusive
    np.testing.assert_allclose(fit.predict(K[4:200]), 2.5 * K[4:200] ** -1.3, rtol=1e-9)


def test_matches_scipy_linregress_on_a_noisy_spectrum():
    # independent reference: scipy's ordinary least squares on (log k, log v) over the same ranks
    noise = np.exp(0.05 * np.random.default_rng(3).standard_normal(K.size))
    values = K**-1.5 * noise
    fit = PowerLaw(k_min=3, k_max=400).fit(values)
    ref = stats.linregress(np.log(K[2:400]), np.log(values[2:400]))
    assert fit.exponent_ == pytest.approx(-ref.slope, rel=1e-12)
    assert fit.log_prefactor_ == pytest.approx(ref.intercept, rel=1e-12)
    assert fit.r2_ == pytest.approx(ref.rvalue**2, rel=1e-12)
    # log-normal noise of 0.05 on ~400 points: the slope's standard error is ~0.004; allow 0.02
    assert fit.exponent_ == pytest.approx(1.5, abs=0.02) and 0.98 < fit.r2_ < 1.0


def test_scaling_the_values_moves_only_the_prefactor():
    values = K**-0.8 * np.exp(0.1 * np.random.default_rng(0).standard_normal(K.size))
    base, scaled = PowerLaw(k_min=2, k_max=300).fit(values), PowerLaw(k_min=2, k_max=300).fit(7.0 * values)
    assert scaled.exponent_ == pytest.approx(base.exponent_, abs=1e-12)
    assert scaled.r2_ == pytest.approx(base.r2_, abs=1e-12)
    assert scaled.log_prefactor_ - base.log_prefactor_ == pytest.approx(math.log(7.0), abs=1e-12)


def test_k_max_none_is_the_last_rank():
    values = 3.0 * K[:40] ** -2.0
    assert PowerLaw(k_min=2).fit(values).n_points_ == 39
    fit, explicit = PowerLaw(k_min=2).fit(values), PowerLaw(k_min=2, k_max=40).fit(values)
    assert (fit.exponent_, fit.log_prefactor_, fit.r2_) == (explicit.exponent_, explicit.log_prefactor_, explicit.r2_)


def test_a_flat_segment_has_zero_exponent_and_undefined_r2():
    fit = PowerLaw(k_min=2, k_max=9).fit(np.ones(10))
    assert fit.exponent_ == pytest.approx(0.0, abs=1e-12) and math.isnan(fit.r2_)


@pytest.mark.parametrize("k_min,k_max", [(0, 5), (5, 5), (6, 5), (1, 11)])
def test_rejects_bad_rank_ranges(k_min, k_max):
    with pytest.raises(ValueError, match=r"^k_min, k_max: need 1 <= k_min < k_max <= 10"):
        PowerLaw(k_min=k_min, k_max=k_max).fit(np.ones(10))


def test_rejects_nonpositive_values_only_inside_the_range():
    v = np.arange(10.0, 0.0, -1.0)
    v[7] = 0.0  # rank 8
    with pytest.raises(ValueError, match=r"^values: must be finite and > 0 over ranks 2..9"):
        PowerLaw(k_min=2, k_max=9).fit(v)
    assert PowerLaw(k_min=2, k_max=7).fit(v).n_points_ == 6  # outside the range it does not matter


def test_predict_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="fit"):
        PowerLaw().predict(K)
