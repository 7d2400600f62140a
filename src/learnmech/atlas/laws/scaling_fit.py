"""laws.scaling-fit — parametric scaling laws are fitted, bounded and extrapolated honestly.

Statement (CLAIMS.md; Hoffmann et al. 2022, arXiv:2203.15556; Besiroglu, Erdil, Barnett & You
2024, arXiv:2404.10102): the Chinchilla law ``L = E + A/N^alpha + B/D^beta`` fitted by a Huber loss
(``delta = 1e-3``, summed) on log-loss residuals, in log-sum-exp form, by L-BFGS from Hoffmann's
grid of 4,500 starts (:func:`learnmech.fit.fit_form`), (i) has 95% percentile
bootstrap intervals that cover the true parameters of a known law in at least 90% of repetitions,
and (ii) on the published Chinchilla table reproduces the published refit.

Part (i), synthetic. The true law is Hoffmann et al.'s own Approach-3 fit (``E = 1.69, A = 406.4,
B = 410.7, alpha = 0.34, beta = 0.28``). The design is an isoFLOP grid like theirs: ``budgets``
compute budgets log-spaced over ``flops_range``, ``per_budget`` model sizes per budget log-spaced
from ``N_opt/8`` to ``8 N_opt`` (``N_opt`` of the true law), ``D = C/(6N)``. Each repetition draws
``log L = log L_true + noise * z`` with ``z ~ N(0, 1)`` (``noise = 0.0075``, the RMS log-loss residual
of the Chinchilla table about its fit; their median absolute residual is 0.0032), fits the law by L-BFGS from eight starts
around the basin (``SYNTHETIC_STARTS``; the best one kept) and refits ``n_boot`` bootstrap resamples
from that optimum; all repetitions' fits are one vectorised batch
(:func:`~learnmech.fit.fit_batch`), and all their resamples another. A
parameter is covered when the true value lies in its interval; coverage is reported per parameter
(the marginal rate the 95% intervals promise) and jointly.

Part (ii), published. The Chinchilla table (Hoffmann et al. 2022, Figure 4, as extracted by
Besiroglu et al. 2024; shipped with the package, read by :func:`learnmech.data.load_chinchilla`, the five
highest losses dropped, 240 points, ``D = FLOP/(6N)``). Besiroglu et al.'s refit (their Table 1):
``E = 1.8172 (0.03)``, ``A = 482.01 (124.58)``, ``B = 2085.43 (1293.23)``, ``alpha = 0.3478 (0.02)``,
``beta = 0.3658 (0.02)``, standard errors in parentheses. The verdict tolerance for ``alpha``,
``beta`` and ``E`` is the standard error they report ("to the tolerances those papers report").

Why not the last printed digit. On this table the objective is extremely flat along a ridge in
``(alpha, beta, A, B)``: at the published ``alpha, beta, E`` with ``A, B`` re-optimised the objective is
``1.01843e-3``; its global minimum (found from all 4,500 starts, and by Nelder-Mead started at the
published point) is ``1.01827e-3`` at ``alpha = 0.34731, beta = 0.36717, E = 1.81722``, 1.6e-7 lower.
scipy's L-BFGS-B and BFGS with default tolerances, started at the published point, stop after 4-7
iterations within 2e-4 of it: the published fourth decimal of ``alpha`` and ``beta`` is where a
default-tolerance optimiser stops, not a property of the data. The claim reports the differences
(``|d alpha|``, ``|d beta|``, ``|d E|``) so that the reader sees them against both the printed precision
and the standard errors.

Also measured and shown, not judged: the compute-optimal frontier of the Chinchilla fit
(``N_opt = G (C/6)^a``, ``D_opt = G^-1 (C/6)^b``), a held-out extrapolation (fit on runs with
``C <= holdout_flops``, error on the larger ones), and the isoFLOP ("Approach 2") exponents of the 15
settings of Porian et al. 2024 (arXiv:2406.19146) against theirs (:mod:`learnmech.fit.isoflop`).
Two cosine-decay settings sit just outside our 95% interval (0.007-0.011 above it): Porian et al.
place each budget's minimum on an Akima interpolation, not a parabola, and the two differ at the
smallest budgets, whose 7-8 points are asymmetric about the minimum. The parametric-fit verdict of
CLAIMS.md does not cover isoFLOP exponents, so this is reported next to the verdict.

Verdict (:data:`RULES`, on the :func:`summarize` of a run). Inconclusive when the tables are not
found (``LEARNMECH_TABLES`` pointing at a folder without them): the published part cannot be judged (the synthetic part is still measured and shown).
Otherwise the claim holds when the smallest per-parameter coverage is at least 0.90 (the headline
metric) and ``|d E|``, ``|d alpha|``, ``|d beta|`` are each within Besiroglu et al.'s standard error.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.rules import Check, Guard, Rules
from learnmech.fit import bootstrap_fit, fit_batch, fit_form, holdout_report, isoflop_exponent
from learnmech.report.figures import COLORS, finish_figure, new_figure
from learnmech.theory.scaling_forms import FORMS, predict as law_loss
from learnmech.theory.scaling_frontier import compute_optimal

COVERAGE = 0.90  # CLAIMS.md: true parameters inside the 95% intervals in >= 90% of repetitions
LEVEL = 0.95
PARAMS = FORMS["chinchilla"].params  # ("E", "A", "B", "alpha", "beta")
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann 2022, Approach 3
# Besiroglu et al. 2024, Table 1: estimate and standard error.
BESIROGLU = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
BESIROGLU_SE = {"E": 0.03, "A": 124.58, "B": 1293.23, "alpha": 0.02, "beta": 0.02}
BESIROGLU_DIGITS = {"E": 4, "A": 2, "B": 2, "alpha": 4, "beta": 4}  # decimals printed
JUDGED = ("E", "alpha", "beta")
HOLDOUT = ("n_train", "n_test", "mean_abs_rel_error", "max_abs_rel_error")  # scalars of the hold-out report


class Config(ClaimConfig):
    seeds: int = Field(20, ge=2, le=1000, description="repetitions of the synthetic coverage study")
    n_boot: int = Field(200, ge=20, le=5000, description="bootstrap refits per fit")
    budgets: int = Field(6, ge=3, le=20, description="compute budgets of the synthetic isoFLOP design")
    per_budget: int = Field(9, ge=3, le=30, description="model sizes per budget")
    flops_range: tuple[float, float] = Field((1e18, 1e21), description="synthetic budgets, FLOP")
    noise: float = Field(0.0075, gt=0, le=0.5, description="std of the log-loss noise")
    data_seed: int = Field(0, ge=0)
    tables: bool = Field(True, description="judge the published tables (shipped with the package)")
    holdout_flops: float = Field(1e21, gt=0, description="Chinchilla hold-out: fit runs with C <= this")


def synthetic_design(cfg: Config) -> dict[str, np.ndarray]:
    """IsoFLOP design around the true law's frontier: ``{"n", "d", "flops"}`` each ``(budgets * per_budget,)``."""
    budgets = np.geomspace(*cfg.flops_range, cfg.budgets)  # (G,)
    n_opt, _ = compute_optimal(HOFFMANN, budgets)  # (G,)
    ratio = np.geomspace(1 / 8, 8, cfg.per_budget)  # (P,)
    n = (n_opt[:, None] * ratio[None, :]).ravel()  # (G*P,)
    flops = np.repeat(budgets, cfg.per_budget)
    return {"n": n, "d": flops / (6 * n), "flops": flops}


