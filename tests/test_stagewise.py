"""dev.stagewise: config checks, exact rank-k values, the sufficient-statistics loss, the stage read-out, the rules."""

from __future__ import annotations

import numpy as np
import pytest

from learnmech.atlas.dev import stagewise as S
from learnmech.atlas.rules import decide
from learnmech.theory.learning_coefficient import reduced_rank_regression

QUICK = S.CLAIM.make_config("quick")


@pytest.mark.parametrize("override, field", [
    ({"hidden": 1}, "hidden"),  # H < r = 2
    ({"s": (3.0, 2.0, 1.0), "d_in": 2, "d_out": 4, "hidden": 3}, "s"),  # r = 3 > min(M, N) = 2
    ({"sigma": 0.5}, "sigma"),  # sigma^2 H / 2 = 0.25 > min(s) / 10 = 0.1
    ({"s": (1.0, 2.0)}, "s"),  # not decreasing
    ({"n_samples": 10, "d_in": 20, "d_out": 20}, "n_samples"),  # n < M
    ({"draws": 4}, "draws"),  # below the bound 8
])
def test_config_rejects(override, field):
    with pytest.raises(ValueError, match=field):
        S.CLAIM.make_config("quick", override)


def test_presets_validate_and_round_trip():
    for preset in ("tiny", "quick", "full"):
        cfg = S.CLAIM.make_config(preset)
        assert S.Config.model_validate_json(cfg.model_dump_json()) == cfg


def test_predict_is_aoyagi_watanabe_for_each_rank():
    lam = S.predict(QUICK)["lam"].y[0]
    expected = [reduced_rank_regression(4, 2, 4, k).lam for k in range(3)]
    assert lam.tolist() == expected
    # By hand from Aoyagi & Watanabe 2005 (M = N = 4, H = 2): k = 0, 2 even case (2(H+k)(M+N) - (H+k)^2)/8 = 3.5, 6;
    # k = 1 odd case (2 * 3 * 8 - 9 + 1)/8 = 5.
    assert lam.tolist() == [3.5, 5.0, 6.0]
    full = S.CLAIM.make_config("full")
    assert S.predict(full)["lam"].y[0].tolist() == [reduced_rank_regression(5, 3, 5, k).lam for k in range(4)]


def _sample(n=50, m=3, k=4, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, m)), rng.standard_normal((n, k))
    stats = {"sxx": (x.T @ x / n)[None], "syx": (y.T @ x / n)[None], "syy": (y.T @ y / n)[None]}
    return x, y, stats, rng


def test_statistics_loss_equals_the_sample_loss():
    x, y, stats, rng = _sample()
    params = [rng.standard_normal((2, 3)), rng.standard_normal((4, 2))]
    direct = 0.5 * np.sum((x @ params[0].T @ params[1].T - y) ** 2) / x.shape[0]  # (1/2n) sum ||W x - y||^2
    assert float(S.statistics_loss(params, stats)) == pytest.approx(direct, rel=1e-12)  # float64 rounding


def test_min_loss_full_rank_is_least_squares_and_low_rank_is_above_it():
    x, y, stats, _ = _sample()
    coef = np.linalg.lstsq(x, y, rcond=None)[0]  # (3, 4): the unrestricted least-squares fit, an independent reference
    ols = 0.5 * np.sum((x @ coef - y) ** 2) / x.shape[0]
    assert S.min_loss(stats, 3) == pytest.approx(ols, rel=1e-10)  # rank 3 = min(M, N): no restriction
    # rank 1: at most every rank-1 truncation of the least-squares map, and at least the full-rank minimum
    u, sv, vt = np.linalg.svd(coef)
    truncated = 0.5 * np.sum((x @ (sv[0] * np.outer(u[:, 0], vt[0])) - y) ** 2) / x.shape[0]
    assert ols < S.min_loss(stats, 1) <= truncated + 1e-12


def _two_drops():
    """A hand-made excess loss with drops near t = 2 and t = 8, and log-spaced probes."""
    t = np.geomspace(0.01, 20.0, 400)
    loss = 8.0 / (1 + np.exp(4 * (t - 2))) + 0.5 / (1 + np.exp(2 * (t - 8))) + 1e-9
    return t, loss, np.geomspace(0.05, 20.0, 30)


def test_stage_readout_finds_both_drops_and_reads_a_probe_on_each_plateau():
    t, loss, probe_t = _two_drops()
    out = S.stage_llc(t, loss, probe_t)
    assert out.drops.size == 2
    assert 1.5 < out.drops[0] < 2.5 and 7.0 < out.drops[1] < 9.0  # the logistic centres 2 and 8 (peak of -dL/dt)
    first, between, last = probe_t[out.probe]
    assert first < out.drops[0] < between < out.drops[1] and out.probe[-1] == probe_t.size - 1
    rising = 1.0 + (probe_t > 2.5) + (probe_t > 9.0)  # the LLC steps up after each drop
    assert S.rises(rising[out.probe]).tolist() == [True, True]
    falling_first = 3.0 - 2.0 * (probe_t > 2.5) + 3.0 * (probe_t > 9.0)  # falls at drop 1, rises at drop 2
    assert S.rises(falling_first[out.probe]).tolist() == [False, True]


def test_rises_treats_nan_as_not_rising():
    assert S.rises([1.0, np.nan, 3.0]).tolist() == [False, False]


def _summary(**changes):
    base = {"diverged": 0.0, "members_with_r_drops": 1.0, "members_with_rank_steps": 1.0, "final_acceptance": 0.98,
            "final_rel_err": 0.05, "drops_with_rise": 1.0, "plateau_runaway": 0.0}
    return {**base, **changes}


@pytest.mark.parametrize("changes, status, metric", [
    ({}, "holds", "|final LLC / lambda(M, H, N, r) - 1|"),
    ({"final_rel_err": 0.25}, "fails", "|final LLC / lambda(M, H, N, r) - 1|"),
    ({"drops_with_rise": 0.5}, "fails", "fraction of drops after which the LLC is higher"),
    ({"members_with_r_drops": 2 / 3}, "inconclusive", "fraction of members with r drops"),
    ({"final_acceptance": 0.85, "final_rel_err": 0.5}, "inconclusive", "mean MALA acceptance at the final probe"),
    ({"diverged": 1.0}, "inconclusive", "diverged members"),
    # flagged plateau chains: the rise is not judged, even when it is there
    ({"plateau_runaway": 1.0}, "inconclusive", "fraction of plateau chains that ran away"),
])
def test_rules_on_hand_made_summaries(changes, status, metric):
    verdict = decide(S.RULES, _summary(**changes))
    assert (verdict.status, verdict.metric) == (status, metric)
