"""Approach 2 (isoFLOP parabolas; Hoffmann et al. 2022, arXiv:2203.15556) against closed forms,
numpy references, a known Chinchilla law, and the published table of Porian et al. 2024
(arXiv:2406.19146)."""

import functools

import numpy as np
import pytest

from learnmech.data.tables import porian_published_exponent, porian_settings
from learnmech.fit import isoflop
from learnmech.fit.isoflop import isoflop_exponent, isoflop_optima

# Chinchilla law refitted by Besiroglu et al. 2024 (arXiv:2404.10102, their Table 1 estimates).
E, A, B, ALPHA, BETA = 1.8172, 482.01, 2085.43, 0.3478, 0.3658
A_TRUE = BETA / (ALPHA + BETA)  # Approach-2 exponent of N*(C) for this law
G = (ALPHA * A / (BETA * B)) ** (1.0 / (ALPHA + BETA))  # N* = G (C/6)^a (Hoffmann et al. eq. 4)


def chinchilla_loss(flops, n):
    return E + A / n**ALPHA + B / (flops / (6.0 * n)) ** BETA  # D = C / (6N)


def chinchilla_design(budgets, per_budget=15, span=8.0):
    """Sizes on a fixed grid (ratio 1.122): 15 per budget within a factor span of the true N*."""
    grid = np.geomspace(1e6, 1e12, 121)
    flops, n = [], []
    for c in budgets:
        n_star = G * (c / 6.0) ** A_TRUE
        near = grid[(grid > n_star / span) & (grid < n_star * span)]
        pick = np.unique(near[np.round(np.linspace(0, near.size - 1, per_budget)).astype(int)])
        flops += [c] * pick.size
        n += list(pick)
    return np.array(flops), np.array(n)


BUDGETS = np.geomspace(1e18, 1e22, 9)


# ---------------------------------------------------------------- parabolas and exclusions


def test_exact_parabola_vertex():
    # loss exactly quadratic in log N: the vertex and its loss are recovered to round-off
    c = np.repeat([1e18, 1e19, 1e20], 7)
    x_star = np.repeat(np.log([1e8, 3e8, 9e8]), 7)
    x = x_star + np.tile(np.linspace(-1.2, 0.9, 7), 3)  # asymmetric sampling around the vertex
    loss = 2.5 + 0.3 * (x - x_star) ** 2
    opt = isoflop_optima(c, np.exp(x), loss, window=None)
    np.testing.assert_allclose(opt.n_star, [1e8, 3e8, 9e8], rtol=1e-10)
    np.testing.assert_allclose(opt.loss_star, 2.5, atol=1e-12)
    np.testing.assert_allclose(opt.curvature, 0.6, rtol=1e-9)  # d^2L/d(log N)^2 = 2 * 0.3
    assert opt.valid.all() and opt.reason == ("", "", "")
    # a line through (C, N*) with N* = k C^(log 3 / log 10): slope log(3)/log(10)
    fit = isoflop_exponent(c, np.exp(x), loss, n_boot=0, window=None)
    assert fit.a == pytest.approx(np.log(3.0) / np.log(10.0), rel=1e-10)


def test_weighted_fit_matches_numpy_polyfit():
    # duplicated points weigh like bootstrap counts: compare with np.polyfit(w = sqrt(counts))
    rng = np.random.default_rng(3)
    x = np.linspace(16.0, 20.0, 9)
    y = 3.0 + 0.2 * (x - 18.3) ** 2 + 0.01 * rng.standard_normal(9)
    counts = np.array([1, 0, 2, 1, 3, 1, 0, 1, 2])
    opt = isoflop_optima(np.full(counts.sum(), 1e19), np.exp(np.repeat(x, counts)),
                         np.repeat(y, counts), window=None)
    c2, c1, _ = np.polyfit(x, y, 2, w=np.sqrt(counts))
    assert np.log(opt.n_star[0]) == pytest.approx(-c1 / (2 * c2), rel=1e-10)
    # the batched private solver, given the same counts as one replicate, agrees too
    n_star = isoflop._vertices(x[None], y[None], counts[None, None].astype(float), None, 3)[0]
    assert np.log(n_star[0, 0]) == pytest.approx(-c1 / (2 * c2), rel=1e-10)


