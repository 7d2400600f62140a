"""IsoFLOP experiments on a language model: fit a scaling law on small budgets, predict the largest, then run it.

Contract. :func:`isoflop_plan` turns compute budgets and a ladder of transformer sizes into an
:class:`IsoflopPlan` (the step count of every (budget, size) run, checked before anything runs);
:func:`run_isoflop` trains the plan on a :class:`~learnmech.data.text.Corpus` in two phases with a
preregistration between them and returns an :class:`IsoflopRuns`. Nothing here knows about claims
or files: the atlas claim ``laws.lm-scaling`` and the command ``learnmech lm scaling`` both call it.

Counting (Kaplan et al. 2020, arXiv:2001.08361, ``C ~ 6 N D``; Hoffmann et al. 2022, arXiv:2203.15556).
``N`` is the non-embedding parameter count (:func:`~learnmech.nets.transformer.non_embedding_params`:
the token and position tables left out, the untied readout counted), ``D`` the tokens read
(``steps x batch_size x seq_len``). A run of size ``N`` at budget ``C`` takes
``steps = round(C / (6 N batch_size seq_len))`` steps. The budget ``C`` is nominal: after rounding, a
run's own ``6 N D`` differs from it by less than half a step's worth (:attr:`IsoflopPlan.compute`).
The isoFLOP profiles group runs by the nominal ``C``; the law is fitted on each run's own ``N`` and ``D``.

Sizes. One ladder of sizes for every budget (not a window that slides with the budget): each size is
one model shape, so all its budgets train as members of one compiled program (the driver's
``member_steps``), and the number of compilations is the number of sizes, not sizes x budgets. The
ladder must then be wide enough that every budget's minimum lies inside it: a 4-budget design spaced
3x moves the optimum ``N* ~ C^a`` by about ``27^0.5 ~ 5x`` (``a ~ 0.5``), so a ladder spanning 10x or
more in ``N`` centred on the middle budgets' optimum holds it. Sizes given as widths (:func:`width_ladder`)
are transformers of one depth and head count under muP with ``base_d_model`` = the smallest width.

The experiment (:func:`run_isoflop`):

1. the learning rate is tuned once: a log2 grid at the smallest size on the smallest budget, ``eta*``
   the vertex of the parabola in ``(log2 eta, log L)`` through the grid minimum
   (:func:`learnmech.fit.optimal_learning_rate`), and used at every size (muP transfers it in width;
   at the smallest size muP and SP are the same network). One learning rate given: no sweep;
2. phase 1: every size trains on every budget below the largest (one :func:`~learnmech.lm_train.train_lm`
   call per size);
3. the Chinchilla law ``L = E + A/N^alpha + B/D^beta`` is fitted to the phase-1 held-out losses (seed
   means) by :class:`~learnmech.fit.ScalingLaw` with bootstrap intervals, and predicts the largest
   budget ``C_max``: the compute-optimal ``N*``, ``D*`` and loss ``L* = L(N*, D*)`` on its frontier
   (:func:`~learnmech.theory.scaling_frontier.compute_optimal`), and the loss of each planned size;
4. ``preregister("largest_budget", values)`` writes that prediction and returns its time; only then
   does phase 2 start (its ``time.time()`` is kept): every size on ``C_max``.

The measurement at ``C_max`` (:func:`largest_budget_optimum`): the isoFLOP parabola vertex in ``log N``
(:func:`learnmech.fit.isoflop_optima`) and the best measured loss among the sizes; over all budgets,
the isoFLOP slope ``a`` of ``N* ~ C^a`` with a bootstrap interval (:func:`learnmech.fit.isoflop_exponent`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from learnmech.data.text import Corpus
from learnmech.fit import IsoflopExponent, IsoflopOptima, ScalingLaw, isoflop_exponent, isoflop_optima, mean_loss
from learnmech.fit import optimal_learning_rate
from learnmech.increasing import increasing
from learnmech.lm_train import MAX_STEPS, LMRecipe, train_lm
from learnmech.nets import transformer as tf
from learnmech.theory.scaling_frontier import compute_optimal, frontier_problem

__all__ = ["IsoflopPlan", "IsoflopRuns", "LAW_PARAMS", "LawPrediction", "PREREGISTRATION", "fit_law", "isoflop_plan",
           "isoflop_slope",
           "largest_budget_optimum", "predict_largest", "run_isoflop", "width_ladder"]

PREREGISTRATION = "largest_budget"  # the name the prediction is registered under
MIN_SIZES = 3  # a parabola in log N needs three sizes per budget
LAW_PARAMS = ("E", "A", "B", "alpha", "beta")  # the Chinchilla form's natural parameters

Progress = Callable[[str, int, int], None]  # (label, done, total)
Preregister = Callable[[str, Mapping[str, float]], float]  # (name, values) -> unix seconds


def width_ladder(d_models: Sequence[int], *, seq_len: int, n_layers: int = 2, n_heads: int = 4,
                 vocab: int = 256) -> tuple[tf.TransformerConfig, ...]:
    """Transformers of widths ``d_models`` (increasing), one depth and head count, muP with ``base_d_model =
    d_models[0]`` (Yang et al. 2022, arXiv:2203.03466): a learning rate tuned at the smallest transfers to all."""
    widths = increasing(d_models, at_least=MIN_SIZES, name="sizes", what="widths d_model")
    return tuple(tf.TransformerConfig(vocab=vocab, seq_len=seq_len, d_model=int(d), n_layers=n_layers,
                                      n_heads=n_heads, parameterization="mup", base_d_model=int(widths[0]))
                 for d in widths)


@dataclass(frozen=True, eq=False)
class IsoflopPlan:
    """Budgets ``(G,)`` (nominal FLOPs, increasing) x sizes ``(S,)`` (``N`` increasing): ``steps`` ``(G, S)``."""

    budgets: np.ndarray
    configs: tuple[tf.TransformerConfig, ...]
    recipe: LMRecipe
    steps: np.ndarray
    min_steps: int

    @property
    def n_params(self) -> np.ndarray:
        """``(S,)`` non-embedding parameters ``N`` of each size."""
        return np.array([tf.non_embedding_params(c) for c in self.configs], np.float64)

    @property
    def d_models(self) -> tuple[int, ...]:
        return tuple(c.d_model for c in self.configs)

    @property
    def tokens(self) -> np.ndarray:
        """``(G, S)`` tokens ``D`` of each run: ``steps x batch_size x seq_len``."""
        return self.recipe.tokens(self.steps).astype(np.float64)

    @property
    def compute(self) -> np.ndarray:
        """``(G, S)`` each run's own ``6 N D`` (the nominal budget up to rounding of the steps)."""
        return 6.0 * self.n_params[None, :] * self.tokens


