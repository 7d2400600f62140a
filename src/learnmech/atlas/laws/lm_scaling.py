"""laws.lm-scaling — a compute-optimal law fitted on small runs predicts the largest budget, before it is run.

Statement (CLAIMS.md; Hoffmann et al. 2022, arXiv:2203.15556, Approaches 2 and 3; Besiroglu, Erdil,
Barnett & You 2024, arXiv:2404.10102): the isoFLOP profiles of a language model's final loss against its
size have a minimum at each compute budget, and the law ``L = E + A/N^alpha + B/D^beta`` fitted on the
budgets below the largest predicts, before the largest is trained, the loss of the compute-optimal model
at the largest budget and where that optimum lies.

Experiment (:func:`learnmech.lm_scaling.run_isoflop`). A byte-level decoder-only transformer
(:mod:`learnmech.nets.transformer`, ``n_layers`` layers, ``n_heads`` heads, width ``d_model`` from
``d_models``, muP with ``base_d_model`` the smallest width) on the bundled corpus
(:func:`learnmech.data.text.stdlib_corpus`), AdamW with a warmup and ``schedule`` decay over each run's own
steps (:class:`~learnmech.lm_train.LMRecipe`), ``batch_size`` windows of ``seq_len`` bytes per step,
each seed reading the training windows in its own order without repetition. Every width trains at
every budget ``C`` of ``budgets`` for ``steps = round(C / (6 N batch_size seq_len))`` steps, ``N`` the
non-embedding parameter count (Kaplan et al. 2020, arXiv:2001.08361; the untied readout counted, as
Porian et al. 2024, arXiv:2406.19146, count the head). The loss of a run is the held-out loss (nats per
byte) on ``eval_windows`` validation windows at its last step, averaged over ``seeds``.

- the learning rate is tuned once, at the smallest width on the smallest budget, on the log2 grid
  ``lr_log2_min .. lr_log2_max`` (``eta*`` the parabola vertex through the grid minimum), and used at
  every width (muP transfers it; at the smallest width muP is SP);
- phase 1 trains the budgets below the largest; the law is fitted to them by
  :class:`~learnmech.fit.ScalingLaw` (Huber on log-loss from Hoffmann's grid of starts, ``n_boot``
  bootstrap refits); its prediction at the largest budget ``C_max`` (frontier ``N*``, ``D*``,
  ``L* = L(N*, D*)``, each planned width's loss) is registered through ``preregister`` and its time kept;
- phase 2 trains every width at ``C_max``; its start time is kept. Both times are Unix seconds.

Measured at ``C_max``: the isoFLOP vertex ``N*_meas`` (parabola in ``log N`` over the sizes within a
factor ``window`` of the best one, :func:`learnmech.fit.isoflop_optima`) and the best measured loss
``L_best``. Reported, not judged (CLAIMS.md: "no threshold: CPU budgets sit below where these laws were
measured"): the fitted exponents ``alpha``, ``beta`` with bootstrap intervals, the law's own slope
``beta/(alpha + beta)``, and the isoFLOP slope ``a`` of ``N* ~ C^a`` over all budgets with a bootstrap
interval (:func:`learnmech.fit.isoflop_exponent`), beside Chinchilla's 0.5 (Hoffmann et al. 2022) and
Kaplan's 0.73 (Kaplan et al. 2020, ``N_opt ~ C^0.73``).

Verdict (:data:`RULES`). Guards (inconclusive): the design meets the spec (at least ``MIN_BUDGETS``
budgets spaced ``MIN_SPACING``x or more, at least ``MIN_SIZES`` sizes; the ``tiny`` preset is smaller
and is inconclusive here by design: it exercises every code path at a cost of seconds); the prediction
was registered before the largest budget started; no run diverged; ``eta*`` inside its grid; the fit is
identified (:attr:`~learnmech.fit.ScalingLaw.frontier_withheld_` empty); the measured vertex lies inside
the largest budget's sizes. Checks (CLAIMS.md): ``|L_best / L* - 1| <= 0.03`` and ``N*_meas`` within a
factor 2 of ``N*`` (``|log2(N*_meas / N*)| <= 1``).

Presets. The ladder must bracket the optimum of the largest budget. A first quick design (widths 16..48,
budgets 1.1e9..3e10) had the smallest width best at every budget, the registered ``N*`` (4.3k) below every
size trained (10.4k and up): nothing to judge. At these budgets the compute-optimal byte-level transformer
is tiny, so ``quick`` trains widths 4, 6, 8, 12, 16 (2 heads; ``N`` = 1.4k .. 10.4k, most of it the
readout) on budgets 6e8 .. 1.62e10 (3x apart; the widest gets 9 steps on the smallest budget, ``min_steps``
8), one seed, 32 windows of 32 bytes per step, and sweeps the learning rate over 2^-8 .. 2^-1 (2^-9 .. 2^-3
put the minimum on the grid's top edge: the short smallest budget wants a large rate). It takes about 70 s
on 2 cores, above the 60 s the issue allows for the transformer claims: five compiled programs (one per
width, about 4.5 s each; a sweep and both phases of a width share one) and about 6,000 steps of about 5 ms
(a d_model 4 model is bound by per-operation overhead, not by its FLOPs). ``tiny`` (3 budgets, 3 widths)
runs every code path and is inconclusive by design; ``full`` is the spec's design on larger budgets.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.rules import Check, Guard, Rules, diverged
from learnmech.fit import mean_loss
from learnmech.increasing import Increasing
from learnmech.lm_scaling import LAW_PARAMS, isoflop_plan, isoflop_slope, largest_budget_optimum, run_isoflop
from learnmech.lm_train import LMRecipe
from learnmech.report.figures import COLORS, finish_figure, new_figure, theory_line
from learnmech.theory.scaling_forms import predict as law_loss
from learnmech.theory.scaling_frontier import compute_optimal, frontier_problem
from learnmech.width_transfer import log2_grid

__all__ = ["CLAIM", "Config", "MAX_N_STAR_FACTOR", "MAX_REL_ERROR", "REFERENCE_SLOPES"]

MAX_REL_ERROR = 0.03  # CLAIMS.md: best measured loss within 3% of the predicted L*
MAX_N_STAR_FACTOR = 2.0  # CLAIMS.md: measured optimal N within a factor 2 of the predicted one
MIN_BUDGETS, MIN_SPACING, MIN_SIZES = 4, 3.0, 5  # CLAIMS.md: >= 4 budgets spaced >= 3x, >= 5 sizes per budget
REFERENCE_SLOPES = {"chinchilla": 0.5, "kaplan": 0.73}  # N* ~ C^a: Hoffmann et al. 2022; Kaplan et al. 2020


class Config(ClaimConfig):
    seeds: int = Field(1, ge=1, le=8, description="initialisations (and orders of the windows) per run")
    budgets: Increasing(float, 2, "FLOP budgets") = Field((1.1e9, 3.3e9, 1e10, 3e10),
                                                          description="compute budgets C = 6 N D, FLOPs")
    d_models: Increasing(int, 3, "widths") = Field((16, 24, 32, 40, 48), description="model widths, one ladder for "
                                                   "every budget")
    n_layers: int = Field(2, ge=1, le=12, description="transformer layers")
    n_heads: int = Field(4, ge=1, le=32, description="attention heads (every width divisible by it)")
    seq_len: int = Field(32, ge=4, le=1024, description="context length in bytes")
    batch_size: int = Field(8, ge=1, le=1024, description="windows per step")
    schedule: Literal["cosine", "wsd", "constant"] = Field("cosine", description="decay after the warmup")
    lr_log2_min: float = Field(-10.0, ge=-30, le=0, description="smallest learning rate of the sweep, log2")
    lr_log2_max: float = Field(-4.0, ge=-30, le=0, description="largest learning rate of the sweep, log2 (equal "
                               "to lr_log2_min: that rate, no sweep)")
    lr_log2_step: float = Field(1.0, gt=0, le=4, description="sweep step in log2 eta")
    min_steps: int = Field(10, ge=1, le=10_000, description="fewest steps of any run (refused below)")
    eval_windows: int = Field(64, ge=1, le=4096, description="held-out windows per evaluation")
    n_boot: int = Field(200, ge=0, le=5000, description="bootstrap refits of the law and of the isoFLOP slope")
    window: float = Field(4.0, gt=1, le=1000, description="isoFLOP parabola: sizes within this factor of the best")

    @model_validator(mode="after")
    def _plan_is_feasible(self):
        if self.lr_log2_max < self.lr_log2_min:
            raise ValueError("lr_log2_max: must be >= lr_log2_min")
        if self.learning_rates.size == 2:
            raise ValueError("lr_log2_min, lr_log2_max, lr_log2_step: give one learning rate or a grid of >= 3")
        plan(self)  # refuses a budget too small for min_steps, and the rest of isoflop_plan's rules
        return self

    @property
    def learning_rates(self) -> np.ndarray:
        return log2_grid(self.lr_log2_min, self.lr_log2_max, self.lr_log2_step)


def plan(cfg: Config):
    """The claim's :class:`~learnmech.lm_scaling.IsoflopPlan` (pure: no training)."""
    recipe = LMRecipe(seq_len=cfg.seq_len, batch_size=cfg.batch_size, schedule=cfg.schedule,
                      eval_windows=cfg.eval_windows, observations=2)
    return isoflop_plan(cfg.budgets, cfg.d_models, recipe, min_steps=cfg.min_steps, n_layers=cfg.n_layers,
                        n_heads=cfg.n_heads)