def _row(params) -> np.ndarray:
    return np.array([params[p] for p in PARAMS], dtype=np.float64)


def predict(cfg: Config):
    """The true synthetic law and the published refit, in ``PARAMS`` order (x = 0..4)."""
    x = np.arange(len(PARAMS), dtype=np.float64)
    return {"truth": Curve(x, _row(HOFFMANN)), key("published", "chinchilla"): Curve(x, _row(BESIROGLU)),
            key("published", "chinchilla_se"): Curve(x, _row(BESIROGLU_SE))}


# Starts of the synthetic point fits: 8 corners around the truth's basin (a, b in {5, 10}, e = 0.5,
# alpha = beta in {0.3, 0.6}); the synthetic design is well conditioned, so every repetition's best
# start reaches its global minimum (checked against the full grid in tests/test_fit_scaling.py).
SYNTHETIC_STARTS = np.array([[a, b, 0.5, s, s] for a in (5.0, 10.0) for b in (5.0, 10.0) for s in (0.3, 0.6)])


def _coverage_study(cfg: Config) -> dict[str, Curve]:
    """All repetitions' point fits in one batch, then all their bootstrap refits in another."""
    design = synthetic_design(cfg)
    inputs = {"n": design["n"], "d": design["d"]}
    clean = law_loss("chinchilla", HOFFMANN, **inputs)  # (P,)
    rng = np.random.default_rng(cfg.data_seed)
    noisy = clean * np.exp(cfg.noise * rng.standard_normal((cfg.seeds, clean.size)))  # (R, P)
    k = len(SYNTHETIC_STARTS)
    lanes = fit_batch("chinchilla", inputs, np.repeat(noisy, k, 0), np.tile(SYNTHETIC_STARTS, (cfg.seeds, 1)),
                      n_iter=300)
    best = np.argmin(lanes["objective"].reshape(cfg.seeds, k), axis=1)  # (R,)
    coords = lanes["coords"].reshape(cfg.seeds, k, -1)[np.arange(cfg.seeds), best]  # (R, 5)
    fits = np.stack([lanes[p].reshape(cfg.seeds, k)[np.arange(cfg.seeds), best] for p in PARAMS], axis=1)
    counts = rng.multinomial(clean.size, np.full(clean.size, 1.0 / clean.size), size=(cfg.seeds, cfg.n_boot))
    boot = fit_batch("chinchilla", inputs, np.repeat(noisy, cfg.n_boot, 0), np.repeat(coords, cfg.n_boot, 0),
                     weights=counts.reshape(cfg.seeds * cfg.n_boot, -1), n_iter=150)
    q = 100 * np.array([(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    lo, hi = (np.stack([np.percentile(boot[p].reshape(cfg.seeds, cfg.n_boot), qq, axis=1) for p in PARAMS], axis=1)
              for qq in q)  # (R, 5) each
    x = np.arange(len(PARAMS), dtype=np.float64)
    return {key("synthetic", "fit"): Curve(x, fits), key("synthetic", "lo"): Curve(x, lo),
            key("synthetic", "hi"): Curve(x, hi)}


def _chinchilla(cfg: Config) -> dict[str, Curve | float]:
    from learnmech.data.tables import load_chinchilla

    table = load_chinchilla()
    inputs = {"n": table["n"], "d": table["d"]}
    fit = fit_form("chinchilla", inputs, table["loss"])
    boot = bootstrap_fit("chinchilla", inputs, table["loss"], n_boot=cfg.n_boot, seed=cfg.data_seed, fit=fit)
    x = np.arange(len(PARAMS), dtype=np.float64)
    budgets = np.geomspace(table["flops"].min(), 1e25, 40)
    n_opt, d_opt = compute_optimal(fit.params, budgets)
    # the hold-out refit starts from the full-data optimum and every 9th start of the grid
    starts = np.vstack([fit.coords, FORMS["chinchilla"].starts()[::9]])
    held = holdout_report("chinchilla", inputs, table["loss"], table["flops"], cfg.holdout_flops, starts=starts)
    order = np.argsort(table["flops"], kind="stable")
    return {
        key("chinchilla", "fit"): Curve(x, _row(fit.params)),
        key("chinchilla", "ci"): Curve(x, np.stack([[boot.ci[p][0] for p in PARAMS], [boot.ci[p][1] for p in PARAMS]])),
        key("chinchilla", "objective"): float(fit.objective),
        key("chinchilla", "frontier"): Curve(budgets, np.stack([n_opt, d_opt])),
        key("chinchilla", "points"): Curve(np.arange(order.size, dtype=np.float64),
                                           np.stack([table["n"][order], table["d"][order], table["loss"][order],
                                                     law_loss("chinchilla", fit.params, n=table["n"][order],
                                                              d=table["d"][order])])),
    } | {key("chinchilla", "holdout", h): float(getattr(held, h)) for h in HOLDOUT}


def _porian(cfg: Config) -> dict[str, Curve]:
    from learnmech.data.tables import porian_published_exponent, porian_settings

    rows = []
    for s in porian_settings():
        fit = isoflop_exponent(s["flops"], s["n"], s["loss"], n_boot=1000, seed=cfg.data_seed, level=LEVEL)
        rows.append((fit.a, fit.ci[0], fit.ci[1], porian_published_exponent(s)))
    x = np.arange(len(rows), dtype=np.float64)
    return {key("isoflop", "porian"): Curve(x, np.array(rows).T)}  # rows: ours, lo, hi, published


def measure(cfg: Config, progress=None):
    total = 3 if cfg.tables else 1
    done = [0]

    def tick():
        done[0] += 1
        if progress:
            progress("laws.scaling-fit", done[0], total)

    out = _coverage_study(cfg)
    tick()
    if cfg.tables:
        try:
            out |= _chinchilla(cfg)
            tick()
            out |= _porian(cfg)
            tick()
        except FileNotFoundError:
            pass  # LEARNMECH_TABLES names a folder without the tables: judged inconclusive
    return out


def coverage(truth: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-parameter fraction of repetitions whose interval holds the truth, and the joint fraction."""
    inside = (lo <= truth[None, :]) & (truth[None, :] <= hi)  # (R, params)
    return inside.mean(axis=0), float(inside.all(axis=1).mean())


def summarize(cfg: Config, prediction, measurement):
    """Coverage of the synthetic intervals (per parameter, its minimum, joint); whether the published
    tables were judged; the Chinchilla refit against Besiroglu et al. (each parameter, its difference,
    within their printed digits); the Porian et al. exponents inside our intervals (reported, not judged)."""
    per, joint = coverage(prediction["truth"].y[0], measurement[key("synthetic", "lo")].y,
                          measurement[key("synthetic", "hi")].y)
    out = {key("coverage", p): float(c) for p, c in zip(PARAMS, per)}
    out |= {"min_coverage": float(per.min()), "coverage_joint": joint,
            "repetitions": float(measurement[key("synthetic", "lo")].y.shape[0]),
            "tables_judged": float(key("chinchilla", "fit") in measurement)}
    if key("chinchilla", "fit") in measurement:
        ours = dict(zip(PARAMS, measurement[key("chinchilla", "fit")].y[0]))
        diff = {p: float(ours[p] - BESIROGLU[p]) for p in PARAMS}
        out |= {key("chinchilla", p): float(ours[p]) for p in PARAMS}
        out |= {key("chinchilla_diff", p): diff[p] for p in PARAMS}
        out |= {key("chinchilla_abs_diff", p): abs(diff[p]) for p in JUDGED}
        out["chinchilla_within_printed_digits"] = float(all(
            abs(diff[p]) <= 0.5 * 10.0 ** -BESIROGLU_DIGITS[p] for p in JUDGED))
    if key("isoflop", "porian") in measurement:
        ours_a, lo, hi, pub = measurement[key("isoflop", "porian")].y
        inside = (lo <= pub) & (pub <= hi)  # (settings,)
        out |= {"porian_settings_inside_ci": float(np.sum(inside)), "porian_settings": float(pub.size),
                "porian_max_abs_diff": float(np.max(np.abs(ours_a - pub))),
                key("porian", "inside_ci"): Curve(np.arange(pub.size, dtype=np.float64), inside.astype(np.float64))}
    return out


RULES = Rules(
    guards=(Guard("published tables judged", "tables_judged", ">=", 1.0, fmt="g",
                  advice="the published tables were not found (LEARNMECH_TABLES): they could not be judged"),),
    checks=(Check("min coverage of 95% intervals", "min_coverage", ">=", COVERAGE, fmt=".2f"),
            *(Check(f"|d{p}| from Besiroglu et al. (vs their SE)", key("chinchilla_abs_diff", p), "<=",
                    BESIROGLU_SE[p], fmt=".4f") for p in JUDGED)),
)


def _plot_coverage(ax, summary) -> None:
    per = [summary[key("coverage", p)] for p in PARAMS]
    ax.bar(np.arange(len(PARAMS)), per, color=COLORS[0], alpha=0.8, label="per parameter")
    ax.axhline(LEVEL, color="k", linestyle="--", linewidth=1.0, label="nominal 0.95")
    ax.axhline(COVERAGE, color=COLORS[3], linestyle=":", linewidth=1.2, label=f"threshold {COVERAGE}")
    ax.set_xticks(np.arange(len(PARAMS)), PARAMS)
    ax.set(ylim=(0, 1.05), ylabel="coverage of 95% bootstrap intervals",
           title=f"synthetic law: {int(summary['repetitions'])} repetitions\n"
                 f"(joint coverage {summary['coverage_joint']:.2f})")
    ax.legend(fontsize=7, loc="lower right")


def _plot_params(ax, prediction, measurement) -> None:
    pub, se = prediction[key("published", "chinchilla")].y[0], prediction[key("published", "chinchilla_se")].y[0]
    ours, (lo, hi) = measurement[key("chinchilla", "fit")].y[0], measurement[key("chinchilla", "ci")].y
    x = np.arange(len(PARAMS))
    ax.errorbar(x - 0.1, pub / pub, yerr=se / pub, fmt="s", color=COLORS[1], label="Besiroglu et al. 2024 (+-SE)")
    ax.errorbar(x + 0.1, ours / pub, yerr=[(ours - lo) / pub, (hi - ours) / pub], fmt="o", color=COLORS[0],
                label="learnmech (95% bootstrap)")
    ax.set_xticks(x, PARAMS)
    ax.set(ylabel="estimate / published", ylim=(0, 2.5), title="Chinchilla table:\nrefit vs published")
    ax.legend(fontsize=7)


def _plot_frontier(ax, cfg: Config, measurement) -> None:
    curve = measurement[key("chinchilla", "frontier")]
    ax.plot(curve.x, curve.y[0], color=COLORS[0], label="N_opt")
    ax.plot(curve.x, curve.y[1], color=COLORS[1], label="D_opt")
    pts = measurement[key("chinchilla", "points")].y
    ax.scatter(6 * pts[0] * pts[1], pts[0], s=4, color="grey", alpha=0.5, label="runs (C, N)")
    n_test, mean_err, max_err = (measurement[key("chinchilla", "holdout", h)] for h in HOLDOUT[1:])
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOP)", ylabel="N_opt, D_opt",
           title=f"frontier; hold-out error {mean_err:.2%} mean,\n{max_err:.2%} max ({int(n_test)} runs above C = {cfg.holdout_flops:.3g})")
    ax.legend(fontsize=7)


def _plot_isoflop(ax, measurement, summary) -> None:
    ours, lo, hi, pub = measurement[key("isoflop", "porian")].y
    x = np.arange(ours.size)
    inside = summary[key("porian", "inside_ci")].y[0] > 0
    ax.errorbar(x, ours, yerr=[ours - lo, hi - ours], fmt="o", color=COLORS[0], label="Approach 2 (95% CI)")
    ax.scatter(x[inside], pub[inside], marker="x", color=COLORS[1], zorder=3, label="Porian et al. 2024")
    ax.scatter(x[~inside], pub[~inside], marker="x", color=COLORS[3], zorder=3, label="published, outside CI")
    ax.set(xlabel="Porian et al. setting", ylabel="a in N* ~ C^a",
           title=f"isoFLOP exponents (not judged):\n{int(summary['porian_settings_inside_ci'])}/{ours.size} "
                 "published inside our CI")
    ax.legend(fontsize=7)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    tables = bool(summary["tables_judged"] > 0)
    porian = tables and key("isoflop", "porian") in measurement
    fig, axes = new_figure(1 + 2 * tables + porian, title="laws.scaling-fit: Chinchilla law, Huber on log-loss")
    _plot_coverage(axes[0], summary)
    if tables:
        _plot_params(axes[1], prediction, measurement)
        _plot_frontier(axes[2], cfg, measurement)
        if porian:
            _plot_isoflop(axes[3], measurement, summary)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="laws.scaling-fit",
    pillar="simple laws",
    statement="The Chinchilla law fitted by Huber on log-loss from a grid of starts has 95% bootstrap intervals that "
              "cover a known law's parameters in >= 90% of repetitions, and reproduces the published refit of the "
              "Chinchilla table.",
    references=("Hoffmann et al. 2022, arXiv:2203.15556",
                "Besiroglu, Erdil, Barnett & You 2024, arXiv:2404.10102",
                "Porian, Wortsman, Jitsev, Schmidt & Carmon 2024, arXiv:2406.19146"),
    config=Config,
    presets={
        "tiny": {"seeds": 2, "n_boot": 20, "budgets": 3, "per_budget": 3},
        "quick": {"seeds": 20, "n_boot": 200},
        "full": {"seeds": 100, "n_boot": 500, "budgets": 8, "per_budget": 12},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("scaling",),
)
