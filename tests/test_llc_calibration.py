"""dev.llc-calibration: config, exact values, finite-n expectations, the measurement on a regular case, the rules.

Independent references: the theory module's functions (exact values), closed forms and scipy quadrature of
the analytically reduced integral (finite-n expectations), the direct mean over examples (the moment form of
the loss), numpy least squares (the projected noise).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import integrate

from learnmech.atlas.contract import Curve
from learnmech.atlas.dev import llc_calibration as lc
from learnmech.atlas.keys import key
from learnmech.theory.learning_coefficient import normal_crossing, reduced_rank_regression, regular
from learnmech.theory.localised_posterior import crossing_expectation, gaussian_expectation


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("override", [
    {"burn_in": 300, "draws": 200},  # burn-in must be below draws
    {"rrr": ((2, 2, 2, 3),)},  # true rank above min(M, H, N)
    {"crossing": ((1, 5),)},  # powers are 1..4
    {"crossing": ((1, 1, 1, 1),)},  # at most three coordinates
    {"regular": ((2,),)},  # (M, N)
    {"gamma": 0.0},
    {"step_scale": -0.1},
    {"regular": (), "crossing": (), "rrr": ()},  # no case at all
])
def test_config_rejects_bad_input(override):
    with pytest.raises(ValueError):
        lc.CLAIM.make_config("quick", override)


def test_predict_exact_values_are_the_theory_functions():
    cfg = lc.CLAIM.make_config("full")
    pred = lc.predict(cfg.model_copy(update={"seeds": 1, "n": 200}))
    for i, case in enumerate(lc.cases(cfg)):
        if case.family == "regular":
            ref = regular(case.sizes[0] * case.sizes[1])
        elif case.family == "crossing":
            ref = normal_crossing(case.sizes)
        else:
            ref = reduced_rank_regression(*case.sizes)
        assert pred[key("exact", i)] == ref.lam and pred[key("multiplicity", i)] == ref.multiplicity
        if case.family == "rrr":  # lambda - (m - 1) / ln(n beta)
            t = 200 / np.log(200)
            assert pred[key("expected", i)].y[0, 0] == pytest.approx(ref.lam - (ref.multiplicity - 1) / np.log(t))


def test_crossing_expectation_one_coordinate_closed_form():
    # p = 1: w Gaussian with precision t s + gamma, E[t s w^2 / 2] = t s / (2 (t s + gamma)) (exact)
    t, s, g = 80.0, 1.3, 1.0
    assert crossing_expectation((1,), s, t, g) == pytest.approx(t * s / (2 * (t * s + g)), rel=1e-8)


def test_crossing_expectation_two_coordinates_against_scipy():
    # K = (s/2) w1^2 w2^2: w1 | w2 is Gaussian with precision a w2^2 + gamma (a = t s), so
    # E[t K] = int (1/2) a w^2/(a w^2 + gamma) rho(w) / int rho, rho = (a w^2 + gamma)^(-1/2) e^(-gamma w^2 / 2)
    t, s, g = 150.0, 0.9, 1.0
    a = t * s
    rho = lambda w: (a * w * w + g) ** -0.5 * np.exp(-0.5 * g * w * w)  # noqa: E731
    num = integrate.quad(lambda w: 0.5 * a * w * w / (a * w * w + g) * rho(w), 0, np.inf, epsabs=1e-13)[0]
    den = integrate.quad(rho, 0, np.inf, epsabs=1e-13)[0]
    assert crossing_expectation((1, 1), s, t, g) == pytest.approx(num / den, rel=1e-6)  # quad's accuracy


def test_crossing_expectation_tends_to_the_learning_coefficient():
    # p = (1, 2): lambda = 1/4, m = 1; finite-t correction O(t^-1/4) shrinks as t grows
    gaps = [abs(crossing_expectation((1, 2), 1.0, t, 1.0) - 0.25) for t in (1e2, 1e4, 1e6)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.02


def test_dataset_projected_noise_and_moment_loss():
    case = lc.Case("rrr", (3, 4, 2, 1))
    X, Y, W0, (A0, B0) = lc.dataset(case, 300, 1.0, seed=3)
    np.testing.assert_allclose(B0 @ A0, W0, atol=1e-14)
    assert np.linalg.matrix_rank(W0) == 1
    np.testing.assert_allclose(np.linalg.lstsq(X, Y, rcond=None)[0].T, W0, atol=1e-10)  # least squares is W0
    W = np.random.default_rng(0).standard_normal(W0.shape)
    direct = 0.5 * np.mean(np.sum((Y - X @ W.T) ** 2, axis=1))  # (1/2n) sum ||y - W x||^2
    assert float(lc._linear_loss(W, lc.moments(X, Y))) == pytest.approx(direct, rel=1e-12)
    # padding (one compilation per family): masked extra rows/columns leave the loss unchanged
    S_pad = lc._moments_padded(X, Y, 5, 4)[None]
    A, B = np.random.default_rng(1).standard_normal((4, 3)), np.random.default_rng(2).standard_normal((2, 4))
    A_pad, B_pad = lc._pad(A, (6, 5)) + 7.0 * (lc._pad(np.ones_like(A), (6, 5)) == 0), lc._pad(B, (4, 6))
    masks = (lc._pad(np.ones_like(A), (6, 5))[None], lc._pad(np.ones_like(B), (4, 6))[None])
    padded = float(lc._rrr_loss((A_pad, B_pad), (S_pad, *masks)))
    assert padded == pytest.approx(float(lc._linear_loss(B @ A, lc.moments(X, Y))), rel=1e-12)


def test_measurement_on_regular_cases_matches_the_gaussian_value():
    # f = W x with W_ls = W0: the localised posterior is Gaussian and E[t (L - L*)] = 1/2 sum t a/(t a + gamma)
    cfg = lc.CLAIM.make_config("quick", {"regular": ((2, 2), (3, 1)), "crossing": (), "rrr": (), "n": 200,
                                         "chains": 8, "draws": 3000, "burn_in": 300})
    pred, meas = lc.predict(cfg), lc.measure_family(cfg, "regular")
    for i in range(2):
        chains = meas[key("per_chain", i)].y[0]
        stderr = chains.std(ddof=1) / np.sqrt(chains.size)
        expected = pred[key("expected", i)].y[0, 0]
        # 4 standard errors (~0.04 of 1..2) plus the Euler-Maruyama bias eps kappa / 4 <= 0.5% (module docstring)
        assert abs(chains.mean() - expected) < 4 * stderr + 0.005 * expected
        assert np.all(meas[key("acceptance", i)].y > 0.9)


def _hand_made(estimate: float):
    """One regular case (exact 2) measured as ``estimate`` by every chain, acceptance 0.95, no runaway."""
    cfg = lc.CLAIM.make_config("quick", {"regular": ((2, 2),), "crossing": (), "rrr": ()})
    chains = np.arange(cfg.chains, dtype=float)
    pred = {key("exact", 0): 2.0, key("multiplicity", 0): 1.0, key("expected", 0): Curve([0.0], [1.98])}
    meas = {key("per_chain", 0): Curve(chains, np.full((1, cfg.chains), estimate) + 0.01 * (chains - chains.mean())),
            key("acceptance", 0): Curve(chains, np.full((1, cfg.chains), 0.95)),
            key("runaway", 0): Curve(chains, np.zeros((1, cfg.chains)))}
    return cfg, pred, meas


@pytest.mark.parametrize("estimate, status", [(2.0 * 1.16, "fails"), (2.0 * 0.84, "fails"), (2.0 * 1.14, "holds"),
                                              (2.0 * 0.86, "holds")])
def test_rules_on_hand_made_numbers(estimate, status):
    cfg, pred, meas = _hand_made(estimate)
    summary = lc.summarize(cfg, pred, meas)
    assert summary["max_rel_err"] == pytest.approx(abs(estimate / 2.0 - 1.0), rel=1e-12)
    assert summary[key("spread", 0)] == pytest.approx(np.std(0.01 * np.arange(cfg.chains), ddof=1), rel=1e-12)
    assert lc.CLAIM.decide(summary).status == status


def test_rules_inconclusive_on_low_acceptance_or_short_burn_in():
    cfg, pred, meas = _hand_made(2.0)
    meas[key("acceptance", 0)] = Curve(np.arange(cfg.chains, dtype=float), np.full((1, cfg.chains), 0.8))
    assert lc.CLAIM.decide(lc.summarize(cfg, pred, meas)).metric == "lowest mean MALA acceptance"
    cfg, pred, meas = _hand_made(2.0)
    short = cfg.model_copy(update={"burn_in": 100})
    verdict = lc.CLAIM.decide(lc.summarize(short, pred, meas))
    assert verdict.status == "inconclusive" and verdict.metric.startswith("burn-in")


def test_gaussian_expectation_against_monte_carlo_and_its_limit():
    # w ~ N(0, (t Sigma + gamma)^-1) per output row; E[(t/2) w^T Sigma w] summed over N rows. 200,000 draws:
    # the relative standard error of the mean of a chi^2-like sum with M = 3 terms is ~0.2%; tolerance 1%.
    rng = np.random.default_rng(0)
    q = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    a, t, g, N = np.array([0.5, 1.0, 2.0]), 40.0, 3.0, 2
    sigma = q @ np.diag(a) @ q.T
    cov = np.linalg.inv(t * sigma + g * np.eye(3))
    w = rng.multivariate_normal(np.zeros(3), cov, size=200_000)
    mc = N * np.mean(0.5 * t * np.einsum("si,ij,sj->s", w, sigma, w))
    assert gaussian_expectation(a, N, t, g) == pytest.approx(mc, rel=0.01)
    assert gaussian_expectation(a, N, 1e12, g) == pytest.approx(3 * N / 2, rel=1e-9)  # d/2 as gamma/t -> 0


@pytest.mark.parametrize("p", [2, 4])
def test_crossing_expectation_of_a_steep_single_power_against_scipy(p):
    # K = w^(2p)/2: the cut-off exp(-t K) turns over on a scale 1/(2p) in ln w, which the grid follows (step
    # spacing/p); quad to 1e-12, tolerance 1e-8
    t, g = 587.0, 1.0
    f = lambda w: np.exp(-t * w ** (2 * p) / 2 - g * w * w / 2)  # noqa: E731
    num = integrate.quad(lambda w: t * w ** (2 * p) / 2 * f(w), 0, np.inf, epsabs=0, epsrel=1e-12, limit=500)[0]
    den = integrate.quad(f, 0, np.inf, epsabs=0, epsrel=1e-12, limit=500)[0]
    assert crossing_expectation((p,), 1.0, t, g) == pytest.approx(num / den, rel=1e-8)
    with pytest.raises(ValueError, match="^gamma:"):
        crossing_expectation((p,), 1.0, t, 0.0)