def isoflop_plan(budgets: Sequence[float], sizes: Sequence[int | tf.TransformerConfig], recipe: LMRecipe = LMRecipe(),
                 *, min_steps: int = 1, n_layers: int = 2, n_heads: int = 4) -> IsoflopPlan:
    """The steps of every (budget, size) run: ``steps = round(C / (6 N batch_size seq_len))``, ``N`` non-embedding.

    ``sizes`` are :class:`~learnmech.nets.transformer.TransformerConfig` (used as given) or widths
    ``d_model`` (:func:`width_ladder` with ``n_layers``, ``n_heads``). Refused with a one-line
    ``ValueError`` before anything runs: budgets not increasing; fewer than 3 sizes or ``N`` not
    increasing; a sequence length other than the recipe's; a budget too small for ``min_steps`` steps of
    the largest size (the message names the smallest budget that would do); more than ``MAX_STEPS``
    steps; two budgets that give one size the same step count; fewer than 6 runs below the largest
    budget (the law has 5 parameters).

    >>> plan = isoflop_plan([1e9, 3e9, 9e9], [16, 24, 32], LMRecipe(seq_len=32, batch_size=16))
    >>> plan.steps.tolist()  # 1e9 / (6 * 10400 * 512) = 31.3 for d_model 16
    [[31, 16, 10], [94, 48, 30], [282, 145, 89]]
    """
    budget = np.asarray(increasing(budgets, at_least=2, name="budgets", what="FLOP budgets"), np.float64)
    if not np.all(np.isfinite(budget)):
        raise ValueError(f"budgets: must be finite, got {budget.tolist()}")
    if isinstance(min_steps, bool) or not isinstance(min_steps, int) or min_steps < 1:
        raise ValueError(f"min_steps: must be a positive integer, got {min_steps!r}")
    configs = _configs(sizes, recipe, n_layers, n_heads)
    n = np.array([tf.non_embedding_params(c) for c in configs], np.float64)  # (S,)
    per_step = 6.0 * n * recipe.batch_size * recipe.seq_len  # (S,) FLOPs of one step of each size
    steps = np.rint(budget[:, None] / per_step[None, :]).astype(np.int64)  # (G, S)
    if steps[0, -1] < min_steps:
        raise ValueError(f"budgets: {budget[0]:.4g} FLOPs gives the largest size (d_model {configs[-1].d_model}, "
                         f"N = {int(n[-1]):,}) {steps[0, -1]} steps, fewer than {min_steps}; the smallest budget "
                         f"that would work is {min_steps * per_step[-1]:.4g}")
    if steps[-1, 0] > MAX_STEPS:
        raise ValueError(f"budgets: {budget[-1]:.4g} FLOPs gives the smallest size {steps[-1, 0]:,} steps, more than "
                         f"{MAX_STEPS:,}")
    same = np.argwhere(np.diff(steps, axis=0) <= 0)
    if same.size:
        g, s = same[0]
        raise ValueError(f"budgets: {budget[g]:.4g} and {budget[g + 1]:.4g} give d_model {configs[s].d_model} the "
                         f"same {steps[g, s]} steps; space the budgets further apart")
    if (budget.size - 1) * len(configs) < len(LAW_PARAMS) + 1:
        raise ValueError(f"budgets: the budgets below the largest hold {(budget.size - 1) * len(configs)} runs, fewer "
                         f"than the {len(LAW_PARAMS) + 1} a 5-parameter law needs; add budgets or sizes")
    return IsoflopPlan(budget, configs, recipe, steps, min_steps)


