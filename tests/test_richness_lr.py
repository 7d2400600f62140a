"""limits.richness-lr: the richness scaling of eta* (theory/richness.py) and its claim (atlas/limits/richness_lr.py)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from learnmech.atlas.contract import Curve
from learnmech.atlas.keys import key
from learnmech.atlas.limits import richness_lr as claim
from learnmech.fit.transfer_fit import mean_loss, optimal_learning_rate
from learnmech.theory.richness import (crossover_gamma, lazy_edge_coefficient, lr_exponents, predicted_optimal_lr,
                                       toy_optimal_lr, toy_sharpness)

# ---------------------------------------------------------------------------------------------
# Theory


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_exponents_are_the_toy_limits(depth):
    lazy, rich = lr_exponents(depth)
    assert (lazy, rich) == (2.0, 2.0 / depth)  # arXiv:2410.04642, abstract
    # log-log slopes of the toy's stability edge far on each side; the corrections are O(gamma) and
    # O(1/gamma), so 1e-4 is loose at gamma = 1e-6 .. 1e-5 and 1e6 .. 1e7
    for (g0, g1), expected in (((1e-6, 1e-5), lazy), ((1e6, 1e7), rich)):
        eta = toy_optimal_lr(np.array([g0, g1]), depth, target=0.7, init=1.3)
        assert math.log(eta[1] / eta[0]) / math.log(g1 / g0) == pytest.approx(expected, abs=1e-4)


def _toy_loss(w, gamma, target, init):
    return 0.5 * ((np.prod(w) - init ** len(w)) / gamma - target) ** 2


def _fd_hessian(fn, w, h=1e-4):
    """Central finite differences, (P, P)."""
    P = w.size
    H = np.empty((P, P))
    for i in range(P):
        for j in range(P):
            e_i, e_j = np.eye(P)[i] * h, np.eye(P)[j] * h
            H[i, j] = (fn(w + e_i + e_j) - fn(w + e_i - e_j) - fn(w - e_i + e_j) + fn(w - e_i - e_j)) / (4 * h * h)
    return H


@pytest.mark.parametrize("depth,gamma", [(2, 0.05), (3, 0.5), (3, 20.0)])
def test_toy_sharpness_matches_gradient_flow_and_finite_differences(depth, gamma):
    """Integrate the toy's gradient flow (scipy) from w_l = init to its minimum, take the Hessian there by
    finite differences: its top eigenvalue is toy_sharpness (no balancedness assumed by the reference)."""
    target, init = 0.8, 1.1
    w0 = np.full(depth, init) * (1.0 + 1e-3 * np.arange(depth))  # slightly unbalanced start
    loss = lambda w: _toy_loss(w, gamma, target, init)  # noqa: E731

    def flow(_, w):
        r = (np.prod(w) - init**depth) / gamma - target
        return -r * np.array([np.prod(np.delete(w, k)) for k in range(depth)]) / gamma

    end = solve_ivp(flow, (0, 2e4 * gamma**2 + 2e3), w0, rtol=1e-11, atol=1e-13, method="LSODA").y[:, -1]
    assert loss(end) < 1e-16  # the flow reached the minimum
    top = np.linalg.eigvalsh(_fd_hessian(loss, end, h=1e-4 * max(1.0, float(np.abs(end).max()))))[-1]
    # tolerance: the 1e-3 initial imbalance moves s by ~1e-3 relative; FD error ~1e-7
    assert top == pytest.approx(float(toy_sharpness(gamma, depth, target, init)), rel=5e-3)


def test_crossover_is_where_the_asymptotes_meet():
    L, y, a = 3, 0.7, 1.3
    gc = crossover_gamma(L, y, a)
    lazy = L * a ** (2 * (L - 1)) / gc**2  # toy_sharpness as gamma -> 0 (module docstring)
    rich = L * y ** (2 - 2 / L) * gc ** (-2 / L)  # toy_sharpness as gamma -> infinity
    assert lazy == pytest.approx(rich, rel=1e-12)
    assert gc == pytest.approx(a**L / y, rel=1e-15)
    with pytest.raises(ValueError, match="depth"):
        crossover_gamma(1)


def test_predicted_optimal_lr_is_the_rescaled_toy():
    g = np.logspace(-4, 4, 17)
    for L in (2, 3, 4):
        A = 37.0
        # predicted = A (L/2) toy_optimal_lr with target = init = 1 (crossover 1): an identity of the two forms
        np.testing.assert_allclose(predicted_optimal_lr(g, L, A), A * L / 2 * toy_optimal_lr(g, L), rtol=1e-12)
        # limits: A gamma^2 and A gamma_c^{2-2/L} gamma^{2/L}, relative corrections O(gamma / gamma_c)
        assert predicted_optimal_lr(1e-7, L, A, 5.0) == pytest.approx(A * 1e-14, rel=1e-6)
        assert predicted_optimal_lr(1e9, L, A, 5.0) == pytest.approx(A * 5.0 ** (2 - 2 / L) * 1e9 ** (2 / L), rel=1e-6)


def test_lazy_edge_coefficient_is_the_gd_stability_edge():
    """GD on the linearised model f = J w / (gamma sqrt(N)) with (1/2n)||f - y||^2: stable just below
    A gamma^2, unstable just above (numpy reference: the iteration itself)."""
    rng = np.random.default_rng(0)
    n, P, N, gamma = 8, 20, 4, 0.3
    J, y = rng.standard_normal((n, P)), rng.standard_normal(n)
    top = np.linalg.eigvalsh(J @ J.T / n)[-1]
    edge = lazy_edge_coefficient(top, N) * gamma**2

    def final_loss(eta, steps=3000):
        w = np.zeros(P)
        for _ in range(steps):
            r = J @ w / (gamma * math.sqrt(N)) - y
            w -= eta * J.T @ r / (n * gamma * math.sqrt(N))
        return 0.5 * np.sum((J @ w / (gamma * math.sqrt(N)) - y) ** 2) / n

    start = 0.5 * np.sum(y**2) / n
    assert final_loss(0.98 * edge) < start  # converges (P > n: to ~0)
    assert final_loss(1.02 * edge) > 1e3 * start  # the top mode grows by 1.04^3000


def test_theory_rejects_bad_input():
    for bad in (0, 1.5, -2, True):
        with pytest.raises(ValueError, match="depth"):
            lr_exponents(bad)
    with pytest.raises(ValueError, match="gamma"):
        toy_sharpness([1.0, -1.0], 2)
    with pytest.raises(ValueError, match="top_eigenvalue"):
        lazy_edge_coefficient(0.0, 8)


# ---------------------------------------------------------------------------------------------
# The claim's estimator and verdict on synthetic loss surfaces with a known optimum


def _synthetic(cfg, exponents, shift=0.0):
    """A measurement whose eta*(gamma) = predicted_optimal_lr with the given (lazy, rich) exponents (per depth),
    as bowls exp((log2 eta - log2 eta*)^2 / 16) over each gamma's grid; learning rates 2 octaves above the optimum
    diverge (inf), as on the lazy side of the real runs."""
    prediction = claim.predict(cfg)
    g = np.asarray(cfg.gammas)
    out = {"zero_loss": 10.0}
    for L in cfg.depths:
        lazy_e, rich_e = exponents[L]
        true = 2.0 ** shift * (g**lazy_e * (g <= 1) + g**rich_e * (g > 1))  # crossover at 1, both sides
        centre = prediction[key("eta_star", L)].y[0]
        for i in range(g.size):
            lrs = centre[i] * 2.0 ** cfg.offsets
            d = np.log2(lrs) - np.log2(true[i] * 100.0)  # (K,), an arbitrary constant scale 100
            loss = np.where(d > 2.0, np.inf, np.exp(d**2 / 16.0))
            out[key("loss", L, i)] = Curve(lrs, np.stack([loss, loss]))
    return prediction, out


@pytest.fixture(scope="module")
def wide_cfg():
    # a wide grid so that the optimum of a synthetic surface far from the centre is still inside
    return claim.CLAIM.make_config("tiny", {"depths": (2, 3), "lr_log2_min": -16.0, "lr_log2_max": 16.0,
                                            "lr_log2_step": 0.5, "gammas": (1e-3, 1e-2, 1.0, 1e2, 1e3)})


def test_summary_recovers_known_slopes(wide_cfg):
    exps = {2: (2.0, 1.0), 3: (2.0, 2.0 / 3.0)}
    prediction, measurement = _synthetic(wide_cfg, exps)
    summary, verdict = claim.CLAIM.evaluate(wide_cfg, prediction, measurement)
    for L, (lazy_e, rich_e) in exps.items():
        # the parabola vertex of an exact log-quadratic bowl is exact: 1e-9
        assert summary[key("slope_lazy", L)] == pytest.approx(lazy_e, abs=1e-9)
        assert summary[key("slope_rich", L)] == pytest.approx(rich_e, abs=1e-9)
    assert summary["edges"] == 0 and verdict.status == "holds"


def test_summary_fails_wrong_slopes_and_flags_edges(wide_cfg):
    prediction, measurement = _synthetic(wide_cfg, {2: (2.0, 1.0), 3: (2.0, 1.2)})  # rich 1.2, not 2/3
    summary, verdict = claim.CLAIM.evaluate(wide_cfg, prediction, measurement)
    assert summary[key("slope_rich", 3)] == pytest.approx(1.2, abs=1e-9)
    assert verdict.status == "fails" and summary["rich_offset_max"] == pytest.approx(1.2 - 2 / 3, abs=1e-9)
    prediction, measurement = _synthetic(wide_cfg, {2: (2.0, 1.0), 3: (2.0, 2 / 3)}, shift=40.0)  # off the grid
    summary, verdict = claim.CLAIM.evaluate(wide_cfg, prediction, measurement)
    assert summary["edges"] == 8 and verdict.status == "inconclusive"  # 4 judged gammas x 2 depths


# ---------------------------------------------------------------------------------------------
# Real runs


def test_lazy_eta_star_grows_with_gamma_on_a_shared_grid():
    """Two lazy gammas on the same raw learning-rate grid (not centred): eta* grows by ~gamma^2 = 2^6.6."""
    cfg = claim.CLAIM.make_config("tiny", {"seeds": 1})
    X, Y = claim.digits_task(cfg)
    cfg2 = cfg.model_copy(update={"gammas": (1e-3, 1e-2)})  # _sweep reads only gammas, width, steps, seeds, batch
    lrs = np.tile(2.0 ** np.arange(-17.0, -2.0), (2, 1))  # (2, 15), one octave apart
    with jax.enable_x64(True):
        losses = claim._sweep(cfg2, 2, (jnp.asarray(X), jnp.asarray(Y)), lrs)  # (2, 15, 1)
    best = [optimal_learning_rate(lrs[i], mean_loss(losses[i])) for i in range(2)]
    assert not best[0][1] and not best[1][1]  # inside the grid
    # 20 log2(10) / 3.32 ~ 6.64 octaves; +/- 1.5 for the one-octave grid around a divergence cliff
    assert math.log2(best[1][0] / best[0][0]) == pytest.approx(2 * math.log2(10.0), abs=1.5)


def check_tiny_details(details: dict) -> None:
    """The tiny run's verdict details: the lazy slope.

    tests/test_claim_conformance.py runs every claim's tiny preset once and calls this with its details.
    """
    lazy = details[key("slope_lazy", 2)]
    assert lazy == pytest.approx(2.0, abs=0.3)  # lazy dynamics with eta / gamma^2 fixed do not depend on gamma


def test_config_rejects_bad_input():
    make = claim.CLAIM.make_config
    with pytest.raises(ValueError, match="decades"):
        make("tiny", {"gammas": (1e-2, 1e-1, 1.0, 2.0)})
    with pytest.raises(ValueError, match="lazy_max"):
        make("tiny", {"lazy_max": 1e3})
    with pytest.raises(ValueError, match="depths"):
        make("tiny", {"depths": (1, 2)})
    with pytest.raises(ValueError, match="gammas"):
        make("tiny", {"gammas": (1e-3, 1e-1, 1e2, 1e3)})  # one lazy gamma
