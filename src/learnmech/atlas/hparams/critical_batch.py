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
(:func:`~learnmech.theory.batch_tradeoff.fit_steps`); ``E_min = B_noise S_min``.

Measuring ``B_simple``. The two-batch-size estimator (their App. A.1,
:func:`learnmech.observe.noise_scale_from_batch_sizes`) takes the squared norms of gradients over
small batches of ``b = noise_batch`` examples and over a big batch: here the small batches are
the ``n / b`` disjoint blocks of the training set and the big batch is the whole set. Its
``E |G_b|^2 = |G|^2 + tr(Sigma) / b`` holds for batches drawn from an infinite population; for
blocks of a finite set ``E |G_b|^2 = |G|^2 + tr(Sigma) (1/b - 1/n)``, which leaves the trace
estimate unbiased and shifts the ``|G|^2`` estimate by ``-tr(Sigma) / n``; adding that back gives
exactly the squared norm of the full training gradient (:func:`noise_observables`).
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

Task (exactly solvable). Linear regression ``y = w*.x + sigma xi``, ``x ~ N(0, Lambda)`` with a
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
at most ``B_noise / 4`` and some at least ``4 B_noise``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve, Verdict
from learnmech.atlas.hparams.critical_batch_figure import plot_noise, plot_pareto, plot_steps
from learnmech.atlas.metrics import log_window_mean, steps_to_target
from learnmech.data import gaussian_inputs, power_law_spectrum
from learnmech.observe import noise_scale_from_batch_sizes
from learnmech.report import finish_figure, new_figure
from learnmech.theory.batch_tradeoff import fit_steps, run_average
from learnmech.theory.sgd_linear import b_crit_linear, b_simple_linear, sgd_second_moments
from learnmech.train import OptimizerSpec, log_schedule, train

__all__ = [
    "CLAIM",
    "Config",
    "dataset",
    "input_spectrum",
    "loss_floor",
    "mse_linear",
    "noise_observables",
    "teacher",
]

RATIO_MAX = 3.0  # CLAIMS.md: B_noise (fit) within a factor 3 of B_simple (measured)
KNEE_MARGIN = 4.0  # the knee is bracketed when tuned batches reach B_noise / 4 and 4 B_noise

DTYPE = "float32"  # losses span ~2 decades above the floor; float32 resolves them to ~1e-6


class Config(ClaimConfig):
    seeds: int = Field(8, ge=1, le=256, description="independent minibatch sequences per (batch, lr)")
    dim: int = Field(8, ge=2, le=256, description="input dimension d")
    spectrum_exponent: float = Field(1.0, ge=0.0, le=3.0, description="input covariance eigenvalues ~ k^-exponent")
    noise: float = Field(0.3, ge=0.0, le=10.0, description="label noise standard deviation sigma (|w*| = 1)")
    n_train: int = Field(1024, ge=16, le=1_000_000, description="training examples n")
    batches: tuple[int, ...] = Field(tuple(2**k for k in range(9)), description="batch sizes (log2 grid)")
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

    @field_validator("batches")
    @classmethod
    def _increasing(cls, b: tuple[int, ...]) -> tuple[int, ...]:
        if len(b) < 3 or b[0] < 1 or any(x >= y for x, y in zip(b, b[1:])):
            raise ValueError("must be at least 3 strictly increasing positive batch sizes")
        return b

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
# Task


def input_spectrum(cfg: Config) -> np.ndarray:
    """``lambda_k ~ k^-exponent``, ``k = 1..d``, scaled to mean 1 (``E |x|^2 = d``), float64 ``(d,)``."""
    lam = np.arange(1, cfg.dim + 1, dtype=np.float64) ** -cfg.spectrum_exponent
    return lam * cfg.dim / lam.sum()


def teacher(cfg: Config) -> np.ndarray:
    """A random unit vector ``w*`` ``(d,)`` (the initial error is ``e_0 = -w*``)."""
    w = np.random.default_rng(cfg.data_seed).standard_normal(cfg.dim)
    return w / np.linalg.norm(w)


def dataset(cfg: Config, n: int | None = None, seed: int | None = None):
    """``X (n, d)`` ``~ N(0, diag(input_spectrum))`` and ``Y = X w* + sigma xi`` ``(n, 1)``, DTYPE numpy.

    ``n`` defaults to ``cfg.n_train``, ``seed`` (of the draw; ``w*`` is always the config's) to ``cfg.data_seed``.
    """
    n = cfg.n_train if n is None else n
    key_x, key_xi = jax.random.split(jax.random.key(cfg.data_seed if seed is None else seed))
    scale = float(input_spectrum(cfg)[0])
    X = np.asarray(gaussian_inputs(key_x, n, power_law_spectrum(cfg.dim, cfg.spectrum_exponent, scale=scale,
                                                                 dtype=DTYPE), dtype=DTYPE))  # (n, d)
    xi = np.asarray(jax.random.normal(key_xi, (n, 1), DTYPE))  # (n, 1)
    Y = (X.astype(np.float64) @ teacher(cfg))[:, None] + cfg.noise * xi  # (n, 1)
    return X, Y.astype(DTYPE)


