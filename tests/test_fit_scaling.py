"""Scaling-law fitter: published refits, synthetic coverage, exact recovery, estimator contract.

References used below:
- Chinchilla table: Besiroglu, Erdil, Barnett & You 2024, arXiv:2404.10102 (their refit of
  Hoffmann et al. 2022 Approach 3 on the 240 points left after dropping the 5 highest losses:
  E = 1.8172, A = 482.01, B = 2085.43, alpha = 0.3478, beta = 0.3658).
- datablations: Muennighoff et al. 2023, arXiv:2305.16264 (R*_D = 15.4, R*_N = 5.3 with
  ``a, b, e, alpha = beta`` = 6.255414, 7.3049974, 0.6254804, 0.3526596 fitted beforehand to
  Chinchilla's C4 isoFLOP points and held fixed; repository README, "Parametric Fit").
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize

from learnmech.data.tables import load_chinchilla, load_datablations
from learnmech.fit import ScalingLaw, fit_batch, fit_form, holdout_report
from learnmech.theory.scaling_forms import FORMS, get_form, predict, user_form
from learnmech.theory.scaling_frontier import compute_optimal, tokens_per_parameter

PUBLISHED_CHINCHILLA = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
PUBLISHED_C4 = {"E": math.exp(0.6254804), "A": math.exp(6.255414), "B": math.exp(7.3049974),
                "alpha": 0.3526596, "beta": 0.3526596}  # datablations README
PUBLISHED_RD, PUBLISHED_RN = 15.387756, 5.309743  # datablations README (paper: 15.4, 5.3)


def _chinchilla() -> dict[str, np.ndarray]:
    return load_chinchilla()  # the 5 highest losses dropped (Besiroglu et al. 2024); read from shared/data


@pytest.fixture(scope="module")
def chinchilla_fit():
    t = _chinchilla()
    return t, fit_form("chinchilla", {"n": t["n"], "d": t["d"]}, t["loss"])


# ---------------------------------------------------------------- 1. Chinchilla table


def test_chinchilla_refit_is_the_minimum_and_explains_the_published_numbers(chinchilla_fit):
    t, fit = chinchilla_fit
    inputs = {"n": t["n"], "d": t["d"]}
    form = get_form("chinchilla")
    assert fit.n_points == 240 and fit.n_starts == 4500 and fit.converged
    assert fit.warnings == () and fit.identified  # the published table pins the law down: nothing to warn about
    # published values reproduced to their stated precision where our minimum agrees:
    assert abs(fit.params["E"] - 1.8172) <= 5e-4
    assert abs(fit.params["alpha"] - 0.3478) <= 5e-4
    assert abs(fit.params["A"] / 482.01 - 1) <= 0.01
    # beta and B: our minimum is beta = 0.3672, B = 2143 (1.4e-3 and 2.8% from the paper). The
    # published point is where scipy's *default* L-BFGS-B (their optimiser) stops: started there,
    # it stays within the published precision ...
    j = _huber_objective(inputs, t["loss"])
    start = form.from_natural(PUBLISHED_CHINCHILLA)
    default = scipy.optimize.minimize(j, start, method="L-BFGS-B")
    theirs = form.to_natural(default.x)
    for key in ("E", "alpha", "beta"):
        assert abs(theirs[key] - PUBLISHED_CHINCHILLA[key]) <= 5e-4
    for key in ("A", "B"):
        assert abs(theirs[key] / PUBLISHED_CHINCHILLA[key] - 1) <= 0.01
    # ... at an objective above our minimum (a flat valley; their stopping rule is ftol = 2.2e-9):
    assert fit.objective < default.fun - 5e-8
    assert fit.objective == pytest.approx(j(np.asarray(fit.coords)), rel=1e-12)
    # scipy with tight tolerances (finite-difference gradients) from there gets no lower than us ...
    tight = scipy.optimize.minimize(j, start, method="L-BFGS-B",
                                    options={"ftol": 1e-15, "gtol": 1e-14, "maxiter": 20000, "maxfun": 40000})
    assert fit.objective <= tight.fun
    # ... and our optimiser started at the published point descends to the same minimum (one basin)
    again = fit_form("chinchilla", inputs, t["loss"], starts=start[None])
    assert again.objective == pytest.approx(fit.objective, rel=1e-10)
    assert abs(again.params["beta"] - fit.params["beta"]) < 1e-5
    assert fit.n_agree >= 2  # distinct grid starts polished to the same optimum


def _huber_objective(inputs, loss, delta=1e-3):
    """Independent numpy objective of Besiroglu et al. (log-sum-exp, Huber on log-loss, summed)."""
    ln, ld, ly = np.log(inputs["n"]), np.log(inputs["d"]), np.log(loss)

    def j(p):
        a, b, e, alpha, beta = p
        r = np.logaddexp(np.logaddexp(a - alpha * ln, b - beta * ld), e) - ly
        ab = np.abs(r)
        return float(np.sum(np.where(ab <= delta, 0.5 * r * r, delta * (ab - 0.5 * delta))))

    return j


def test_chinchilla_frontier_matches_a_numeric_minimisation(chinchilla_fit):
    _, fit = chinchilla_fit
    p = fit.params
    for c in (1e20, 1e22, 5.76e23, 1e25):
        n_opt, d_opt = compute_optimal(p, c)
        # independent: minimise L(N, C / (6 N)) over log N with scipy
        res = scipy.optimize.minimize_scalar(
            lambda ln: p["A"] * math.exp(-p["alpha"] * ln) + p["B"] * (c / (6 * math.exp(ln))) ** -p["beta"],
            bounds=(math.log(1e6), math.log(1e15)), method="bounded", options={"xatol": 1e-10})
        assert float(n_opt) == pytest.approx(math.exp(res.x), rel=1e-5)
        assert float(n_opt * d_opt) == pytest.approx(c / 6, rel=1e-12)
        assert float(tokens_per_parameter(p, c)) == pytest.approx(float(d_opt / n_opt), rel=1e-12)


# ---------------------------------------------------------------- 2. synthetic coverage

TRUE = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}


def _design():
    n = np.logspace(7.5, 10, 6)  # 30M .. 10B parameters
    d = np.logspace(9, 11.5, 6)  # 1B .. 300B tokens
    nn, dd = np.meshgrid(n, d)
    return {"n": nn.ravel(), "d": dd.ravel()}  # 36 runs


def test_bootstrap_intervals_cover_the_true_parameters():
    """R = 40 noisy tables (log-normal noise, sigma = 0.02), 200 bootstrap refits each."""
    reps, n_boot, sigma = 40, 200, 0.02
    form = get_form("chinchilla")
    design = _design()
    clean = predict(form, TRUE, **design)
    rng = np.random.default_rng(1)
    noisy = clean * np.exp(sigma * rng.standard_normal((reps, clean.size)))  # (reps, 36)
    # point fits: 8 starts per repetition, vectorised over repetitions x starts, best start kept
    grid = np.array([[a, b, 0.5, al, be] for a in (5.0, 10.0) for b in (5.0, 10.0) for al, be in ((0.3, 0.3), (0.6, 0.6))])
    lanes = fit_batch(form, design, np.repeat(noisy, len(grid), 0), np.tile(grid, (reps, 1)), n_iter=300)
    obj = lanes["objective"].reshape(reps, len(grid))
    best = lanes["coords"].reshape(reps, len(grid), -1)[np.arange(reps), np.argmin(obj, 1)]  # (reps, 5)
    # bootstrap: every repetition's resamples refitted from its optimum, all in one vmap
    rng = np.random.default_rng(2)
    counts = rng.multinomial(clean.size, np.full(clean.size, 1 / clean.size), size=(reps, n_boot))
    boot = fit_batch(form, design, np.repeat(noisy, n_boot, 0), np.repeat(best, n_boot, 0),
                     weights=counts.reshape(reps * n_boot, -1), n_iter=150)
    covered = {}
    for key, value in TRUE.items():
        samples = boot[key].reshape(reps, n_boot)
        lo, hi = np.percentile(samples, [2.5, 97.5], axis=1)
        covered[key] = np.mean((lo <= value) & (value <= hi))
    assert np.all(np.isfinite(boot["objective"]))
    assert all(c >= 0.9 for c in covered.values()), covered


# ---------------------------------------------------------------- 3. exact recovery per form

RECOVERY = {
    "chinchilla": (TRUE, "nd"),
    "kaplan-n": ({"N_c": 8.8e13, "alpha_N": 0.076}, "n"),
    "kaplan-d": ({"D_c": 5.4e13, "alpha_D": 0.095}, "d"),
    "kaplan-joint": ({"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}, "nd"),
    "power-offset": ({"E": 0.5, "A": 30.0, "alpha": 0.6}, "x"),
    "data-constrained": (PUBLISHED_C4 | {"R_D": 15.4, "R_N": 5.3}, "ndu"),
}


def _recovery_inputs(kind: str):
    rng = np.random.default_rng(3)
    size = 40
    if kind == "x":
        return {"x": np.logspace(1, 6, size)}
    n, d = 10 ** rng.uniform(7, 10, size), 10 ** rng.uniform(8.5, 12, size)
    if kind == "n":
        return {"n": n}
    if kind == "d":
        return {"d": d}
    if kind == "nd":
        return {"n": n, "d": d}
    u = d / 10 ** rng.uniform(0, 2.5, size)  # up to ~300 epochs
    return {"n": n, "d": d, "u": u}


@pytest.mark.parametrize("name", sorted(RECOVERY))
def test_each_form_recovers_its_parameters_from_exact_data(name):
    truth, kind = RECOVERY[name]
    form = FORMS[name]
    inputs = _recovery_inputs(kind)
    starts = None
    if name == "chinchilla":  # a coarser grid than Hoffmann's keeps this test fast (243 starts)
        starts = np.array(np.meshgrid(*[axis[::2] for axis in form.grid], indexing="ij")).reshape(form.n_params, -1).T
    if name == "data-constrained":  # every 54th of the 3,888 default starts (72)
        starts = form.starts()[::54]
    fit = fit_form(form, inputs, predict(form, truth, **inputs), starts=starts)
    assert fit.objective < 1e-20
    for key, value in truth.items():
        assert fit.params[key] == pytest.approx(value, rel=1e-5), key


def test_user_form_is_fitted_like_the_built_in_ones():
    form = user_form(lambda p, x: p["E"] + p["A"] * x["x"] ** -p["alpha"], ("E", "A", "alpha"), ("x",),
                     starts={"E": (0.1, 1.0), "A": (1.0, 10.0), "alpha": (0.3, 1.0)})
    x = np.logspace(1, 6, 30)
    truth = {"E": 0.5, "A": 30.0, "alpha": 0.6}
    fit = fit_form(form, {"x": x}, predict("power-offset", truth, x=x))
    for key, value in truth.items():
        assert fit.params[key] == pytest.approx(value, rel=1e-5)
    with pytest.raises(KeyError, match="chinchilla"):
        get_form("chinchila")


# ---------------------------------------------------------------- 4. ScalingLaw estimator


def _small_table():
    design = _design()
    loss = predict("chinchilla", TRUE, **design) * np.exp(0.005 * np.random.default_rng(4).standard_normal(36))
    return {"n": design["n"], "flops": 6 * design["n"] * design["d"], "loss": loss}


def test_scaling_law_fit_predict_frontier_holdout_ci():
    table = _small_table()
    law = ScalingLaw(n_bootstrap=100, starts=get_form("chinchilla").starts()[::9]).fit(table, flops="flops")
    assert law is not None and law.result_.converged
    assert law.params_["alpha"] == pytest.approx(TRUE["alpha"], abs=0.05)
    pred = law.predict({"n": table["n"], "d": table["flops"] / (6 * table["n"])})
    assert np.max(np.abs(pred / table["loss"] - 1)) < 0.03  # noise sigma 0.005
    assert set(law.ci_) == set(TRUE) and all(lo <= law.params_[k] <= hi for k, (lo, hi) in law.ci_.items())
    n_opt, d_opt = law.frontier(np.array([1e21, 1e23]))
    assert np.all(n_opt * d_opt == pytest.approx(np.array([1e21, 1e23]) / 6))
    report = law.holdout(threshold=np.quantile(table["flops"], 0.75))
    assert report.n_train + report.n_test == 36 and report.mean_abs_rel_error < 0.02
    with pytest.raises(ValueError, match="frontier"):
        ScalingLaw("power-offset").fit({"x": np.logspace(1, 4, 10), "loss": 1 + 1 / np.logspace(1, 4, 10)}).frontier(1e20)


def test_scaling_law_errors_name_the_field():
    table = _small_table()
    with pytest.raises(ValueError, match="^loss: column 'val_loss'"):
        ScalingLaw().fit(table, flops="flops", loss="val_loss")
    with pytest.raises(ValueError, match="^d: give a token column"):
        ScalingLaw().fit({"n": table["n"], "loss": table["loss"]})
    bad = dict(table, n=np.where(np.arange(36) == 3, -1.0, table["n"]))
    with pytest.raises(ValueError, match="^n: column 'n' must be finite and > 0"):
        ScalingLaw().fit(bad, flops="flops")
    few = {k: v[:5] for k, v in table.items()}
    with pytest.raises(ValueError, match="^loss: need at least 6 runs"):
        ScalingLaw().fit(few, flops="flops")


# ---------------------------------------------------------------- 5. datablations


def _datablations():
    return load_datablations()  # Muennighoff et al. 2023; read from shared/data


def test_datablations_data_constrained_fit():
    t = _datablations()
    inputs = {k: t[k] for k in ("n", "d", "u")}
    # (a) the published protocol: E, A, B, alpha = beta held at the C4 values, R*_D, R*_N fitted
    fixed = fit_form("data-constrained", inputs, t["loss"], fixed=PUBLISHED_C4)
    rd, rn = fixed.params["R_D"], fixed.params["R_N"]
    print(f"datablations, base fixed: R*_D = {rd:.2f} (published 15.4), R*_N = {rn:.2f} (published 5.3)")
    assert fixed.converged
    # The published pair comes from these same 182 runs, and it is a local minimum of this same
    # objective, in a basin of its own. The default grid (81 (R*_D, R*_N) pairs, log R* = 0..8)
    # reaches the global minimum, R*_D = 95.37, R*_N = 1.706 (a brute-force scan agrees:
    # tests/test_fit_basins.py), and reports the four other basins within 1% of it: R*_D ~ 47.0,
    # 52.2, 160.7 and the published pair's, 15.37 (1.35e-3 above the best). R*_D and R*_N are
    # therefore not identified by these runs: five basins along one valley fit them within 0.14%.
    assert rd == pytest.approx(95.365, rel=1e-4) and rn == pytest.approx(1.7059, rel=1e-4)
    j_pub = _dc_objective(inputs, t["loss"], PUBLISHED_C4 | {"R_D": PUBLISHED_RD, "R_N": PUBLISHED_RN})
    print(f"objective: minimum {fixed.objective:.10f}, published pair {j_pub:.10f}")
    assert fixed.objective < j_pub <= 1.0014 * fixed.objective
    published_basin = min(fixed.basins, key=lambda b: abs(math.log(b.params["R_D"] / PUBLISHED_RD)))
    assert published_basin.params["R_D"] == pytest.approx(PUBLISHED_RD, rel=2e-3)  # its own basin, reported
    assert len(fixed.basins) == 4
    # (b) on the repeated-data runs the data-constrained law, fitted freely (7 parameters), beats
    # plain Chinchilla (5 parameters) fitted to the same 182 points
    # (every 8th / 9th start of the default grids: the comparison, not the last digit, is tested here)
    free = fit_form("data-constrained", inputs, t["loss"], starts=get_form("data-constrained").starts()[::8])
    chin = fit_form("chinchilla", {"n": t["n"], "d": t["d"]}, t["loss"], starts=get_form("chinchilla").starts()[::9])
    print("datablations, free fit:", {k: round(v, 4) for k, v in free.params.items()}, "unidentified", free.unidentified)
    rep = t["d"] > t["u"]
    err_dc = np.median(np.abs(np.log(predict("data-constrained", free.params, **inputs)[rep] / t["loss"][rep])))
    err_ch = np.median(np.abs(np.log(predict("chinchilla", chin.params, n=t["n"], d=t["d"])[rep] / t["loss"][rep])))
    print(f"repeated runs ({rep.sum()}): median |log error| data-constrained {err_dc:.4f}, chinchilla {err_ch:.4f}")
    assert free.objective < chin.objective and err_dc < err_ch
    # (c) fitted freely, R*_N runs away (to ~1e18): excess parameters then keep their full value, and
    # the data cannot tell that from R*_N = infinity, where N' = N (eq. 6): the objective there,
    # evaluated independently, is the fit's to within the convergence tolerance (1e-8 x 182 x 1e-3).
    # The fit says so: R_N unidentified, not converged.
    assert free.unidentified == ("R_N",) and not free.converged
    assert free.params["R_N"] > 1e6 * (t["n"] / t["u"]).max()
    r_d = np.maximum(t["d"] / t["u"] - 1, 0)
    p = free.params
    d_eff = t["u"] * (1 + p["R_D"] * -np.expm1(-r_d / p["R_D"]))  # eq. 5
    at_infinity = p["E"] + p["A"] / t["n"] ** p["alpha"] + p["B"] / d_eff ** p["beta"]  # eq. 7 with N' = N
    j_inf = float(np.sum(_huber_terms(np.log(at_infinity / t["loss"]))))
    assert abs(j_inf - free.objective) <= 1e-8 * 182 * 1e-3


def _huber_terms(r, delta=1e-3):
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _dc_objective(inputs, loss, params, delta=1e-3):
    return float(np.sum(_huber_terms(np.log(predict("data-constrained", params, **inputs) / loss), delta)))


# ---------------------------------------------------------------- 6. holdout


def test_holdout_on_synthetic_and_chinchilla(chinchilla_fit):
    design = _design()
    loss = predict("chinchilla", TRUE, **design) * np.exp(0.005 * np.random.default_rng(5).standard_normal(36))
    compute = 6 * design["n"] * design["d"]
    coarse = get_form("chinchilla").starts()[::9]
    synth = holdout_report("chinchilla", design, loss, compute, np.quantile(compute, 0.7), starts=coarse)
    print("synthetic holdout:", synth)
    assert synth.mean_abs_rel_error < 0.01 and synth.rmse_log < 0.015  # noise sigma 0.005
    t, _ = chinchilla_fit
    real = holdout_report("chinchilla", {"n": t["n"], "d": t["d"]}, t["loss"], t["flops"], 1e21, starts=coarse)
    print("chinchilla holdout (train C <= 1e21):", real)
    assert real.n_train + real.n_test == 240 and real.n_test > 10
    assert real.mean_abs_rel_error < 0.05  # extrapolation to ~10x compute within 5% (reported)