def predict(cfg: Config):
    """The plan (steps and tokens of every run, ``N`` of every size) and the reference isoFLOP slopes."""
    p = plan(cfg)
    out = {key("steps", i): Curve(p.n_params, p.steps[i].astype(np.float64)) for i in range(p.budgets.size)}
    out |= {key("reference_a", name): a for name, a in REFERENCE_SLOPES.items()}
    return out


def measure(cfg: Config, progress=None, preregister=None):
    from learnmech.data.text import stdlib_corpus

    p = plan(cfg)
    runs = run_isoflop(p, stdlib_corpus(), learning_rates=cfg.learning_rates, seeds=cfg.seeds,
                       n_bootstrap=cfg.n_boot, preregister=preregister, progress=progress)
    pred = runs.prediction
    out = {key("loss", i): Curve(p.n_params, runs.losses[i].T) for i in range(p.budgets.size)}  # (seeds, S)
    out |= {key("predicted", k): v for k, v in pred.values(p.d_models).items()}
    out |= {key("law_lo", q): pred.params_ci[q][0] for q in LAW_PARAMS}
    out |= {key("law_hi", q): pred.params_ci[q][1] for q in LAW_PARAMS}
    out |= {"learning_rate": runs.learning_rate, "sweep_at_edge": float(runs.sweep_at_edge),
            "fit_identified": float(not pred.withheld and not pred.problem), "registered_at": runs.registered_at,
            "largest_started_at": runs.largest_started_at, "train_seconds": float(sum(runs.seconds)),
            "tokens_per_second": runs.tokens_per_second}
    if runs.sweep_rates.size:
        out["sweep"] = Curve(runs.sweep_rates, runs.sweep_losses.T)  # (seeds, K)
    return out


