"""hparams.critical-batch — the gradient noise scale predicts the batch-size knee.

Statement (McCandlish, Kaplan, Amodei et al. 2018, "An empirical model of large-batch training",
arXiv:1812.06162): the number of optimiser steps ``S`` and of examples ``E = B S`` needed to reach
a loss target trade off along the hyperbola ``S = S_min (1 + B_noise / B)``,
``E = E_min (1 + B / B_noise)`` -- equivalently ``(S / S_min - 1)(E / E_min - 1) = 1`` with
``E_min = B_noise S_min`` -- and the knee ``B_noise`` is of the order of the simple noise scale
``B_simple = tr(Sigma) / |G|^2`` (``G`` the true gradient, ``Sigma`` the covariance of one
example's gradient).

Where the hyperbola comes from (their Sec. 2), and the factor ``(n-1)/n`` that batches drawn with
replacement from ``n`` training examples put on ``B_noise``: :mod:`learnmech.theory.batch_tradeoff`.
The form fitted is ``S(B) = S_min (1 + B_noise (n-1) / (n B))``, least squares on ``log S``
(:class:`learnmech.fit.StepsHyperbola`); ``E_min = B_noise S_min``.

Measuring ``B_simple``. The two-batch-size estimator (their App. A.1,
:func:`learnmech.observe.noise_scale_from_batch_sizes`) takes the squared norms of gradients over
small batches of ``b = noise_batch`` examples and over a big batch: here the small batches are
the ``n / b`` disjoint blocks of the training set and the big batch is the whole set. Its
``E |G_b|^2 = |G|^2 + tr(Sigma) / b`` holds for batches drawn from an infinite population; for
blocks of a finite set ``E |G_b|^2 = |G|^2 + tr(Sigma) (1/b - 1/n)``, which leaves the trace
estimate unbiased and shifts the ``|G|^2`` estimate by ``-tr(Sigma) / n``; adding that back gives
exactly the squared norm of the full training gradient (:func:`learnmech.observe.noise.noise_scale_blocks`).
``B_simple = tr(Sigma) / |G|^2`` is measured at every observation point of every run (numerator and
denominator averaged over seeds before the ratio, as the paper pools them; the error quoted is the
jackknife over seeds).

Which value of ``B_simple``? It grows several-fold from initialisation to the target (label noise
makes ``tr(Sigma)`` level off while ``|G|^2`` falls), so the point of training matters. The
derivation (:mod:`learnmech.theory.batch_tradeoff`) says: the average over the steps of training.
Here every run uses one learning rate throughout (tuned per batch size, as in the paper's
experiments), so the relevant average is over the steps of the tuned runs themselves -- including
the gradient noise they carry, which keeps the stiff directions excited and lowers ``B_simple``
relative to noiseless descent. The measured ``B_simple`` is therefore its average over *every step
of every tuned run* (all batch sizes pooled, each run from step 0 to its own steps-to-target;
linear interpolation between observation points): the average over the training that produced the
``S(B)`` curve. Runs far below the knee take the most steps and dominate it. Also reported: the
average along the largest-batch run (the ``S_min`` trajectory of the paper's derivation, which for
a fixed learning rate is only a few large steps near the stability edge), and the values at
initialisation and at the target. On this task (quick preset, teacher draws ``data_seed = 0..4``)
the exact theory below gives for ``B_noise`` (its fit) over each candidate: pooled over the tuned
runs 1.2-1.7, along the largest-batch run 0.65-2.0, at initialisation 1.5-3.0, at the target
0.3-0.7: the pooled average is the steadiest, and the value at initialisation only just passes for
some draws.

Task (exactly solvable; :mod:`learnmech.data.noisy_linear`). Linear regression ``y = w*.x + sigma xi``, ``x ~ N(0, Lambda)`` with a
power-law spectrum ``lambda_k ~ k^(-spectrum_exponent)``, ``k = 1..d``, normalised to mean 1 (the
shape of real data's covariance spectra), ``w*`` a random unit vector, label noise ``sigma``; the
model ``f(x) = w.x`` from ``w = 0`` (every seed starts at the same point; seeds differ in the
batches they draw). Loss ``L = (1/2n) sum_i (f(x_i) - y_i)^2``; the floor ``L_floor`` is the least
squares minimum on the training set. The target is a fixed fraction of the way down:
``L_target = L_floor + target_fraction (L_0 - L_floor)``. A power law with exponent 1 is stiff
enough that the best large-batch run needs several steps (the hyperbola's ``S_min`` is not a
single step, as it would be on an isotropic problem, where ``eps = 1`` solves it in one step) and
mild enough that the curvature-weighted ``B_crit = tr(H Sigma) / G^T H G`` (``H = Lambda``), pooled
the same way, stays within 20% of ``B_simple`` (both are in the prediction).

Exact theory (the dashed lines; :mod:`learnmech.theory.sgd_linear`). ``B_simple(e)`` and the
second moments ``m_k = E e_k^2`` along SGD at learning rate ``eta`` and batch ``B`` are in closed
form for this task (:func:`~learnmech.theory.sgd_linear.b_simple_linear`,
:func:`~learnmech.theory.sgd_linear.sgd_second_moments`: exact for batches of fresh Gaussian
examples, i.e. for the population the training set samples), the expected excess loss being
``(1/2) lambda . m``. The prediction tunes the same learning-rate grid on it and fits the same hyperbola.

Experiment. One vectorised ensemble over ``batches x learning_rates x seeds`` in one compiled
program (:func:`learnmech.train.train`: plain SGD, divergence detection and freezing): every member
draws ``max(batches)`` examples i.i.d. from the training set each step (``sampling=
"with_replacement"``; a draw without replacement sorts the whole training set every step, which
made this ensemble about twice as slow), and a member with batch ``B`` averages its loss over the
first ``B`` of them -- exactly SGD at batch ``B`` (the full-data loss recorded is the unmasked mean).
Every seed starts at ``w = 0``; seeds differ in the batches they draw.

Steps-to-target of a ``(B, eta)`` pair: the first time the loss, averaged over seeds and then over
a window ``[t / r, t r]`` of observation points (``r = smoothing``), falls through ``L_target``
(linear interpolation in ``log(L - L_floor)``); a pair with a diverged seed is out. The theory is
about the *expected* loss, while a single run at a small batch fluctuates by O(1) of its excess
(few stiff directions carry the noise) and would touch the target long before its mean does (a
first-passage bias, made worse by taking the fewest steps over the learning rates); the seed
mean and the log-time window estimate the expected curve
(:func:`~learnmech.atlas.metrics.log_window_mean`: the window spans several correlation times of
the late, slow part of a small-batch run, stays centred on the integer steps at the start, and
holds a single point over the first five, where the large-batch runs cross). ``S(B)``: the fewest steps over the learning
rates; a batch size is *tuned* when its best learning rate lies strictly inside the grid.

Verdict (CLAIMS.md): the fitted ``B_noise`` is within a factor 3 of the measured ``B_simple``:
``1/3 <= B_noise / B_simple <= 3``. Inconclusive when fewer than ``min_batches`` batch sizes are
tuned and reach the target, or when the fitted knee is not bracketed by the grid (some tuned batch
at most ``B_noise / 4`` and some at least ``4 B_noise``: ``knee_margin = min(B_noise / B_min, B_max / B_noise)
>= 4`` over the tuned batches).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
from pydantic import Field, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import indexed, key
from learnmech.atlas.metrics import log_window_mean, steps_to_target
from learnmech.atlas.rules import Check, Guard, Rules, reached
from learnmech.data.noisy_linear import (least_squares_floor, mse_linear, noisy_linear_regression,
                                         power_law_variances, unit_teacher)
from learnmech.fit.batch_tradeoff import StepsHyperbola
from learnmech.increasing import Increasing
from learnmech.observe.noise import noise_scale_blocks
from learnmech.report import COLORS, finish_figure, new_figure, theory_line
from learnmech.theory.batch_tradeoff import run_average, steps_hyperbola
from learnmech.theory.sgd_linear import b_crit_linear, b_simple_linear, sgd_second_moments
from learnmech.train import OptimizerSpec, log_schedule, train

__all__ = [
    "CLAIM",
    "Config",
    "dataset",
    "input_spectrum",
    "noise_observables",
    "teacher",
]

RATIO_MAX = 3.0  # CLAIMS.md: B_noise (fit) within a factor 3 of B_simple (measured)
KNEE_MARGIN = 4.0  # the knee is bracketed when tuned batches reach B_noise / 4 and 4 B_noise

DTYPE = "float32"  # losses span ~2 decades above the floor; float32 resolves them to ~1e-6
BatchSizes = Increasing(int, 3, "batch sizes")  # at least 3: S_min, B_noise and a check of the form


class Config(ClaimConfig):
    seeds: int = Field(8, ge=1, le=256, description="independent minibatch sequences per (batch, lr)")
    dim: int = Field(8, ge=2, le=256, description="input dimension d")
    spectrum_exponent: float = Field(1.0, ge=0.0, le=3.0, description="input covariance eigenvalues ~ k^-exponent")
    noise: float = Field(0.3, ge=0.0, le=10.0, description="label noise standard deviation sigma (|w*| = 1)")
    n_train: int = Field(1024, ge=16, le=1_000_000, description="training examples n")
    batches: BatchSizes = Field(tuple(2**k for k in range(9)), description="batch sizes (log2 grid)")
    lr_max: float = Field(1.0, gt=0.0, le=100.0, description="largest learning rate of the grid")
    lr_octaves: int = Field(6, ge=1, le=30, description="the grid spans lr_max 2^-octaves .. lr_max")
    lr_per_octave: int = Field(1, ge=1, le=8, description="learning rates per factor 2")
    target_fraction: float = Field(0.05, gt=0.0, lt=1.0,
                                   description="L_target = L_floor + fraction (L_0 - L_floor)")
    steps: int = Field(400, ge=10, le=100_000, description="training steps of every run (horizon)")
    points: int = Field(100, ge=10, le=1000, description="observation points (log-spaced)")
    smoothing: float = Field(1.2, ge=1.0, le=3.0, description="loss averaged over steps [t / r, t r] (r = 1: none)")
    noise_batch: int = Field(4, ge=1, le=4096, description="small batch b of the two-batch noise estimator")
    min_batches: int = Field(5, ge=3, le=64, description="tuned batch sizes needed for a verdict")
    data_seed: int = 0

    @model_validator(mode="after")
    def _sizes(self):
        if self.n_train % self.noise_batch or self.noise_batch >= self.n_train:
            raise ValueError(f"noise_batch: must divide n_train = {self.n_train} and be smaller, got {self.noise_batch}")
        if self.n_train == self.batches[-1]:
            raise ValueError("n_train: must differ from the largest batch (the loss tells them apart by size)")
        if self.min_batches > len(self.batches):
            raise ValueError(f"min_batches: at most {len(self.batches)} batch sizes, got {self.min_batches}")
        return self

    @property
    def learning_rates(self) -> np.ndarray:
        """The grid ``lr_max 2^(-k / per_octave)``, ``k = 0 .. octaves per_octave``, increasing."""
        k = np.arange(self.lr_octaves * self.lr_per_octave, -1, -1)
        return self.lr_max * 2.0 ** (-k / self.lr_per_octave)


# ---------------------------------------------------------------------------------------------
# Task (:mod:`learnmech.data.noisy_linear`)


def input_spectrum(cfg: Config) -> np.ndarray:
    """``lambda_k ~ k^-exponent``, ``k = 1..d``, scaled to mean 1, float64 ``(d,)``."""
    return power_law_variances(cfg.dim, cfg.spectrum_exponent)


def teacher(cfg: Config) -> np.ndarray:
    """The unit vector ``w*`` ``(d,)`` (the initial error is ``e_0 = -w*``)."""
    return unit_teacher(cfg.data_seed, cfg.dim)


def dataset(cfg: Config, n: int | None = None, seed: int | None = None):
    """``X (n, d)``, ``Y (n, 1)`` of the config's task; ``n`` defaults to ``n_train``, the draw's ``seed`` to
    ``data_seed`` (``w*`` is always the config's)."""
    key = jax.random.key(cfg.data_seed if seed is None else seed)
    return noisy_linear_regression(key, cfg.n_train if n is None else n, teacher(cfg), cfg.spectrum_exponent,
                                   cfg.noise, dtype=DTYPE)


def noise_observables(params, data, cfg: Config) -> dict:
    """``tr(Sigma)`` and ``|G|^2`` (of the full training gradient) by the two-batch estimator over the
    training set's blocks of ``noise_batch`` (:func:`learnmech.observe.noise.noise_scale_blocks`)."""
    est = noise_scale_blocks(mse_linear, params, data, cfg.noise_batch)
    return {"trace_cov": est.trace_cov, "grad_sq": est.grad_sq_norm}


# ---------------------------------------------------------------------------------------------
# Prediction


def _tuned_theory(cfg: Config, lam, m0, target: float):
    """Per batch: fewest steps over the grid (NaN: never) and the tuned run's moments ``(T + 1, d)``."""
    steps, runs = [], []
    t = np.arange(cfg.steps + 1)
    for batch in cfg.batches:
        m = sgd_second_moments(lam, m0, cfg.noise, cfg.learning_rates, batch, cfg.steps)  # (T+1, L, d)
        excess = 0.5 * m @ lam  # (T+1, L)
        s = np.array([steps_to_target(t, excess[:, j], target) for j in range(excess.shape[1])])
        j = int(np.nanargmin(s)) if np.isfinite(s).any() else 0
        steps.append(s[j])
        runs.append(m[:, j])
    return np.array(steps), runs


def predict(cfg: Config):
    lam, w = input_spectrum(cfg), teacher(cfg)
    m0 = w**2  # e_0 = -w*
    target = cfg.target_fraction * 0.5 * float(lam @ m0)  # excess-loss target
    S, runs = _tuned_theory(cfg, lam, m0, target)
    ok = np.isfinite(S)
    hyp = StepsHyperbola().fit(np.asarray(cfg.batches)[ok], S[ok])  # fresh examples: no n_train
    t = np.arange(cfg.steps + 1)
    pooled = {}
    for name, fn in (("b_simple", b_simple_linear), ("b_crit", b_crit_linear)):
        total = sum(run_average(t, fn(lam, np.sqrt(m), cfg.noise), s) * s for s, m, o in zip(S, runs, ok) if o)
        pooled[name] = total / S[ok].sum()
    out = {
        "steps": Curve(np.asarray(cfg.batches, np.float64), S),  # tuned steps-to-target, NaN: not reached
        "s_min": hyp.s_min_,
        "b_noise": hyp.b_noise_,
        "b_simple": float(pooled["b_simple"]),  # averaged over the steps of the tuned runs
        "b_crit": float(pooled["b_crit"]),
        "b_simple_init": float(b_simple_linear(lam, w, cfg.noise)),
    }
    for i, (s, m) in enumerate(zip(S, runs)):  # B_simple against the expected excess loss, up to the target
        keep = t <= (s if np.isfinite(s) else cfg.steps)
        loss, b = 0.5 * m[keep] @ lam, b_simple_linear(lam, np.sqrt(m[keep]), cfg.noise)
        # one point per loss value, in increasing loss (the store keeps a curve's points sorted by x; a run
        # whose loss has stopped changing repeats its last state, and so its last point, exactly)
        loss, first = np.unique(loss, return_index=True)
        out[key("path", i)] = Curve(loss, b[first])
    return out


# ---------------------------------------------------------------------------------------------
# Experiment


def _masked_loss(batch_max: int):
    """SGD at batch ``hp["batch"]``: the mean loss over the first ``B`` of the ``batch_max`` examples drawn."""

    def loss(params, batch, hp):
        x, y = batch  # (rows, d), (rows, 1)
        r2 = 0.5 * (x @ params["w"] - y)[:, 0] ** 2  # (rows,)
        if x.shape[0] != batch_max:  # the whole training set: recorded loss and loss_0
            return jnp.mean(r2)
        keep = jnp.arange(batch_max) < hp["batch"]
        return jnp.sum(jnp.where(keep, r2, 0.0)) / hp["batch"]

    return loss


def _run_ensemble(cfg: Config, data, schedule: np.ndarray) -> dict[str, np.ndarray]:
    """Train every ``(batch, lr, seed)`` member; observations ``(K, L, seeds, T)``, NaN after divergence.

    Every member draws ``max(batches)`` examples i.i.d. per step (``sampling="with_replacement"``:
    ``O(B)`` work, where a draw without replacement sorts the whole training set) and its loss reads
    the first ``hp["batch"]`` of them, so all batch sizes share one compiled program.
    """
    result = train(
        init=lambda key: {"w": jnp.zeros((cfg.dim, 1), DTYPE)}, loss=_masked_loss(cfg.batches[-1]), data=data,
        optimizer=OptimizerSpec("sgd", {"learning_rate": 0.1}), seeds=list(range(cfg.seeds)),
        grid={"batch": [float(b) for b in cfg.batches], "learning_rate": list(cfg.learning_rates)},
        steps=schedule, observe=lambda params, params0: noise_observables(params, data, cfg),
        batch_size=cfg.batches[-1], sampling="with_replacement", layout="vmap",
    )
    return {name: np.asarray(values, np.float64) for name, values in result.observations.items()}


def measure(cfg: Config, progress=None):
    X, Y = dataset(cfg)
    schedule = log_schedule(cfg.steps, cfg.points)
    if progress is not None:
        progress("hparams.critical-batch", 0, 1)
    obs = _run_ensemble(cfg, (jnp.asarray(X), jnp.asarray(Y)), schedule)
    if progress is not None:
        progress("hparams.critical-batch", 1, 1)
    t = schedule.astype(np.float64)
    out = {"floor": float(least_squares_floor(X, Y))}
    for i in range(len(cfg.batches)):
        for name in ("loss", "trace_cov", "grad_sq"):
            out[key(name, i)] = Curve(t, obs[name][i].reshape(-1, t.size))  # members lr-major: (L seeds, T)
    return out


# ---------------------------------------------------------------------------------------------
# Summary and verdict


def _at_lr(cfg: Config, curve: Curve, j: int) -> np.ndarray:
    """The ``(seeds, T)`` members of learning rate ``j`` (a curve's members are lr-major, ``(L seeds, T)``)."""
    return curve.y.reshape(len(cfg.learning_rates), cfg.seeds, -1)[j]


def _steps_to_target(cfg: Config, losses: list[Curve], floor: float, target: float):
    """Per batch: steps per learning rate ``(K, L)`` (seed mean; NaN: not reached, or a seed diverged),
    the best learning rate's index ``(K,)`` and the steps of each seed at it ``(K, seeds)``."""
    t, K, L = losses[0].x, len(losses), len(cfg.learning_rates)
    steps_lr, steps_seed, best = np.full((K, L), np.nan), np.full((K, cfg.seeds), np.nan), np.zeros(K, int)
    for i, loss in enumerate(losses):
        excess = loss.y.reshape(L, cfg.seeds, -1) - floor  # (L, seeds, T)
        for j in range(L):
            if not np.isnan(excess[j]).any():  # a diverged seed puts this learning rate out
                steps_lr[i, j] = steps_to_target(t, log_window_mean(t, excess[j].mean(0), cfg.smoothing), target)
        if np.isfinite(steps_lr[i]).any():
            best[i] = int(np.nanargmin(steps_lr[i]))
            smooth = log_window_mean(t, excess[best[i]], cfg.smoothing)  # (seeds, T)
            steps_seed[i] = [steps_to_target(t, smooth[s], target) for s in range(cfg.seeds)]
    return steps_lr, best, steps_seed


def _pooled(t, ratios, steps) -> float:
    """``B_simple`` averaged over every step of the runs ``ratios`` (each up to its ``steps``); NaN for none."""
    return sum(run_average(t, r, s) * s for r, s in zip(ratios, steps)) / np.sum(steps) if len(steps) else np.nan


def summarize(cfg: Config, prediction, measurement):
    """Steps to the target per batch size (learning rate tuned), the hyperbola's fit, ``B_simple`` pooled
    over the tuned runs (jackknife error over seeds), the guards' numbers, and the tuned runs' ``B_simple``
    and excess loss along training (the figure's)."""
    batches, lrs, L = np.asarray(cfg.batches, np.float64), cfg.learning_rates, len(cfg.learning_rates)
    losses, floor = indexed(measurement, "loss"), float(measurement["floor"])
    t = losses[0].x
    target = cfg.target_fraction * (float(np.nanmean(losses[0].y[:, 0])) - floor)  # on the excess loss L - L_floor
    steps_lr, best, steps_seed = _steps_to_target(cfg, losses, floor, target)
    steps = steps_lr[np.arange(batches.size), best]
    tuned = np.isfinite(steps) & (best > 0) & (best < L - 1)
    noise = [(_at_lr(cfg, tr, j), _at_lr(cfg, g2, j))  # tr(Sigma), |G|^2 of each batch's best run, (seeds, T) each
             for tr, g2, j in zip(indexed(measurement, "trace_cov"), indexed(measurement, "grad_sq"), best)]
    ratio = [tr.mean(0) / g2.mean(0) for tr, g2 in noise]  # ratio of seed means at each point, (T,) per batch
    idx = np.flatnonzero(tuned)
    loo = np.array([_pooled(t, [np.delete(noise[i][0], s, 0).mean(0) / np.delete(noise[i][1], s, 0).mean(0)
                                for i in idx], steps[idx]) for s in range(cfg.seeds)])  # leave one seed out
    out = {"steps": Curve(batches, steps), "steps_per_seed": Curve(batches, steps_seed.T),  # (seeds, K)
           "steps_per_lr": Curve(lrs, steps_lr), "best_lr": Curve(batches, lrs[best]),  # (K, L); (K,)
           "tuned": Curve(batches, tuned.astype(np.float64)), "target": target,
           "tuned_batches": float(tuned.sum()), "min_batches": float(cfg.min_batches),
           "b_simple": float(_pooled(t, [ratio[i] for i in idx], steps[idx])),
           "b_simple_stderr": float(np.sqrt((loo.size - 1) * np.mean((loo - loo.mean()) ** 2))) if loo.size > 1
           else np.nan}
    out.update({"theory_b_noise": float(prediction["b_noise"]), "theory_s_min": float(prediction["s_min"]),
                "theory_b_simple": float(prediction["b_simple"]), "theory_b_crit": float(prediction["b_crit"])})
    for i, j in enumerate(best):
        out[key("excess_run", i)] = Curve(t, _at_lr(cfg, losses[i], j).mean(0) - floor)
        out[key("b_simple_run", i)] = Curve(t, ratio[i])
    fitted = dict.fromkeys(("s_min", "b_noise", "e_min", "fit_rms_log", "ratio", "knee_margin", "b_simple_init",
                            "b_simple_smallest_run", "b_simple_largest_run", "b_simple_target"), np.nan)
    if idx.size >= 2:
        hyp = StepsHyperbola(n_train=cfg.n_train).fit(batches[idx], steps[idx])
        i0, i1 = idx[[0, -1]]
        fitted.update(s_min=hyp.s_min_, b_noise=hyp.b_noise_, e_min=hyp.e_min_, fit_rms_log=hyp.rms_,
                      ratio=hyp.b_noise_ / out["b_simple"],
                      knee_margin=min(hyp.b_noise_ / batches[i0], batches[i1] / hyp.b_noise_),  # >= 4: bracketed
                      b_simple_init=float(ratio[i0][0]), b_simple_smallest_run=run_average(t, ratio[i0], steps[i0]),
                      b_simple_largest_run=run_average(t, ratio[i1], steps[i1]),
                      b_simple_target=float(np.interp(steps[i1], t, ratio[i1])))
    out.update({name: float(v) for name, v in fitted.items()})
    return out


RULES = Rules(
    guards=(reached("tuned batch sizes reaching the target", "tuned_batches", "min_batches",
                    "too few batch sizes reached the target with their best learning rate inside the grid; "
                    "train longer or widen the learning-rate grid"),
            Guard("knee bracketed by tuned batches", "knee_margin", ">=", KNEE_MARGIN, fmt=".3g",
                  advice=f"the tuned batches do not reach B_noise / {KNEE_MARGIN:g} and {KNEE_MARGIN:g} B_noise "
                         "(knee_margin: the smaller factor they reach); widen the batch grid")),
    checks=(Check("B_noise (fit) / B_simple (measured)", "ratio", "<=", RATIO_MAX, fmt=".3f"),
            Check("B_noise (fit) / B_simple (measured)", "ratio", ">=", 1.0 / RATIO_MAX, fmt=".3f")),
)


# ---------------------------------------------------------------------------------------------
# Figure


def _label_125(ax):
    """Log axes spanning a decade or two: label 1-2-5 ticks in plain numbers, no minor labels."""
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())