def loss_floor(X, Y) -> float:
    """``min_w (1/2n) |X w - Y|^2`` (least squares on the training set)."""
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    w, *_ = np.linalg.lstsq(X, Y, rcond=None)
    return float(0.5 * np.mean((X @ w - Y) ** 2))


def mse_linear(params, batch):
    """``(1/2B) sum_i (w.x_i - y_i)^2`` of the linear model ``params = {"w": (d, 1)}``."""
    x, y = batch  # (B, d), (B, 1)
    return 0.5 * jnp.mean((x @ params["w"] - y) ** 2)


def noise_observables(loss, params, data, noise_batch: int) -> dict:
    """``tr(Sigma)`` and ``|G|^2`` of ``loss`` on the training set ``data`` by the two-batch estimator.

    Small batches: the ``n / b`` disjoint blocks of ``b = noise_batch`` consecutive examples (the
    data are i.i.d., so the blocks are random batches); big batch: all ``n``. The estimator of
    McCandlish et al. (2018, arXiv:1812.06162, App. A.1; :func:`noise_scale_from_batch_sizes`) gives
    ``tr(Sigma)`` unbiased for the per-example covariance with ``1/(n-1)`` normalisation; its
    ``|G|^2`` is short by ``tr(Sigma) / n`` for blocks of a finite set (module docstring), added back
    here, which makes it the squared norm of the full training gradient. Jit-friendly.
    """
    n = jax.tree.leaves(data)[0].shape[0]
    blocks = jax.tree.map(lambda a: a.reshape(n // noise_batch, noise_batch, *a.shape[1:]), data)
    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, blocks)  # leaves (n / b, *leaf)
    small = sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in jax.tree.leaves(grads))  # (n / b,)
    full = sum(jnp.sum(g**2) for g in jax.tree.leaves(jax.grad(loss)(params, data)))  # |G_n|^2
    est = noise_scale_from_batch_sizes(jnp.mean(small), full, noise_batch, n)
    return {"trace_cov": est.trace_cov, "grad_sq": est.grad_sq_norm + est.trace_cov / n}


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
    s_min, b_noise, _ = fit_steps(np.asarray(cfg.batches)[ok], S[ok])
    t = np.arange(cfg.steps + 1)
    pooled = {}
    for name, fn in (("b_simple", b_simple_linear), ("b_crit", b_crit_linear)):
        total = sum(run_average(t, fn(lam, np.sqrt(m), cfg.noise), s) * s for s, m, o in zip(S, runs, ok) if o)
        pooled[name] = total / S[ok].sum()
    scalar = lambda v: Curve(np.zeros(1), np.array([[v]]))  # noqa: E731
    out = {
        "steps": Curve(np.asarray(cfg.batches, np.float64), S),  # tuned steps-to-target, NaN: not reached
        "s_min": scalar(s_min),
        "b_noise": scalar(b_noise),
        "b_simple": scalar(pooled["b_simple"]),  # averaged over the steps of the tuned runs
        "b_crit": scalar(pooled["b_crit"]),
        "b_simple_init": scalar(float(b_simple_linear(lam, w, cfg.noise))),
    }
    for i, (s, m) in enumerate(zip(S, runs)):  # B_simple against the expected excess loss, up to the target
        keep = t <= (s if np.isfinite(s) else cfg.steps)
        loss, b = 0.5 * m[keep] @ lam, b_simple_linear(lam, np.sqrt(m[keep]), cfg.noise)
        # one point per loss value, in increasing loss (the store keeps a curve's points sorted by x; a run
        # whose loss has stopped changing repeats its last state, and so its last point, exactly)
        loss, first = np.unique(loss, return_index=True)
        out[f"path/{i}"] = Curve(loss, b[first])
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
        steps=schedule, observe=lambda params, params0: noise_observables(mse_linear, params, data, cfg.noise_batch),
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
    out = {"floor": Curve(np.zeros(1), np.array([[loss_floor(X, Y)]]))}
    for i in range(len(cfg.batches)):
        for name in ("loss", "trace_cov", "grad_sq"):
            out[f"{name}/{i}"] = Curve(t, obs[name][i].reshape(-1, t.size))  # members lr-major: (L seeds, T)
    s = _summary(cfg, out)  # derived records, for the store (the verdict recomputes them from the above)
    batches = np.asarray(cfg.batches, np.float64)
    out["steps_to_target"] = Curve(batches, s["steps"])  # NaN: not reached
    out["steps_per_seed"] = Curve(batches, s["steps_seed"].T)  # (seeds, K) at the tuned lr
    out["steps_per_lr"] = Curve(cfg.learning_rates, s["steps_lr"])  # (K, L), NaN: not reached or diverged
    out["b_simple_jackknife"] = Curve(np.zeros(1), s["b_simple_jackknife"][:, None])  # leave-one-seed-out, (seeds, 1)
    return out


