"""Signal propagation: mean-field maps against scipy quadrature, closed forms, finite differences and
Monte Carlo; the claim's fitters on exact curves; the tiny preset end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize

from learnmech.atlas.limits import signal_propagation as claim
from learnmech.atlas.limits import trainable_depth as td
from learnmech.theory import signal_propagation as sp

SB2 = 0.05


def _gauss(f) -> float:
    """``E[f(z)]``, ``z ~ N(0, 1)``, by scipy's adaptive quadrature (independent of the polar rule)."""
    return integrate.quad(lambda z: f(z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi), -12, 12,
                          epsabs=1e-13, epsrel=1e-12, limit=200)[0]


def _q_star_scipy(sw2: float) -> float:
    return optimize.brentq(lambda q: sw2 * _gauss(lambda z: math.tanh(math.sqrt(q) * z) ** 2) + SB2 - q,
                           1e-6, 50.0, xtol=1e-14)


@pytest.mark.parametrize("sw2", [1.2, 3.0])
def test_fixed_point_and_chi1_match_scipy_quadrature(sw2):
    q = _q_star_scipy(sw2)
    chi = sw2 * _gauss(lambda z: (1 - math.tanh(math.sqrt(q) * z) ** 2) ** 2)
    mf = sp.mean_field(sw2, SB2, "tanh")
    assert mf.q_star == pytest.approx(q, rel=1e-8)  # polar rule: 2e-11 relative (theory/quadrature.py)
    assert mf.chi_1 == pytest.approx(chi, rel=1e-8)
    assert (mf.c_star == 1.0) == (chi < 1.0)  # ordered iff chi_1 < 1


def test_relu_closed_forms():
    # ReLU: E[relu(sqrt(q) z)^2] = q/2, E[relu'^2] = 1/2, so q* = sigma_b^2 / (1 - sigma_w^2/2) and
    # chi_1 = sigma_w^2 / 2 (exact), which reaches 1 at sigma_w^2 = 2: the critical point.
    for sw2 in (0.5, 1.5, 1.999):
        assert sp.length_fixed_point(sw2, SB2, "relu") == pytest.approx(SB2 / (1 - sw2 / 2), rel=1e-10)
        assert sp.chi_1(sw2, SB2, "relu") == pytest.approx(sw2 / 2, rel=1e-12)
    with pytest.raises(ValueError, match="sigma_w2"):
        sp.length_fixed_point(2.5, SB2, "relu")  # above the critical point q grows without bound


@pytest.mark.parametrize("q", [0.3, 1.0, 2.5])
def test_erf_critical_line_closed_form(q):
    # erf (Williams 1997): E[erf(u)^2] = (2/pi) asin(2q/(1+2q)), E[erf'(u)^2] = (4/pi)/sqrt(1+4q);
    # chi_1 = 1 at q* = q gives sigma_w^2 = (pi/4) sqrt(1+4q), and q = L(q) gives sigma_b^2.
    sw2 = math.pi / 4 * math.sqrt(1 + 4 * q)
    sb2 = q - sw2 * 2 / math.pi * math.asin(2 * q / (1 + 2 * q))
    assert sp.critical_sigma_w2(sb2, "erf") == pytest.approx(sw2, rel=1e-9)
    assert sp.length_fixed_point(sw2, sb2, "erf") == pytest.approx(q, rel=1e-9)


def test_tanh_critical_point_near_published_value():
    crit = sp.critical_sigma_w2(SB2, "tanh")
    assert crit == pytest.approx(1.76, abs=0.01)  # Schoenholz et al. 2017, Fig. 1 (read off the plot)
    assert sp.chi_1(crit, SB2, "tanh") == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("sw2", [1.4, 3.0])
def test_correlation_slope_matches_finite_differences(sw2):
    q = sp.length_fixed_point(sw2, SB2)
    h = 1e-5  # central difference: truncation h^2 C'''/6 ~ 1e-11, rounding 1e-16/h ~ 1e-11
    for c in (0.2, 0.7, sp.correlation_fixed_point(sw2, SB2, q_star=q) - 2 * h):
        fd = (sp.correlation_map(c + h, sw2, SB2, q_star=q) - sp.correlation_map(c - h, sw2, SB2, q_star=q)) / (2 * h)
        assert sp.correlation_slope(c, sw2, SB2, q_star=q) == pytest.approx(fd, rel=1e-7)
    assert sp.correlation_map(1.0, sw2, SB2, q_star=q) == pytest.approx(1.0, abs=1e-12)  # c = 1 is a fixed point
    c_star = sp.correlation_fixed_point(sw2, SB2, q_star=q)
    assert sp.correlation_map(c_star, sw2, SB2, q_star=q) == pytest.approx(c_star, abs=1e-12)


def test_correlation_map_matches_monte_carlo():
    sw2, c = 3.0, 0.5
    q = sp.length_fixed_point(sw2, SB2)
    z = np.random.default_rng(0).standard_normal((2, 400_000))
    u1 = math.sqrt(q) * z[0]
    u2 = math.sqrt(q) * (c * z[0] + math.sqrt(1 - c * c) * z[1])
    samples = (sw2 * np.tanh(u1) * np.tanh(u2) + SB2) / q
    se = samples.std() / math.sqrt(samples.size)
    assert abs(samples.mean() - sp.correlation_map(c, sw2, SB2, q_star=q)) < 5 * se  # 5 standard errors