def _plot_steps(ax, cfg: Config, prediction, summary):
    """Steps to target against the batch size: measured (tuned lr), exact theory, fitted hyperbola, knees."""
    b, steps, tuned = summary["steps"].x, summary["steps"].y[0], summary["tuned"].y[0] > 0
    with np.errstate(all="ignore"):
        lo, hi = np.nanmin(summary["steps_per_seed"].y, axis=0), np.nanmax(summary["steps_per_seed"].y, axis=0)
    bars = np.maximum(0.0, [steps - lo, hi - steps])  # single seeds may all cross before their mean
    ax.errorbar(b, steps, yerr=bars, fmt="o", color=COLORS[0], capsize=2,
                label="measured, lr tuned (bars: single seeds)")
    untuned = np.isfinite(steps) & ~tuned
    if untuned.any():
        ax.plot(b[untuned], steps[untuned], "x", color=COLORS[3], label="best lr at grid edge (not fitted)")
    theory_line(ax, prediction["steps"].x, prediction["steps"].y[0], color="black",
                label=f"exact theory (its fit: B_noise = {prediction['b_noise']:.1f})")
    if np.isfinite(summary["b_noise"]):
        bb = np.geomspace(b[0], b[-1], 200)
        ax.plot(bb, steps_hyperbola(bb, summary["s_min"], summary["b_noise"], cfg.n_train), color=COLORS[0],
                linewidth=1.2, label="fit S_min (1 + B_noise / B)")
        ax.axvline(summary["b_noise"], color=COLORS[0], linestyle=":", linewidth=1.4,
                   label=f"B_noise fit = {summary['b_noise']:.1f}")
    b_simple, err = summary["b_simple"], summary["b_simple_stderr"]
    ax.axvline(b_simple, color=COLORS[1], linewidth=1.4, label=f"B_simple measured = {b_simple:.1f}")
    if np.isfinite(err):
        ax.axvspan(b_simple - 2 * err, b_simple + 2 * err, color=COLORS[1], alpha=0.15, linewidth=0,
                   label="B_simple +/- 2 s.e. (jackknife over seeds)")
    ax.set(xscale="log", yscale="log", xlabel="batch size B (examples)", ylabel="steps to target S")
    ax.legend(fontsize=7)