def _losses(cfg: Config, measurement) -> np.ndarray:
    """``(G, S)`` seed-mean held-out losses (``+inf`` where a seed diverged)."""
    return np.stack([mean_loss(measurement[key("loss", i)].y.T) for i in range(len(cfg.budgets))])


def design_meets_spec(cfg: Config) -> bool:
    """CLAIMS.md's design: >= 4 budgets spaced >= 3x apart and >= 5 sizes per budget."""
    spacing = np.diff(np.log(cfg.budgets)).min() >= math.log(MIN_SPACING) - 1e-12
    return len(cfg.budgets) >= MIN_BUDGETS and bool(spacing) and len(cfg.d_models) >= MIN_SIZES


def _largest_optimum(cfg: Config, p, losses: np.ndarray) -> tuple[float, float, bool, int]:
    """``(N*_meas, vertex loss, vertex inside, index of the best size)`` at ``C_max``; NaN with < 3 finite runs."""
    best = int(np.argmin(losses[-1]))
    if np.sum(np.isfinite(losses[-1])) < 3:
        return math.nan, math.nan, False, best
    optima, best = largest_budget_optimum(p.budgets[-1], p.n_params, losses[-1], window=cfg.window)
    return float(optima.n_star[0]), float(optima.loss_star[0]), bool(optima.valid[0]), best