def _configs(sizes, recipe: LMRecipe, n_layers: int, n_heads: int) -> tuple[tf.TransformerConfig, ...]:
    sizes = list(sizes)
    if sizes and all(isinstance(s, tf.TransformerConfig) for s in sizes):
        configs = tuple(sizes)
    elif all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sizes):
        configs = width_ladder(sizes, seq_len=recipe.seq_len, n_layers=n_layers, n_heads=n_heads)
    else:
        raise ValueError("sizes: give widths d_model (integers) or TransformerConfig objects, not a mix")
    if len(configs) < MIN_SIZES:
        raise ValueError(f"sizes: need at least {MIN_SIZES} sizes per budget (a parabola in log N), got {len(configs)}")
    n = [tf.non_embedding_params(c) for c in configs]
    if any(not a < b for a, b in zip(n, n[1:])):
        raise ValueError(f"sizes: non-embedding parameter counts must increase, got {n}")
    bad = [c.seq_len for c in configs if c.seq_len != recipe.seq_len]
    if bad:
        raise ValueError(f"sizes: every model's seq_len must be the recipe's {recipe.seq_len}, got {bad[0]}")
    return configs


@dataclass(frozen=True)
class LawPrediction:
    """What the law fitted below ``flops`` says about ``flops``: frontier ``n_star``, ``d_star``, ``loss_star``
    with bootstrap percentile intervals (``*_ci``, NaN without refits), and ``size_loss`` ``(S,)``, the loss of each
    planned size at its own tokens. NaN where the law has no frontier (``problem`` says why)."""

    flops: float
    n_star: float
    d_star: float
    loss_star: float
    n_star_ci: tuple[float, float]
    loss_star_ci: tuple[float, float]
    size_loss: np.ndarray
    params: dict[str, float]
    params_ci: dict[str, tuple[float, float]]
    withheld: str
    problem: str

    def values(self, d_models: Sequence[int]) -> dict[str, float]:
        """The registered values: str keys, finite floats or NaN (an infinite prediction is recorded as NaN)."""
        out = {"flops": self.flops, "n_star": self.n_star, "d_star": self.d_star, "loss_star": self.loss_star,
               "n_star_lo": self.n_star_ci[0], "n_star_hi": self.n_star_ci[1],
               "loss_star_lo": self.loss_star_ci[0], "loss_star_hi": self.loss_star_ci[1]}
        out |= {f"loss_d{d}": float(v) for d, v in zip(d_models, self.size_loss)}
        out |= {p: self.params[p] for p in LAW_PARAMS}
        return {k: (float(v) if math.isfinite(v) else float("nan")) for k, v in out.items()}