def _plot_pareto(ax, cfg: Config, prediction, summary):
    """Examples ``E = B S`` against steps ``S``: the hyperbola ``(S / S_min - 1)(E / E_min - 1) = 1``."""
    b, steps = summary["steps"].x, summary["steps"].y[0]
    ax.plot(steps, b * steps, "o", color=COLORS[0], label="measured, lr tuned")
    for bi, si in zip(b, steps):
        if np.isfinite(si):
            ax.annotate(f"B={bi:g}", (si, bi * si), fontsize=6, xytext=(3, 2), textcoords="offset points")
    theory_line(ax, prediction["steps"].y[0], prediction["steps"].x * prediction["steps"].y[0], color="black",
                label="exact theory")
    if np.isfinite(summary["b_noise"]):
        bb = np.geomspace(b[0] / 4, b[-1] * 4, 200)
        sf = steps_hyperbola(bb, summary["s_min"], summary["b_noise"], cfg.n_train)
        ax.plot(sf, bb * sf, color=COLORS[0], linewidth=1.2, label="fit: (S/S_min - 1)(E/E_min - 1) = 1")
        ax.axvline(summary["s_min"], color="gray", linewidth=0.8, linestyle=":", label="S_min and E_min (fit)")
        ax.axhline(summary["e_min"], color="gray", linewidth=0.8, linestyle=":")
    ax.set(xscale="log", yscale="log", xlabel="steps to target S", ylabel="examples to target E = B S")
    _label_125(ax)
    ax.legend(fontsize=7)