def test_depth_scale_and_length_slope():
    mf = sp.mean_field(3.0, SB2)
    assert mf.xi_c == pytest.approx(-1 / math.log(mf.chi_c), rel=1e-12)
    # L'(q*) from scipy: sigma_w^2 d/dq E[tanh(sqrt(q) z)^2] = sigma_w^2 E[tanh'^2 + tanh tanh''] (Stein)
    t = lambda z: math.tanh(math.sqrt(mf.q_star) * z)  # noqa: E731
    slope = 3.0 * _gauss(lambda z: (1 - t(z) ** 2) ** 2 - 2 * t(z) ** 2 * (1 - t(z) ** 2))
    assert mf.xi_q == pytest.approx(-1 / math.log(slope), rel=1e-6)  # central difference, 1e-9 relative


def test_fitters_recover_known_numbers():
    layers = np.arange(1, 61, dtype=float)
    dev = 0.4 * np.exp(-layers / 7.5)  # an exact exponential
    se = np.full(60, 1e-3 / claim.FLOOR_SE)  # the window ends where dev drops below 1e-3
    xi, first, last = claim.fit_depth_scale(layers, dev, se)
    assert layers[first] == 4.0  # 0.4 e^{-l/7.5} <= DEV_MAX = 0.25 from l = 7.5 ln 1.6 = 3.5 on
    assert layers[last - 1] == 44.0  # 0.4 e^{-l/7.5} >= 1e-3 up to l = 7.5 ln 400 = 44.9
    assert xi == pytest.approx(7.5, rel=1e-10)
    scan = np.array([1.5, 1.6, 1.7, 1.8, 1.9])
    assert claim._critical_from_scan(scan, 0.2 * (scan - 1.73) - 0.1 * (scan - 1.73) ** 2) == pytest.approx(1.73)


def test_boundary_interpolates_a_known_crossing_in_log_depth():
    # synthetic heat-map column: accuracy falls linearly in ln D from 0.9 at D = 4 to 0.1 at D = 128, so the
    # threshold 0.5 (halfway) is crossed exactly at D* = sqrt(4 * 128) = 22.63 (geometric midpoint)
    depths = np.array([4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128], float)
    acc = 0.9 - 0.8 * np.log(depths / 4) / np.log(32)
    threshold = td.trainable_threshold(0.9, claim.TRAIN_FRACTION)
    assert threshold == pytest.approx(0.5, abs=1e-15)  # 0.1 + 0.5 (0.9 - 0.1)
    assert td.boundary_depth(depths, acc, threshold) == pytest.approx(math.sqrt(4 * 128), rel=1e-12)  # linear in ln D


def test_boundary_takes_the_first_crossing_and_reads_divergence_as_chance():
    depths = np.array([4.0, 8.0, 16.0, 32.0, 64.0])
    # a NaN (diverged) cell counts as chance 0.1: crossing between 8 (acc 0.7) and 16 (NaN -> 0.1) at
    # t = (0.7 - 0.4) / (0.7 - 0.1) = 0.5 of the ln step: D* = 8 * 2^0.5; the later recovery (0.6) is ignored
    acc = np.array([0.8, 0.7, np.nan, 0.6, 0.1])
    assert td.boundary_depth(depths, acc, 0.4) == pytest.approx(8 * math.sqrt(2), rel=1e-12)
    assert math.isnan(td.boundary_depth(depths, np.full(5, 0.9), 0.4))  # never crossed: outside the grid
    assert math.isnan(td.boundary_depth(depths, np.full(5, 0.2), 0.4))  # shallowest already below
    with pytest.raises(ValueError, match="fraction"):
        td.trainable_threshold(0.9, 1.5)


def test_trainable_depths_give_k_and_its_spread():
    # two sigma_w^2 whose crossings sit at exactly 6 xi_c and 9 xi_c: k = 6, 9, mean 7.5, spread 0.2
    cfg = claim.Config(ordered=(1.2,), chaotic=(3.0,), scan=(1.6, 1.8, 2.0), train_depths=(4, 128))
    xi = {0: 5.0, 1: 8.0}
    depths = np.array([4.0, 128.0])
    measurement, prediction = {}, {}
    for i, k in ((0, 6.0), (1, 9.0)):
        t = math.log(k * xi[i] / 4) / math.log(32)  # where D* = k xi_c sits between 4 and 128 in ln D
        low = 0.5 - (0.9 - 0.5) * (1 - t) / t  # the deep cell's accuracy that puts the 0.5 crossing there
        measurement[f"accuracy/{i}"] = claim.Curve(depths, np.array([[0.9, low]]))
        prediction[f"xi_c/{i}"] = xi[i]
    out = claim._trainable_depths(cfg, prediction, measurement)
    assert (out["k/0"], out["k/1"]) == (pytest.approx(6.0, rel=1e-12), pytest.approx(9.0, rel=1e-12))
    assert out["k_spread"] == pytest.approx(0.2, rel=1e-12)  # |6 / 7.5 - 1| = |9 / 7.5 - 1| = 0.2


def test_config_refuses_bad_input():
    with pytest.raises(ValueError, match="scan"):
        claim.Config(scan=(1.8, 1.6, 2.0))
    with pytest.raises(ValueError, match="q_from"):
        claim.Config(depth=10, q_from=10)


def check_tiny_details(details: dict) -> None:
    """The tiny run's verdict details: the ordered fit recovers xi_c.

    tests/test_claim_conformance.py runs every claim's tiny preset once and calls this with its details.
    """
    assert details["xi_needed"] == 2.0 and details["boundaries_needed"] == 0.0
    # the ordered fit is noise-free even at width 64: xi_c(1.2, 0.05) = 5.94 (theory), measured 6.06
    assert details["xi_fit/0"] == pytest.approx(sp.mean_field(1.2, SB2).xi_c, rel=0.1)
