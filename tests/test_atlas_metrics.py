"""Judging helpers against closed forms: R^2, logistic crossing times, drop detection, and the
record <-> store-columns round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnmech.atlas.contract import Curve
from learnmech.atlas.drops import find_drops
from learnmech.atlas.metrics import crossing_time, linear_fit, log_slope, r_squared
from learnmech.atlas.runner import record_columns, record_from_columns
from learnmech.theory.dln import mode_trajectory_two_layer, predicted_loss, t_half_two_layer


def test_r_squared_perfect_constant_and_known_value():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert r_squared(y, y) == 1.0
    assert r_squared(y, np.full(4, y.mean())) == 0.0  # a constant at the mean scores exactly 0
    # residuals (0.5, -0.5, 0.5, -0.5): SS_res = 1, SS_tot = 5 -> 0.8 by hand
    assert r_squared(y, y + np.array([-0.5, 0.5, -0.5, 0.5])) == pytest.approx(0.8, abs=1e-15)


@settings(max_examples=40, deadline=None)
@given(s=st.floats(0.2, 5.0), log_u0=st.floats(-8.0, -2.0), points=st.integers(8, 60))
def test_crossing_time_is_exact_for_logistic_curves_on_coarse_grids(s, log_u0, points):
    u0 = 10.0**log_u0 * s
    t = np.geomspace(1e-3, 1.6 * t_half_two_layer(s, u0), points)
    u = mode_trajectory_two_layer(t, s, u0)[:, 0]
    # logit(u/s) is linear in t for the closed form, so interpolation there is exact up to the
    # rounding of s - u (the horizon keeps u/s below 1 - 1e-6 so that stays small: 1e-8; plain
    # linear interpolation is off by percents on these grids).
    assert crossing_time(t, u, s / 2, ceiling=s) == pytest.approx(t_half_two_layer(s, u0), rel=1e-8)


def test_crossing_time_linear_and_never_crossing():
    t = np.array([0.0, 1.0, 2.0])
    assert crossing_time(t, np.array([0.0, 1.0, 3.0]), 2.0) == pytest.approx(1.5)
    assert np.isnan(crossing_time(t, np.array([0.0, 0.1, 0.2]), 2.0))


def test_fits_recover_known_slopes():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    assert linear_fit(x, 3 * x - 1) == pytest.approx((3.0, -1.0))
    assert log_slope(x, 5 * x**-0.5) == pytest.approx(-0.5)


def test_find_drops_on_a_three_mode_saddle_curve():
    s, u0 = np.array([4.0, 1.5, 0.5]), 1e-6
    t = np.geomspace(1e-3, 40.0, 400)
    loss = predicted_loss(mode_trajectory_two_layer(t, s, u0), s)
    drops = find_drops(t, loss)
    assert drops.count == 3
    # The -dL/dt peak of a logistic mode sits at a fixed offset from t_half: with loss 1/2 (s-u)^2
    # and u = s sigma(2s(t - t_half)), d/dt[(1 - p)^2] peaks where p = 1/3, i.e. at
    # t_half - ln(2)/(2s); other modes are flat there, so the times agree to the grid (1%).
    expected = t_half_two_layer(s, u0) - np.log(2.0) / (2 * s)
    np.testing.assert_allclose(drops.times, expected, rtol=1e-2)
    # plateaus: one before, between each pair, and after the drops, in order
    assert drops.plateaus.size == 4 and np.all(np.diff(drops.plateaus) > 0)
    assert drops.plateaus[1] > drops.times[0] and drops.plateaus[1] < drops.times[1]


def test_find_drops_merges_modes_that_are_not_separated():
    s, u0 = np.array([1.05, 1.0]), 1e-3  # almost equal singular values: one drop
    t = np.geomspace(1e-3, 30.0, 300)
    assert find_drops(t, predicted_loss(mode_trajectory_two_layer(t, s, u0), s)).count == 1


def test_record_columns_round_trip():
    rec = {"a": Curve(np.array([0.0, 1.0, 2.0]), np.arange(6.0).reshape(2, 3)),
           "b": Curve(np.array([5.0]), np.array([[np.nan]]))}
    cols = record_columns("experiment", rec)
    assert len(cols["value"]) == 7
    back = record_from_columns(cols, "experiment")
    assert back.keys() == rec.keys()
    for k in rec:
        np.testing.assert_array_equal(back[k].x, rec[k].x)
        np.testing.assert_array_equal(back[k].y, rec[k].y)
    assert record_from_columns(cols, "theory") == {}


@pytest.mark.parametrize("x", [[0.0, 2.0, 1.0], [0.0, 1.0, 1.0], [0.0, np.nan, 2.0], [0.0, 1.0, np.inf]])
def test_curve_refuses_an_x_the_store_would_reorder(x):
    """Before, a Curve took any x, and one built out of order came back from the store reordered."""
    with pytest.raises(ValueError, match="x must be finite and strictly increasing"):
        Curve(np.asarray(x), np.zeros((2, 3)))
    assert Curve(np.array([5.0]), [[1.0]]).x.tolist() == [5.0]  # a scalar record is one point