# ---------------------------------------------------------------------------------------------
# Verdict and figure


def _tuned_noise(cfg: Config, measurement, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """``tr(Sigma)`` and ``|G|^2`` of member ``(batch i, lr j)``, ``(seeds, T)`` each."""
    L = len(cfg.learning_rates)
    return tuple(measurement[f"{name}/{i}"].y.reshape(L, cfg.seeds, -1)[j] for name in ("trace_cov", "grad_sq"))


def _summary(cfg: Config, measurement) -> dict:
    """Everything the verdict and the figure read, recomputed from the raw curves."""
    lrs, K, L = cfg.learning_rates, len(cfg.batches), len(cfg.learning_rates)
    batches = np.asarray(cfg.batches, np.float64)
    floor = float(measurement["floor"].y[0, 0])
    t = measurement["loss/0"].x
    loss0 = float(np.nanmean(measurement["loss/0"].y[:, 0]))
    target = cfg.target_fraction * (loss0 - floor)  # on the excess loss L - L_floor
    steps_lr, steps_seed, best = np.full((K, L), np.nan), np.full((K, cfg.seeds), np.nan), np.zeros(K, int)
    for i in range(K):
        excess = measurement[f"loss/{i}"].y.reshape(L, cfg.seeds, -1) - floor  # (L, seeds, T)
        for j in range(L):
            if not np.isnan(excess[j]).any():  # a diverged seed puts this learning rate out
                steps_lr[i, j] = steps_to_target(t, log_window_mean(t, excess[j].mean(0), cfg.smoothing), target)
        if np.isfinite(steps_lr[i]).any():
            best[i] = int(np.nanargmin(steps_lr[i]))
            smooth = log_window_mean(t, excess[best[i]], cfg.smoothing)  # (seeds, T)
            steps_seed[i] = [steps_to_target(t, smooth[s], target) for s in range(cfg.seeds)]
    steps = steps_lr[np.arange(K), best]
    tuned = np.isfinite(steps) & (best > 0) & (best < L - 1)

    def pooled(ratio):  # B_simple averaged over every step of every tuned run
        total = sum(run_average(t, ratio(*_tuned_noise(cfg, measurement, i, best[i])), steps[i]) * steps[i]
                    for i in np.flatnonzero(tuned))
        return total / steps[tuned].sum() if tuned.any() else np.nan

    out = {"batch": batches, "steps": steps, "steps_lr": steps_lr, "best": best, "best_lr": lrs[best],
           "tuned": tuned, "steps_seed": steps_seed, "floor": floor, "target": target,
           "b_simple": pooled(lambda tr, g2: tr.mean(0) / g2.mean(0)),  # ratio of seed means at each point
           "b_simple_jackknife": np.array([pooled(lambda tr, g2, s=s: np.delete(tr, s, 0).mean(0) /
                                                  np.delete(g2, s, 0).mean(0)) for s in range(cfg.seeds)])}
    loo = out["b_simple_jackknife"]  # leave-one-seed-out values, (seeds,)
    out["b_simple_stderr"] = float(np.sqrt((loo.size - 1) * np.mean((loo - loo.mean()) ** 2))) if loo.size > 1 else np.nan
    if tuned.sum() >= 2:
        out["s_min"], out["b_noise"], out["rms"] = fit_steps(batches[tuned], steps[tuned], cfg.n_train)
        i0, i1 = np.flatnonzero(tuned)[[0, -1]]
        ratio = lambda i: np.divide(*[a.mean(0) for a in _tuned_noise(cfg, measurement, i, best[i])])  # noqa: E731
        out["b_simple_init"] = float(ratio(i0)[0])
        out["b_simple_smallest"] = run_average(t, ratio(i0), steps[i0])
        out["b_simple_largest"] = run_average(t, ratio(i1), steps[i1])
        out["b_simple_target"] = float(np.interp(steps[i1], t, ratio(i1)))
    return out


def _finite(details: dict) -> dict[str, float]:
    """The finite entries (a stored verdict is JSON; e.g. no jackknife error with a single seed)."""
    return {k: float(v) for k, v in details.items() if np.isfinite(v)}


def judge(cfg: Config, prediction, measurement) -> Verdict:
    s = _summary(cfg, measurement)
    n_tuned = int(s["tuned"].sum())
    reached = np.isfinite(s["steps"])
    details = {f"steps/B={b:g}": float(v) for b, v, ok in zip(cfg.batches, s["steps"], reached) if ok}
    details.update({f"best_lr/B={b:g}": float(v) for b, v, ok in zip(cfg.batches, s["best_lr"], reached) if ok})
    details.update({"tuned_batches": float(n_tuned), "theory_b_noise": float(prediction["b_noise"].y[0, 0]),
                    "theory_s_min": float(prediction["s_min"].y[0, 0]),
                    "theory_b_simple": float(prediction["b_simple"].y[0, 0]),
                    "theory_b_crit": float(prediction["b_crit"].y[0, 0])})
    if n_tuned < cfg.min_batches:
        return Verdict(status="inconclusive", metric="tuned batch sizes reaching the target", value=float(n_tuned),
                       threshold=float(cfg.min_batches), details=_finite(details),
                       reason=f"only {n_tuned} batch sizes reached the target with their best learning rate inside "
                              "the grid; train longer or widen the learning-rate grid")
    ratio = s["b_noise"] / s["b_simple"]
    details.update({"b_noise": s["b_noise"], "s_min": s["s_min"], "e_min": s["s_min"] * s["b_noise"],
                    "fit_rms_log": s["rms"], "ratio": ratio, "b_simple": float(s["b_simple"]),
                    "b_simple_stderr": s["b_simple_stderr"],
                    "b_simple_init": s["b_simple_init"],
                    "b_simple_target": s["b_simple_target"], "b_simple_largest_run": s["b_simple_largest"],
                    "b_simple_smallest_run": s["b_simple_smallest"]})
    reason = (f"fit S = S_min (1 + B_noise / B) over {n_tuned} tuned batch sizes: S_min = {s['s_min']:.2f}, "
              f"B_noise = {s['b_noise']:.1f} (rms {s['rms']:.3f} in log S; exact theory {details['theory_b_noise']:.1f}); "
              f"B_simple averaged over the tuned runs = {s['b_simple']:.1f} +/- {s['b_simple_stderr']:.1f} (jackknife over "
              f"seeds; init {s['b_simple_init']:.1f}, at target {s['b_simple_target']:.1f}); "
              f"ratio {ratio:.2f}, want within [1/{RATIO_MAX:g}, {RATIO_MAX:g}]")
    tuned_b = s["batch"][s["tuned"]]
    if not (tuned_b.min() * KNEE_MARGIN <= s["b_noise"] <= tuned_b.max() / KNEE_MARGIN):
        return Verdict(status="inconclusive", metric="knee bracketed by tuned batches", value=s["b_noise"],
                       threshold=KNEE_MARGIN, details=_finite(details),
                       reason=reason + f"; but the tuned batches {tuned_b.min():g}..{tuned_b.max():g} do not reach "
                                       f"B_noise / {KNEE_MARGIN:g} and {KNEE_MARGIN:g} B_noise")
    status = "holds" if 1.0 / RATIO_MAX <= ratio <= RATIO_MAX else "fails"
    return Verdict(status=status, metric="B_noise (fit) / B_simple (measured)", value=float(ratio),
                   threshold=RATIO_MAX, reason=reason, details=_finite(details))


def plot(cfg: Config, prediction, measurement, verdict=None):
    s = _summary(cfg, measurement)
    fig, (ax_s, ax_p, ax_n) = new_figure(3, title="hparams.critical-batch: SGD on linear regression, "
                                                  "learning rate tuned per batch size")
    plot_steps(ax_s, cfg, prediction, s)
    plot_pareto(ax_p, cfg, prediction, s)
    plot_noise(ax_n, cfg, prediction, measurement, s, lambda i, j: _tuned_noise(cfg, measurement, i, j))
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="hparams.critical-batch",
    pillar="hyperparameters",
    statement="Steps to a loss target fall as S_min (1 + B_noise / B) with the batch size, and the knee B_noise "
              "is within a factor 3 of the simple gradient noise scale tr(Sigma) / |G|^2.",
    references=("McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162",),
    config=Config,
    presets={
        "quick": {},
        "full": {"seeds": 16, "n_train": 2048, "batches": tuple(2**k for k in range(10)), "lr_per_octave": 2,
                 "steps": 500, "points": 150},
    },
    predict=predict, measure=measure, judge=judge, plot=plot,
    tags=("noise", "batch-size"),
)