def _plot_noise(ax, cfg: Config, prediction, summary):
    """``B_simple`` against the excess loss along the smallest, knee and largest tuned runs."""
    b, steps = summary["steps"].x, summary["steps"].y[0]
    tuned = np.flatnonzero(summary["tuned"].y[0] > 0)
    if tuned.size:
        knee = tuned[np.argmin(np.abs(np.log(b[tuned] / summary["b_simple"])))]
        for k, i in enumerate(sorted({tuned[0], knee, tuned[-1]})):
            excess, ratio = summary[key("excess_run", i)], summary[key("b_simple_run", i)]
            keep = excess.x <= steps[i]
            ax.plot(excess.y[0, keep], ratio.y[0, keep], "o-", markersize=2, linewidth=1.0, color=COLORS[2 + k],
                    label=f"measured, B = {b[i]:g} (seed mean)")
            path = prediction[key("path", i)]
            theory_line(ax, path.x, path.y[0], color=COLORS[2 + k], label=f"exact theory, B = {b[i]:g}")
    ax.axhline(summary["b_simple"], color=COLORS[1], linewidth=1.4, label="B_simple, averaged over tuned runs")
    if np.isfinite(summary["b_noise"]):
        ax.axhline(summary["b_noise"], color=COLORS[0], linestyle=":", linewidth=1.4, label="B_noise (fit)")
    ax.axvline(summary["target"], color="gray", linewidth=0.8, label="target")
    ax.set(xscale="log", yscale="log", xlabel="excess training loss L - L_floor (falls to the right)",
           ylabel="B_simple = tr(Sigma) / |G|^2")
    _label_125(ax)
    ax.invert_xaxis()
    ax.legend(fontsize=6)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, axes = new_figure(3, title="hparams.critical-batch: SGD on linear regression, "
                                    "learning rate tuned per batch size")
    for ax, panel in zip(axes, (_plot_steps, _plot_pareto, _plot_noise)):
        panel(ax, cfg, prediction, summary)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="hparams.critical-batch",
    pillar="hyperparameters",
    statement="Steps to a loss target fall as S_min (1 + B_noise / B) with the batch size, and the knee B_noise "
              "is within a factor 3 of the simple gradient noise scale tr(Sigma) / |G|^2.",
    references=("McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162",),
    config=Config,
    presets={
        "tiny": {"seeds": 2, "dim": 4, "n_train": 256, "batches": (1, 2, 8, 32, 128), "min_batches": 3,
                 "lr_octaves": 4, "steps": 40, "points": 15},
        "quick": {},
        "full": {"seeds": 16, "n_train": 2048, "batches": tuple(2**k for k in range(10)), "lr_per_octave": 2,
                 "steps": 500, "points": 150},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("noise", "batch-size"),
)