def summarize(cfg: Config, prediction, measurement):
    """Measured optimum at ``C_max`` against the registered prediction, the exponents, the timestamps."""
    p = plan(cfg)
    losses = _losses(cfg, measurement)  # (G, S)
    n_meas, l_vertex, inside, best = _largest_optimum(cfg, p, losses)
    slope = isoflop_slope(p.budgets, p.n_params, losses, n_boot=cfg.n_boot, window=cfg.window)
    n_pred, l_pred = measurement[key("predicted", "n_star")], measurement[key("predicted", "loss_star")]
    l_best = float(losses[-1, best])
    out = {"loss_best": l_best, "loss_predicted": l_pred, "rel_error": abs(l_best / l_pred - 1.0),
           "n_star_measured": n_meas, "n_star_predicted": n_pred, "n_star_ratio": n_meas / n_pred,
           "abs_log2_n_star_ratio": abs(math.log2(n_meas / n_pred)) if n_meas > 0 and n_pred > 0 else math.nan,
           "vertex_inside": float(inside), "loss_vertex": l_vertex,
           "best_d_model": float(cfg.d_models[best]), "isoflop_a": slope.a, "isoflop_a_lo": slope.ci[0],
           "isoflop_a_hi": slope.ci[1], "isoflop_budgets_used": float(np.sum(slope.optima.valid)),
           "isoflop_vertex": Curve(slope.optima.flops, slope.optima.n_star),  # NaN where a budget has no vertex
           "diverged": float(np.sum(~np.isfinite(losses))), "design_meets_spec": float(design_meets_spec(cfg)),
           "registration_lead_s": measurement["largest_started_at"] - measurement["registered_at"],
           "learning_rate": measurement["learning_rate"], "sweep_at_edge": measurement["sweep_at_edge"],
           "fit_identified": measurement["fit_identified"]}
    for q in ("alpha", "beta"):
        out |= {q: measurement[key("predicted", q)], key(q, "lo"): measurement[key("law_lo", q)],
                key(q, "hi"): measurement[key("law_hi", q)]}
    out["law_a"] = out["beta"] / (out["alpha"] + out["beta"])  # N* ~ C^(beta / (alpha + beta)), Hoffmann eq. 4
    out |= {key("reference_a", name): prediction[key("reference_a", name)] for name in REFERENCE_SLOPES}
    return out


RULES = Rules(
    guards=(Guard("design meets the spec (>= 4 budgets, >= 3x apart, >= 5 sizes)", "design_meets_spec", ">=", 1.0,
                  fmt="g", advice="the design is smaller than CLAIMS.md's (the tiny preset): it cannot judge the claim"),
            Guard("seconds from registration to the largest budget's start", "registration_lead_s", ">", 0.0,
                  fmt=".3f", advice="the prediction was not registered before the largest budget started"),
            diverged("a run diverged; lower the learning-rate grid"),
            Guard("eta* at the edge of the sweep", "sweep_at_edge", "<=", 0.0, fmt="g",
                  advice="the learning-rate minimum is at the edge of the grid; widen lr_log2_min / lr_log2_max"),
            Guard("law identified (frontier not withheld)", "fit_identified", ">=", 1.0, fmt="g",
                  advice="the law fitted below the largest budget is not identified: its frontier is withheld"),
            Guard("measured isoFLOP vertex inside the largest budget's sizes", "vertex_inside", ">=", 1.0, fmt="g",
                  advice="the largest budget's minimum is not inside its sizes; widen d_models")),
    checks=(Check("|L_best / L_pred - 1| at the largest budget", "rel_error", "<=", MAX_REL_ERROR, fmt=".4f"),
            Check("|log2(N*_measured / N*_predicted)|", "abs_log2_n_star_ratio", "<=", math.log2(MAX_N_STAR_FACTOR),
                  fmt=".3f")),
)


# ---------------------------------------------------------------------------------------------
# Figure


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _law(measurement) -> dict[str, float]:
    return {q: measurement[key("predicted", q)] for q in LAW_PARAMS}


def _plot_profiles(ax, cfg: Config, measurement, summary) -> None:
    """Loss vs N per budget (measured, solid markers) and the law fitted below ``C_max`` along each isoFLOP curve."""
    p, losses, law = plan(cfg), _losses(cfg, measurement), _law(measurement)
    grid = np.geomspace(p.n_params[0] / 1.5, p.n_params[-1] * 1.5, 100)
    for i, c in enumerate(p.budgets):
        color = COLORS[i % len(COLORS)]
        ax.plot(p.n_params, np.where(np.isfinite(losses[i]), losses[i], np.nan), "o-", color=color, linewidth=1.0,
                label=f"C = {c:.2g}" + (" (largest, run after the prediction)" if i == p.budgets.size - 1 else ""))
        with np.errstate(all="ignore"):
            theory_line(ax, grid, law_loss("chinchilla", law, n=grid, d=c / (6.0 * grid)), color=color)
    ax.plot([], [], "k--", label="law fitted below the largest budget")
    ax.plot(summary["n_star_predicted"], summary["loss_predicted"], "*", color="k", markersize=14,
            label="preregistered (N*, L*)")
    if np.isfinite(summary["n_star_measured"]):
        ax.plot(summary["n_star_measured"], summary["loss_vertex"], "X", color=COLORS[3], markersize=10,
                label="measured isoFLOP vertex")
    ax.set(xscale="log", xlabel="non-embedding parameters N", ylabel="held-out loss (nats per byte)",
           title="isoFLOP profiles")
    ax.legend(fontsize=6.5)


