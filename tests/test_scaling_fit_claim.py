"""laws.scaling-fit: the design, the coverage count and the judge on hand-built records.

The claim runs end to end (quick preset) in tests/test_quick_atlas.py; the fitter it uses is tested in
tests/test_fit_scaling.py. Nothing here fits, so the file takes well under a second.
"""

from __future__ import annotations

import numpy as np
import pytest

from learnmech.atlas.contract import Curve
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
    measurement = {"synthetic/lo": Curve(X, lo), "synthetic/hi": Curve(X, hi),
                   "synthetic/fit": Curve(X, np.repeat(truth[None], reps, 0))}
    if fit is not None:
        measurement["chinchilla/fit"] = Curve(X, np.array([fit[p] for p in sf.PARAMS]))
    if porian:
        ours = np.array([0.50, 0.60, 0.70])
        measurement["isoflop/porian"] = Curve(np.arange(3.0), np.stack([ours, ours - 0.01, ours + 0.01,
                                                                          ours + [0.0, 0.005, 0.02]]))
    return prediction, measurement


def test_judge_holds_fails_and_is_inconclusive():
    cfg = sf.Config()
    measured = dict(sf.BESIROGLU, alpha=0.3473, beta=0.3672)  # our optimum: within the SEs, not the digits
    v = sf.judge(cfg, *_records(0.95, measured))
    assert v.status == "holds" and v.value == pytest.approx(0.95)
    assert v.details["chinchilla_within_printed_digits"] == 0.0
    assert v.details["porian_settings_inside_ci"] == 2 and v.details["porian_settings"] == 3
    assert sf.judge(cfg, *_records(0.85, measured)).status == "fails"  # alpha covered in 85% < 90%
    far = dict(sf.BESIROGLU, beta=sf.BESIROGLU["beta"] + 0.021)  # beyond beta's standard error 0.02
    assert sf.judge(cfg, *_records(1.0, far)).status == "fails"
    exact = sf.judge(cfg, *_records(1.0, dict(sf.BESIROGLU)))
    assert exact.status == "holds" and exact.details["chinchilla_within_printed_digits"] == 1.0
    missing = sf.judge(cfg, *_records(1.0, None, porian=False))  # no shared/data: cannot judge the tables
    assert missing.status == "inconclusive" and "shared/data" in missing.reason