def _frontier_point(params: Mapping[str, float], flops: float) -> tuple[float, float, float]:
    """``(N*, D*, L*)`` of a Chinchilla law at ``flops``; NaN when it has no frontier."""
    if frontier_problem(params):
        return (math.nan,) * 3
    with np.errstate(all="ignore"):
        n, d = (float(v) for v in compute_optimal(params, flops))
        loss = params["E"] + params["A"] / n ** params["alpha"] + params["B"] / d ** params["beta"]
    return n, d, float(loss)


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if finite.size < 2:
        return (math.nan, math.nan)
    lo, hi = np.percentile(finite, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def predict_largest(law: ScalingLaw, flops: float, n_params: np.ndarray, tokens: np.ndarray) -> LawPrediction:
    """The fitted law's prediction at budget ``flops`` for sizes ``n_params`` ``(S,)`` reading ``tokens`` ``(S,)``.

    ``N* = G (C/6)^a``, ``D* = G^-1 (C/6)^b`` (Hoffmann et al. 2022, arXiv:2203.15556, eq. 4) and
    ``L* = E + A/N*^alpha + B/D*^beta``; intervals from the law's bootstrap refits (each refit's own frontier).
    """
    params = {p: float(law.params_[p]) for p in LAW_PARAMS}
    n_star, d_star, loss_star = _frontier_point(params, flops)
    n_ci = loss_ci = (math.nan, math.nan)
    boot = law.bootstrap_
    if boot is not None:
        refits = np.array([_frontier_point({p: float(boot.samples[p][i]) for p in LAW_PARAMS}, flops)
                           for i in range(len(boot.samples["E"]))])  # (n_boot, 3)
        n_ci, loss_ci = _interval(refits[:, 0], law.level), _interval(refits[:, 2], law.level)
    with np.errstate(all="ignore"):
        size_loss = np.asarray(law.predict({"n": n_params, "d": tokens}), np.float64)
    return LawPrediction(float(flops), n_star, d_star, loss_star, n_ci, loss_ci, size_loss, params,
                         {p: tuple(law.ci_.get(p, (math.nan, math.nan))) for p in LAW_PARAMS},
                         law.frontier_withheld_, frontier_problem(params))


def largest_budget_optimum(flops: float, n_params, losses, *, window: float | None = 4.0) -> tuple[IsoflopOptima, int]:
    """The isoFLOP vertex of one budget (``n_params``, ``losses`` ``(S,)``; non-finite losses left out) and the
    index of the best measured size. Hoffmann et al. 2022, arXiv:2203.15556, Approach 2."""
    n, loss = np.asarray(n_params, np.float64), np.asarray(losses, np.float64)
    ok = np.isfinite(loss)
    best = int(np.argmin(np.where(ok, loss, np.inf)))
    optima = isoflop_optima(np.full(int(ok.sum()), float(flops)), n[ok], loss[ok], window=window)
    return optima, best


def isoflop_slope(budgets, n_params, losses, *, n_boot: int = 1000, seed: int = 0,
                  window: float | None = 4.0) -> IsoflopExponent:
    """``a`` of ``N* ~ C^a`` over every budget (``losses`` ``(G, S)`` seed means; non-finite runs left out),
    with a percentile bootstrap interval (:func:`learnmech.fit.isoflop_exponent`)."""
    losses = np.asarray(losses, np.float64)  # (G, S)
    flops = np.broadcast_to(np.asarray(budgets, np.float64)[:, None], losses.shape)
    n = np.broadcast_to(np.asarray(n_params, np.float64)[None, :], losses.shape)
    ok = np.isfinite(losses)
    return isoflop_exponent(flops[ok], n[ok], losses[ok], n_boot=n_boot, seed=seed, window=window)


@dataclass(frozen=True, eq=False)
class IsoflopRuns:
    """The result of :func:`run_isoflop`.

    ``losses`` ``(G, S, seeds)`` held-out loss (nats per byte) of every run, NaN where it diverged (rows
    ``0..G-2`` phase 1, row ``G-1`` phase 2); ``learning_rate`` the peak learning rate every size used;
    ``sweep_rates`` ``(K,)`` / ``sweep_losses`` ``(K, seeds)`` the tuning sweep (empty when one rate was
    given) and ``sweep_at_edge`` whether its minimum sat at the grid's edge; ``law`` the phase-1 fit;
    ``prediction`` what was registered (``law`` None when the fit overflowed); ``registered_at`` / ``largest_started_at`` Unix seconds;
    ``seconds`` the training time of each phase ``(sweep, phase 1, phase 2)``.
    """

    plan: IsoflopPlan
    losses: np.ndarray
    learning_rate: float
    sweep_rates: np.ndarray
    sweep_losses: np.ndarray
    sweep_at_edge: bool
    law: ScalingLaw | None
    prediction: LawPrediction
    registered_at: float
    largest_started_at: float
    seconds: tuple[float, float, float]
    notes: tuple[str, ...] = ()

    @property
    def mean_loss(self) -> np.ndarray:
        """``(G, S)`` seed means, ``+inf`` where a seed diverged (:func:`learnmech.fit.mean_loss`)."""
        return mean_loss(self.losses)

    @property
    def tokens_per_second(self) -> float:
        """Training tokens of every run (sweep included) per second of training time (compilation included)."""
        seeds = self.losses.shape[-1]
        first = self.plan.tokens[0, 0] * self.sweep_rates.size * seeds
        return float((self.plan.tokens.sum() * seeds + first) / max(sum(self.seconds), 1e-9))


def _tune(plan: IsoflopPlan, corpus: Corpus, rates: np.ndarray, seeds, progress) -> tuple[float, np.ndarray, bool, float]:
    """``(eta*, (K, seeds) losses, at_edge, seconds)`` of the sweep at the smallest size on the smallest budget."""
    if rates.size == 1:
        return float(rates[0]), np.empty((0, 0)), False, 0.0
    report = _labelled(progress, f"learning-rate sweep (d_model {plan.d_models[0]})")
    run = train_lm(plan.configs[0], corpus, learning_rates=rates, steps=int(plan.steps[0, 0]), seeds=seeds,
                   recipe=plan.recipe, points=_points(plan, rates), progress=report)
    losses = run.val_loss[0]  # (K, seeds)
    eta, edge = optimal_learning_rate(rates, mean_loss(losses))
    return eta, losses, edge, run.seconds


def _labelled(progress: Progress | None, label: str):
    return None if progress is None else (lambda done, total: progress(label, done, total))


def _points(plan: IsoflopPlan, rates: np.ndarray) -> int:
    """Members per seed of every call: the sweep's learning rates or the budgets below the largest, whichever is more.

    The sweep, phase 1 and phase 2 of one size then share one compiled program (``train_lm``'s ``points``: the
    extra members take no step), so a size is compiled once, not three times.
    """
    return max(rates.size, len(plan.budgets) - 1, 1)


def _train_sizes(plan: IsoflopPlan, corpus: Corpus, rows: slice, eta: float, seeds, progress, label: str,
                 points: int):
    """``(rows, S, seeds)`` held-out losses of every size on the budgets ``rows``; the runs' notes; seconds."""
    out, notes, seconds = [], [], 0.0
    for s, cfg in enumerate(plan.configs):
        run = train_lm(cfg, corpus, learning_rates=[eta], steps=plan.steps[rows, s].tolist(), seeds=seeds,
                       recipe=plan.recipe, points=points,
                       progress=_labelled(progress, f"{label} (d_model {cfg.d_model})"))
        out.append(run.val_loss[:, 0])  # (rows, seeds)
        notes.extend(f"d_model {cfg.d_model}: {n}" for n in run.notes)
        seconds += run.seconds
    return np.stack(out, axis=1), tuple(notes), seconds


def fit_law(plan: IsoflopPlan, losses: np.ndarray, *, n_bootstrap: int, seed: int = 0, progress=None) -> ScalingLaw:
    """The Chinchilla law (:class:`~learnmech.fit.ScalingLaw`) on the phase-1 runs: seed-mean ``losses``
    ``(G-1, S)`` at each run's own ``N`` and ``D``; diverged runs (non-finite) left out."""
    g = losses.shape[0]
    n = np.broadcast_to(plan.n_params[None, :], losses.shape)
    d = plan.tokens[:g]
    ok = np.isfinite(losses)
    if ok.sum() < len(LAW_PARAMS) + 1:
        raise ValueError(f"learning_rates: only {int(ok.sum())} runs below the largest budget trained without "
                         "diverging, too few to fit the law; lower the learning rate")
    table = {"n": n[ok], "d": d[ok], "loss": losses[ok]}
    try:
        return ScalingLaw(n_bootstrap=n_bootstrap, seed=seed).fit(table, progress=progress)
    except OverflowError:  # a runaway refit overflows exp() inside the fitter (fit/scaling_fit.py): no intervals
        return ScalingLaw(n_bootstrap=0, seed=seed).fit(table, progress=progress)


def _overflowed(flops: float, sizes: int) -> LawPrediction:
    """The prediction of a fit that overflowed (fit/diagnostics.py): every number NaN, the reason kept."""
    nan2 = (math.nan, math.nan)
    return LawPrediction(flops, math.nan, math.nan, math.nan, nan2, nan2, np.full(sizes, math.nan),
                         {p: math.nan for p in LAW_PARAMS}, {p: nan2 for p in LAW_PARAMS},
                         "the fit overflowed (a runaway parameter)", "no law")


def run_isoflop(plan: IsoflopPlan, corpus: Corpus, *, learning_rates: float | Sequence[float], seeds=1,
                n_bootstrap: int = 200, bootstrap_seed: int = 0, preregister: Preregister | None = None,
                progress: Progress | None = None) -> IsoflopRuns:
    """Tune, train the budgets below the largest, fit and register the prediction, then train the largest.

    Args:
      plan: :func:`isoflop_plan`.
      corpus: the text (:func:`learnmech.data.text.load_corpus`).
      learning_rates: one peak learning rate, or an increasing grid (>= 3) swept at the smallest size on
        the smallest budget (``eta*`` its parabola vertex).
      seeds: a count or the seeds of every run; n_bootstrap, bootstrap_seed: the law's bootstrap refits.
      preregister: ``preregister(name, values) -> unix seconds`` (:data:`learnmech.atlas.contract.Preregister`),
        called once with :data:`PREREGISTRATION` before phase 2 (``None``: the prediction is timed with
        ``time.time()`` only).
      progress: ``progress(label, done, total)``.
    """
    rates = np.asarray([learning_rates] if np.isscalar(learning_rates) else learning_rates, np.float64).ravel()
    if rates.size == 2 or rates.size == 0:
        raise ValueError(f"learning_rates: give one learning rate or a grid of at least 3, got {rates.tolist()}")
    eta, sweep, edge, t_sweep = _tune(plan, corpus, rates, seeds, progress)
    if not math.isfinite(eta):
        raise ValueError(f"learning_rates: every rate of the sweep diverged at d_model {plan.d_models[0]}")
    points = _points(plan, rates)
    below, notes, t_below = _train_sizes(plan, corpus, slice(0, -1), eta, seeds, progress, "budgets below the largest",
                                         points)
    try:
        law = fit_law(plan, mean_loss(below), n_bootstrap=n_bootstrap, seed=bootstrap_seed, progress=progress)
        prediction = predict_largest(law, float(plan.budgets[-1]), plan.n_params, plan.tokens[-1])
    except OverflowError:  # the point fit itself overflowed: registered as NaN, judged not identified
        law, prediction = None, _overflowed(float(plan.budgets[-1]), len(plan.configs))
    values = prediction.values(plan.d_models)
    registered_at = float(preregister(PREREGISTRATION, values)) if preregister is not None else time.time()
    largest_started_at = time.time()
    largest, more, t_largest = _train_sizes(plan, corpus, slice(-1, None), eta, seeds, progress, "largest budget",
                                            points)
    return IsoflopRuns(plan, np.concatenate([below, largest]), eta, rates if rates.size > 1 else np.empty(0), sweep,
                       edge, law, prediction, registered_at, largest_started_at, (t_sweep, t_below, t_largest),
                       tuple(dict.fromkeys(notes + more)))
