"""laws.scaling-fit: the design, the coverage count, the summary and the verdict on hand-built records.

The claim runs end to end (quick preset) in tests/test_quick_atlas.py; the fitter it uses is tested in
tests/test_fit_scaling.py. Nothing here fits, so the file takes well under a second.
"""

from __future__ import annotations

import numpy as np
import pytest

from learnmech.atlas.contract import Curve
from learnmech.atlas.keys import key
from learnmech.atlas.laws import scaling_fit as sf
from learnmech.theory.scaling_frontier import compute_optimal

X = np.arange(5.0)


def test_design_is_an_isoflop_grid_centred_on_the_true_frontier():
    cfg = sf.Config(budgets=4, per_budget=5)
    design = sf.synthetic_design(cfg)
    assert design["n"].shape == (20,)
    np.testing.assert_allclose(6 * design["n"] * design["d"], design["flops"], rtol=1e-12)  # C = 6 N D
    n_opt, _ = compute_optimal(sf.HOFFMANN, np.geomspace(*cfg.flops_range, 4))
    middle = design["n"].reshape(4, 5)[:, 2]  # the middle of 1/8 .. 8 (log-spaced, 5 points) is N_opt
    np.testing.assert_allclose(middle, n_opt, rtol=1e-12)


def test_coverage_counts_per_parameter_and_jointly():
    truth = np.array([1.0, 2.0])
    lo = np.array([[0.5, 1.5], [1.1, 1.5], [0.5, 2.5], [0.9, 1.9]])  # rep 1 misses p0, rep 2 misses p1
    hi = np.array([[1.5, 2.5], [1.5, 2.5], [1.5, 3.0], [1.0, 2.0]])  # rep 3: the truth on both edges (inside)
    per, joint = sf.coverage(truth, lo, hi)
    np.testing.assert_allclose(per, [0.75, 0.75])
    assert joint == pytest.approx(0.5)


def _records(cover: float, fit=None, reps: int = 20, porian: bool = True):
    truth = np.array([sf.HOFFMANN[p] for p in sf.PARAMS])
    prediction = sf.predict(sf.Config())
    hits = int(round(cover * reps))
    lo = np.repeat(truth[None] * 0.9, reps, 0)
    hi = np.repeat(truth[None] * 1.1, reps, 0)
    hi[hits:, 3] = truth[3] * 0.95  # alpha missed in the last reps - hits repetitions
    measurement = {key("synthetic", "lo"): Curve(X, lo), key("synthetic", "hi"): Curve(X, hi),
                   key("synthetic", "fit"): Curve(X, np.repeat(truth[None], reps, 0))}
    if fit is not None:
        measurement[key("chinchilla", "fit")] = Curve(X, np.array([fit[p] for p in sf.PARAMS]))
    if porian:
        ours = np.array([0.50, 0.60, 0.70])
        measurement[key("isoflop", "porian")] = Curve(np.arange(3.0), np.stack([ours, ours - 0.01, ours + 0.01,
                                                                                ours + [0.0, 0.005, 0.02]]))
    return prediction, measurement


MEASURED = dict(sf.BESIROGLU, alpha=0.3473, beta=0.3672)  # our optimum: within the SEs, not the printed digits


def test_summary_holds_the_numbers_the_verdict_and_the_figure_use():
    summary = sf.summarize(sf.Config(), *_records(0.95, MEASURED))
    assert summary["min_coverage"] == pytest.approx(0.95) and summary[key("coverage", "alpha")] == pytest.approx(0.95)
    assert summary[key("coverage", "E")] == 1.0 and summary["coverage_joint"] == pytest.approx(0.95)
    assert summary["repetitions"] == 20 and summary["tables_judged"] == 1.0
    assert summary[key("chinchilla_diff", "alpha")] == pytest.approx(0.3473 - 0.3478, abs=1e-12)
    assert summary[key("chinchilla_abs_diff", "beta")] == pytest.approx(0.3672 - 0.3658, abs=1e-12)
    assert summary["chinchilla_within_printed_digits"] == 0.0
    # published 0.50, 0.605, 0.72 against intervals +-0.01 around 0.50, 0.60, 0.70: the last is outside
    np.testing.assert_array_equal(summary[key("porian", "inside_ci")].y[0], [1.0, 1.0, 0.0])
    assert summary["porian_settings_inside_ci"] == 2 and summary["porian_settings"] == 3
    assert summary["porian_max_abs_diff"] == pytest.approx(0.02)


def test_judge_holds_fails_and_is_inconclusive():
    cfg = sf.Config()
    v = sf.CLAIM.judge(cfg, *_records(0.95, MEASURED))
    assert (v.status, v.metric, v.threshold) == ("holds", "min coverage of 95% intervals", sf.COVERAGE)
    assert v.value == pytest.approx(0.95)
    low = sf.CLAIM.judge(cfg, *_records(0.85, MEASURED))  # alpha covered in 85% < 90%
    assert (low.status, low.metric) == ("fails", "min coverage of 95% intervals") and low.value == pytest.approx(0.85)
    far = dict(sf.BESIROGLU, beta=sf.BESIROGLU["beta"] + 0.021)  # beyond beta's standard error 0.02
    beyond = sf.CLAIM.judge(cfg, *_records(1.0, far))
    assert beyond.status == "fails" and "dbeta" in beyond.metric
    assert (beyond.value, beyond.threshold) == (pytest.approx(0.021), sf.BESIROGLU_SE["beta"])
    exact = sf.CLAIM.judge(cfg, *_records(1.0, dict(sf.BESIROGLU)))
    assert exact.status == "holds" and exact.details["chinchilla_within_printed_digits"] == 1.0
    missing = sf.CLAIM.judge(cfg, *_records(0.5, None, porian=False))  # no tables found: cannot judge them
    assert missing.status == "inconclusive" and "LEARNMECH_TABLES" in missing.reason  # even with poor coverage


def test_figure_without_the_tables_has_the_coverage_panel_only():
    cfg = sf.Config()
    prediction, measurement = _records(1.0, None, porian=False)
    summary = sf.summarize(cfg, prediction, measurement)
    fig = sf.plot(cfg, prediction, measurement, summary, sf.CLAIM.decide(summary))
    assert len(fig.axes) == 1