def test_exclusions_are_flagged_and_left_out():
    x = np.log(np.geomspace(1e7, 1e9, 6))
    c = np.repeat([1e17, 2e17, 4e17, 8e17, 1.6e18], 6)
    loss = np.concatenate([
        3.0 + 0.1 * (x - x[2]) ** 2,  # valid
        3.0 - 0.1 * (x - x[3]) ** 2,  # opens downwards
        3.0 + 0.1 * (x - x[0] + 1.0) ** 2,  # convex, vertex left of the smallest size
        3.0 + 0.1 * (x - x[3]) ** 2,  # valid
        3.0 + 0.1 * (x - x[4]) ** 2,  # valid
    ])
    n = np.tile(np.exp(x), 5)
    keep = ~((c == 1.6e18) & ((n > 1.2e8) | (n < 2e7)))  # last budget keeps 2 points
    opt = isoflop_optima(c[keep], n[keep], loss[keep], window=None)
    outside = "vertex outside fitted range"
    assert opt.reason == ("", "opens downwards", outside, "", "too few points")
    np.testing.assert_array_equal(opt.excluded, [2e17, 4e17, 1.6e18])
    assert np.isnan(opt.n_star[~opt.valid]).all()
    fit = isoflop_exponent(c[keep], n[keep], loss[keep], n_boot=0, window=None)
    ref = np.polyfit(np.log([1e17, 8e17]), np.log(opt.n_star[[0, 3]]), 1)[0]
    assert fit.a == pytest.approx(ref, rel=1e-10)


def test_window_selects_points_near_the_minimum():
    # far points follow a different curve; window=3 (|log N - log N_min| <= log 3) ignores them
    x = np.log(np.geomspace(1e7, 1e10, 16))
    loss = 3.0 + 0.2 * (x - x[5]) ** 2
    loss[10:] += 2.0 * (x[10:] - x[10])  # a kink well away from the minimum
    opt_local = isoflop_optima(np.full(16, 1e19), np.exp(x), loss, window=3.0)
    assert opt_local.n_star[0] == pytest.approx(np.exp(x[5]), rel=1e-10)
    assert opt_local.n_points[0] == 5  # grid ratio 10^(3/15) = 1.585: two steps each side
    opt_all = isoflop_optima(np.full(16, 1e19), np.exp(x), loss, window=None)
    assert abs(np.log(opt_all.n_star[0] / np.exp(x[5]))) > 0.05


def test_input_validation():
    with pytest.raises(ValueError, match="^n:"):
        isoflop_optima([1e18, 1e18], [1e8], [3.0, 3.0])
    with pytest.raises(ValueError, match="^loss:"):
        isoflop_optima([1e18], [1e8], [np.nan])
    with pytest.raises(ValueError, match="^window:"):
        isoflop_optima([1e18], [1e8], [3.0], window=1.0)
    with pytest.raises(ValueError, match="^level:"):
        isoflop_exponent([1e18], [1e8], [3.0], level=1.5)


def test_resample_counts_draw_each_budget_its_own_size():
    sizes = np.array([3, 7, 5])
    counts = isoflop._resample_counts(sizes, 7, 2000, np.random.default_rng(0))  # (2000, 3, 7)
    np.testing.assert_array_equal(counts.sum(-1), np.broadcast_to(sizes, (2000, 3)))
    assert counts[:, 0, 3:].sum() == 0 and counts[:, 2, 5:].sum() == 0  # padding never drawn
    # multinomial means: each real point is drawn once per replicate on average
    np.testing.assert_allclose(counts[:, 1].mean(0), 1.0, atol=0.1)


# ---------------------------------------------------------------- a known Chinchilla law


def test_noise_free_chinchilla_recovers_exponent():
    flops, n = chinchilla_design(BUDGETS)
    fit = isoflop_exponent(flops, n, chinchilla_loss(flops, n), n_boot=0)
    assert fit.optima.valid.all()
    # tolerance 1e-3: grid discretisation and the profile's small asymmetry (measured ~1e-4)
    assert abs(fit.a - A_TRUE) < 1e-3
    assert abs(fit.log_k - np.log(G * 6.0**-A_TRUE)) < 0.05  # N* = G (C/6)^a


def test_noisy_chinchilla_ci_covers_true_exponent():
    flops, n = chinchilla_design(BUDGETS)
    rng = np.random.default_rng(7)
    loss = chinchilla_loss(flops, n) * (1.0 + 0.005 * rng.standard_normal(flops.size))
    fit = isoflop_exponent(flops, n, loss, n_boot=1000, seed=0)
    assert fit.ci[0] <= A_TRUE <= fit.ci[1]
    assert fit.ci[1] - fit.ci[0] < 0.1  # informative: 0.5% loss noise gives a width ~0.06
    assert fit.n_failed == 0


def test_noisy_chinchilla_coverage():
    # 20 noisy repetitions; the interval is conservative (measured 0.995 over 200 repetitions),
    # so at least 18 of 20 must cover (P(fewer) < 0.08 even at exact 95% coverage)
    flops, n = chinchilla_design(BUDGETS)
    rng = np.random.default_rng(11)
    covered = 0
    for rep in range(20):
        loss = chinchilla_loss(flops, n) * (1.0 + 0.01 * rng.standard_normal(flops.size))
        lo, hi = isoflop_exponent(flops, n, loss, n_boot=500, seed=rep).ci
        covered += lo <= A_TRUE <= hi
    assert covered >= 18