def _plot_frontier(ax, cfg: Config, measurement, summary) -> None:
    """Compute-optimal ``N*(C)``: the law's frontier, the measured vertices, the reference slopes."""
    p, law, vertex = plan(cfg), _law(measurement), summary["isoflop_vertex"]
    flops, n_star = vertex.x, vertex.y[0]
    c = np.geomspace(p.budgets[0] / 2, p.budgets[-1] * 2, 50)
    if not frontier_problem(law):
        theory_line(ax, c, compute_optimal(law, c)[0], color=COLORS[0], label="frontier of the law (phase 1)")
    ax.plot(flops, n_star, "o", color=COLORS[1],
            label=f"isoFLOP vertices, a = {summary['isoflop_a']:.2f} "
                  f"[{summary['isoflop_a_lo']:.2f}, {summary['isoflop_a_hi']:.2f}]")
    anchor = n_star[np.isfinite(n_star)]
    if anchor.size:
        c0 = flops[np.isfinite(n_star)][0]
        for j, (name, a) in enumerate(REFERENCE_SLOPES.items()):
            ax.plot(c, anchor[0] * (c / c0) ** a, ":", color=COLORS[4 + j], linewidth=1.0, label=f"{name}: a = {a}")
    ax.plot(p.budgets[-1], summary["n_star_predicted"], "*", color="k", markersize=14, label="preregistered N*")
    ax.axhspan(p.n_params[0], p.n_params[-1], color="grey", alpha=0.1, label="sizes trained")
    ax.set(xscale="log", yscale="log", xlabel="compute C = 6 N D (FLOPs)", ylabel="compute-optimal N*",
           title=f"frontier (law: alpha {summary['alpha']:.2f}, beta {summary['beta']:.2f})")
    ax.legend(fontsize=6.5)


def _plot_sweep(ax, cfg: Config, measurement, summary) -> None:
    if "sweep" not in measurement:
        ax.text(0.5, 0.5, f"learning rate given: {summary['learning_rate']:.3g}", ha="center", transform=ax.transAxes)
        ax.set(xticks=[], yticks=[], title="learning rate")
        return
    sweep = measurement["sweep"]
    ax.plot(sweep.x, mean_loss(sweep.y.T), "o-", color=COLORS[0], label="seed mean")
    ax.axvline(summary["learning_rate"], color="k", linestyle="--", label=f"eta* = {summary['learning_rate']:.3g}")
    ax.set(xscale="log", xlabel="peak learning rate", ylabel="held-out loss (nats per byte)",
           title=f"tuned at d_model {cfg.d_models[0]}, C = {cfg.budgets[0]:.2g}; muP to the rest")
    ax.legend(fontsize=7)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, axes = new_figure(3, title=f"laws.lm-scaling: prediction registered {_utc(measurement['registered_at'])}, "
                                    f"largest budget started {_utc(measurement['largest_started_at'])}")
    _plot_profiles(axes[0], cfg, measurement, summary)
    _plot_frontier(axes[1], cfg, measurement, summary)
    _plot_sweep(axes[2], cfg, measurement, summary)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="laws.lm-scaling",
    pillar="simple laws",
    statement="The Chinchilla law fitted on the isoFLOP runs below the largest compute budget predicts, before it "
              "is run, the best loss at the largest budget within 3% and its optimal model size within a factor 2.",
    references=("Hoffmann et al. 2022, arXiv:2203.15556", "Besiroglu, Erdil, Barnett & You 2024, arXiv:2404.10102",
                "Kaplan et al. 2020, arXiv:2001.08361", "Porian, Wortsman, Jitsev, Schmidt & Carmon 2024, "
                "arXiv:2406.19146"),
    config=Config,
    presets={
        "tiny": {"budgets": (3.2e7, 9.6e7, 2.88e8), "d_models": (8, 16, 24), "seq_len": 16, "batch_size": 8,
                 "lr_log2_min": -8.0, "lr_log2_max": -4.0, "lr_log2_step": 2.0, "min_steps": 2,
                 "eval_windows": 4, "n_boot": 20},
        "quick": {"budgets": (6e8, 1.8e9, 5.4e9, 1.62e10), "d_models": (4, 6, 8, 12, 16), "n_heads": 2,
                  "batch_size": 32, "min_steps": 8, "lr_log2_min": -8.0, "lr_log2_max": -1.0},
        "full": {"budgets": (1.2e10, 3.6e10, 1.1e11, 3.3e11, 1e12), "d_models": (16, 24, 32, 48, 64, 80),
                 "seq_len": 64, "batch_size": 16, "lr_log2_step": 0.5, "eval_windows": 256, "n_boot": 500},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("scaling", "transformer", "preregistered"),
)