def test_bootstrap_is_seeded_and_shaped():
    s = next(s for s in porian_settings() if s["label"] == "rw/tuned/short/const/standard/val")
    fit = isoflop_exponent(s["flops"], s["n"], s["loss"], n_boot=1000, seed=0)
    again = isoflop_exponent(s["flops"], s["n"], s["loss"], n_boot=1000, seed=0)
    np.testing.assert_array_equal(fit.samples, again.samples)
    other = isoflop_exponent(s["flops"], s["n"], s["loss"], n_boot=1000, seed=1)
    assert not np.array_equal(fit.samples, other.samples)  # the seed is what draws the resamples
    assert fit.samples.shape == (1000,) and fit.n_star_samples.shape == (1000, s["budgets"].size)


# ---------------------------------------------------------------- Porian et al. 2024


published_exponent = porian_published_exponent


# The 15 settings of Porian et al. 2024 (shared/data/README.md), named here so that collection does not
# read the table: without shared/data each test fails on its own instead of the whole file.
LABELS = (
    "owt2/base/long/kaplan/kaplan/train", "owt2/base/long/kaplan/standard/val",
    "owt2/base/short/chinchilla/standard/val", "owt2/base/short/kaplan/standard/val",
    "owt2/tuned/short/const/standard/val", "rw/base/long/kaplan/attention/train", "rw/base/long/kaplan/kaplan/train",
    "rw/base/long/kaplan/standard/val", "rw/base/short/chinchilla/attention/train",
    "rw/base/short/chinchilla/standard/val", "rw/base/short/kaplan/attention/train",
    "rw/base/short/kaplan/standard/val", "rw/tuned/long/const/kaplan/train", "rw/tuned/short/const/attention/train",
    "rw/tuned/short/const/standard/val",
)


@functools.cache
def _settings() -> dict[str, dict]:
    return {s["label"]: s for s in porian_settings()}


def test_the_fifteen_settings_are_those_of_the_table():
    assert tuple(sorted(_settings())) == LABELS
# Known disagreement (explained in isoflop.py and test_cosine_decay_disagreement_is_small_budgets):
# Porian et al. locate minima on an Akima interpolation; the parabola differs at the smallest
# budgets of the two cosine-decay validation settings. Strict: the suite notices if it changes.
COSINE_DECAY = ("owt2/base/short/chinchilla/standard/val", "rw/base/short/chinchilla/standard/val")
_KNOWN = pytest.mark.xfail(strict=True, reason="parabola vs Akima minimum at C <= 1e17; see docs")


@pytest.mark.parametrize(
    "label", [pytest.param(k, marks=_KNOWN) if k in COSINE_DECAY else k for k in LABELS]
)
def test_porian_published_exponent_inside_ci(label):
    s = _settings()[label]
    fit = isoflop_exponent(s["flops"], s["n"], s["loss"], n_boot=1000, seed=0)
    a_pub = published_exponent(s)
    assert fit.n_failed == 0
    assert abs(fit.a - a_pub) < 0.05  # point estimates close in every setting
    assert fit.ci[0] <= a_pub <= fit.ci[1]


@pytest.mark.parametrize("label", COSINE_DECAY)
def test_cosine_decay_disagreement_is_small_budgets(label):
    s = _settings()[label]
    fit = isoflop_exponent(s["flops"], s["n"], s["loss"], n_boot=1000, seed=0)
    a_pub = published_exponent(s)
    assert 0.0 < a_pub - fit.ci[1] < 0.02  # just above our interval (0.007-0.011 measured)
    small = fit.optima.flops <= 1e17
    ratio = fit.optima.n_star / s["n_star_published"]
    assert np.all(ratio[small] > 1.05) and ratio[0] > 1.2  # our vertices sit above theirs there
    # on the budgets from 2e17 up, the published slope lies inside our interval
    big = s["flops"] >= 2e17
    fit_big = isoflop_exponent(s["flops"][big], s["n"][big], s["loss"][big], n_boot=1000, seed=0)
    keep = s["budgets"] >= 2e17
    a_pub_big = np.polyfit(np.log(s["budgets"][keep]), np.log(s["n_star_published"][keep]), 1)[0]
    assert fit_big.ci[0] <= a_pub_big <= fit_big.ci[1]


def test_porian_exclusions_match_the_authors():
    # budgets the authors could not place are also excluded here (minimum at the grid's edge)
    for s in _settings().values():
        opt = isoflop_optima(s["flops"], s["n"], s["loss"])
        theirs = set(s["budgets"][np.isnan(s["n_star_published"])])
        assert theirs <= set(opt.excluded)
