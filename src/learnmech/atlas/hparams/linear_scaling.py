"""hparams.linear-scaling — SGD depends on eta / B only, up to the first of two predicted limits.

Statement (Goyal et al. 2017, arXiv:1706.02677; Mandt, Hoffman & Blei 2017, arXiv:1704.04289;
Jastrzebski et al. 2017, arXiv:1711.04623; Li, Malladi & Arora 2021, arXiv:2102.12470):
``(eta0, B0) -> (k eta0, k B0)`` leaves SGD's loss-versus-examples curve unchanged up to
``k* = min(B_noise / B0, 2 / (eta0 h))``, the noise and the stability limit. The derivation, and why
``h = lambda_max(H)`` here (mean-square stability of SGD on the quadratic model; the noise-weighted
``tr(H Sigma) / tr(Sigma)`` sets the slope of a smooth drift, not the limit): :mod:`learnmech.theory.scaling_limits`.
Adam's square-root rule (Malladi, Lyu, Panigrahi & Arora 2022, arXiv:2205.10287) is reported, not judged.

Experiment. Teacher-student regression with label noise (``y = f*(x) + sigma xi``, ``f*`` a random
two-layer tanh teacher, :mod:`learnmech.data.noisy_teacher`); a two-layer tanh MLP (SP) student, plain SGD
on ``L = (1/2n) sum_i (f(x_i) - y_i)^2``. All runs read the same stream of examples of their seed, ``k``
micro-batches of ``B0`` averaged before one update at ``k eta0`` (exactly SGD at batch ``k B0``), every
``k`` in one ensemble (:func:`learnmech.train.train`, ``sampling="stream"``, ``accumulate="k"``): shared
streams and initialisations are common random numbers.

Discrepancy. The compared loss is the excess risk ``(1/2) E_x (f(x) - f*(x))^2`` on held-out inputs with
clean targets (the noisy held-out loss is reported too) against examples seen ``e``; on the window
``[e0, E = e0 2^octaves]``, ``D_k = int |log Lbar_k - log Lbar_1| d(log e) / log(E / e0)`` (``Lbar`` the
seed mean, :func:`learnmech.atlas.metrics.log_discrepancy`): ``D_k <= 0.05`` reads "within about 5%
across the window"; a diverged member makes it infinite; its error is the jackknife over seeds.

The two limits, from the base run and a reference run only, before any scaled run is judged. Stability:
``lambda_max`` of the training loss (Lanczos) at the base run's iterates at ``e0 2^j``, geometric mean over
the window (in ``log e``, the measure of ``D_k``) of the sharpest seed (the seed mean departs when one
member does); ``k_stab = 2 / (eta0 lambda_max)``. Reported, not judged: ``h_Sigma = tr(H Sigma) / tr(Sigma)``
(``H`` dense on ``hessian_examples``, ``Sigma`` from ``noise_examples`` per-example gradients) as
``k_noise_weighted``, and ``B_simple`` there (it plateaus at ``~ 2 (B0 / eta0) / h_Sigma``, a property of the
run: why the former rule was retired). Noise: ``B_noise = tr(H Sigma) / G^T H G`` (McCandlish et al. 2018,
arXiv:1812.06162, Sec. 2) is a property of a point, and at a noisy iterate ``G`` holds the fluctuations the
noise sustains; the task's value at a loss level is taken on the noiseless path instead: full-batch GD on
the training set from the same initialisations (``reference_lr``, as long in ``eta x steps`` as the base
run), ``G`` its exact gradient (:func:`learnmech.observe.curvature.noise_curvature`), where its excess risk
equals the base run's at each window point; geometric mean over the window, ``k_noise = B_noise / B0``
(the value at the window's start, the smallest, is reported).

Verdict (CLAIMS.md, revised). ``k* = min(k_noise, k_stab)``; the summary says which binds. Every
``1 < k <= k* / 1.5`` has ``D_k <= 0.05``, and the first ``k`` with ``D_k > 0.05`` lies in
``[k* / 1.5, 1.5 k*]``. A ``D_k`` decides only when more than two jackknife errors from 5%. Inconclusive:
an undecided run at ``k <= k*/1.5`` and no resolved disagreement there; an undecided run before the first
resolved one that leaves the side of the bracket open; a diverged base run; a base run that decayed by
less than ``min_decay`` in the window; an unresolved limit; a ladder that cannot resolve the bracket
(consecutive ``k`` more than 1.5 apart from the largest ``1 < k <= k*/1.5`` to the smallest
``k >= 1.5 k*``). Ladders: quick ``1, 2, 4, 6, 8, 12, 16, 24, 32, 48`` (``B0 = 64``, ``eta0 = 0.032``)
resolves ``6 <= k* <= 32``; full ``1, 2, 3, 4, 6, ..., 256, 384`` (``B0 = 8``, ``eta0 = 0.004``) ``3 <= k* <= 256``.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.flatten_util import ravel_pytree
from pydantic import Field, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import indexed, key
from learnmech.atlas.metrics import log_average, log_discrepancy
from learnmech.atlas.rules import Check, Guard, Rules, count_diverged, diverged, reached
from learnmech.data.noisy_teacher import noisy_teacher_split
from learnmech.increasing import Increasing
from learnmech.nets import MLP
from learnmech.observe import mse
from learnmech.observe.curvature import noise_curvature_along
from learnmech.observe.noise import b_noise_at_losses
from learnmech.report import COLORS, finish_figure, new_figure, theory_line
from learnmech.theory.batch_scaling import scaled_hyperparameters
from learnmech.theory.scaling_limits import (BRACKET, bracket_gap, bracket_side, first_limit, noise_limit,
                                             stability_limit)
from learnmech.train import OptimizerSpec, Probe, train

__all__ = ["CLAIM", "Config", "RULES", "example_grid", "summarize"]

AGREE = 0.05  # CLAIMS.md: curves agree within 5% (D_k, area between log-loss curves) for k <= k* / 1.5
NOISE_SIGMAS = 2.0  # a D_k within this many jackknife errors of 5% cannot decide the verdict
DTYPE = "float32"  # the smallest judged differences (~1e-3 in log L) are far above float32 rounding
ADAM_BASE = {"b1": 0.99, "b2": 0.9999, "eps": 1e-8}  # k (1 - b1) < 1 up to k = 99
Ladder = Increasing(int, 2, "batch multipliers")  # and from 1 (Config._shapes)


class Config(ClaimConfig):
    seeds: int = Field(4, ge=2, le=256, description="initialisations and example streams (>= 2: jackknife)")
    ks: Ladder = Field((1, 2, 4, 6, 8, 12, 16, 24, 32, 48),
                       description="batch multipliers k, from 1: batch k B0, learning rate k eta0")
    base_batch: int = Field(64, ge=1, le=4096, description="B0: batch of the base run and micro-batch of all")
    eta0: float = Field(0.032, gt=0, le=1.0, description="base SGD learning rate at B0 (small-learning-rate regime)")
    window_start: int = Field(6144, ge=1, description="e0: the compared window [e0, e0 2^octaves] starts here")
    octaves: int = Field(5, ge=1, le=12, description="the window is [e0, e0 2^octaves]; E = e0 2^octaves examples")
    per_octave: int = Field(4, ge=1, le=16, description="observation points per factor 2 of examples")
    d_in: int = Field(8, ge=1, le=256, description="input dimension")
    width: int = Field(32, ge=2, le=1024, description="hidden units of the student")
    teacher_width: int = Field(32, ge=1, le=1024, description="hidden units of the tanh teacher")
    noise: float = Field(0.5, ge=0.0, le=10.0, description="label-noise standard deviation sigma")
    n_train: int = Field(2**15, ge=64, le=2**20, description="training examples the streams draw from")
    n_test: int = Field(2048, ge=64, le=2**16, description="held-out inputs for the excess risk")
    hessian_examples: int = Field(2048, ge=8, le=2**16, description="training examples of the dense Hessian")
    noise_examples: int = Field(4096, ge=8, le=2**18, description="per-example gradients estimating Sigma")
    reference_lr: float = Field(0.25, gt=0, le=10.0, description="learning rate of the full-batch reference path")
    reference_seeds: int = Field(2, ge=1, le=64, description="initialisations of the reference path")
    reference_points: int = Field(16, ge=4, le=256, description="measurements along the reference path (log-spaced)")
    min_decay: float = Field(2.0, gt=1.0, description="the base excess risk must fall by this factor over the window")
    adam: bool = Field(False, description="also run Adam with the square-root rule (reported, not judged)")
    adam_eta0: float = Field(3.5e-4, gt=0, le=1.0, description="base Adam learning rate at B0 (chosen for B0 = 8)")
    adam_ks: Ladder = Field((1, 2, 4, 8, 16, 32, 64), description="k of the Adam runs (k (1 - b1) < 1)")
    data_seed: int = 0

    @property
    def examples(self) -> int:
        """``E``, the examples seen by every run."""
        return self.window_start * 2**self.octaves

    @property
    def reference_steps(self) -> int:
        """Steps of the reference path: as long in ``eta x steps`` as the base run, ``eta0 E / B0``."""
        return max(1, math.ceil(self.eta0 * self.examples / self.base_batch / self.reference_lr))

    @model_validator(mode="after")
    def _shapes(self):
        if self.ks[0] != 1 or self.adam_ks[0] != 1:
            raise ValueError("ks, adam_ks: must start at 1 (the base run)")
        grid = example_grid(self.window_start, self.octaves, self.per_octave, self.base_batch)
        window = grid[grid >= self.window_start]
        for k in self.ks + (self.adam_ks if self.adam else ()):
            if self.examples % (k * self.base_batch) or np.sum(window % (k * self.base_batch) == 0) < 2:
                raise ValueError(f"ks: batch {k * self.base_batch} must divide E = {self.examples} and at least "
                                 "two observation points of the window")
        if self.window_start % self.base_batch or self.window_start < 4 * self.base_batch:
            raise ValueError("window_start: must be a multiple of B0, after a few base steps")
        if self.adam and self.adam_ks[-1] * (1 - ADAM_BASE["b1"]) >= 1:
            raise ValueError(f"adam_ks: need k (1 - b1) < 1 with b1 = {ADAM_BASE['b1']}")
        if self.hessian_examples + self.noise_examples > self.n_train:
            raise ValueError(f"hessian_examples, noise_examples: together at most n_train = {self.n_train}")
        return self


# ---------------------------------------------------------------------------------------------
# Observation points and prediction


def example_grid(window_start: int, octaves: int, per_octave: int, base_batch: int) -> np.ndarray:
    """Observation points (examples seen), about ``per_octave`` per factor 2.

    Before the window: multiples of ``base_batch`` spaced evenly in ``log e`` from ``base_batch``;
    in the window ``[window_start, window_start 2^octaves]``: integer multiples of ``window_start``
    (so every run whose batch divides ``window_start`` is between steps there), spaced about evenly
    in ``log e`` (the first octaves of the window are coarser: 1, 2, 3, ... times ``window_start``).

    >>> example_grid(8, 2, 2, 1).tolist()
    [1, 2, 3, 4, 6, 8, 16, 24, 32]
    """
    before = window_start // base_batch
    n_before = per_octave * max(1, round(math.log2(before))) + 1
    pre = np.unique(np.round(np.geomspace(1, before, n_before)).astype(np.int64)) * base_batch
    inside = np.unique(np.round(np.geomspace(1, 2**octaves, per_octave * octaves + 1)).astype(np.int64))
    return np.unique(np.concatenate([pre[pre < window_start], inside * window_start]))


def predict(cfg: Config):
    """The rule's prediction: identical curves (``D_k = 0``), and the learning rate of each run."""
    batch = np.asarray(cfg.ks, np.float64) * cfg.base_batch
    lr = scaled_hyperparameters("sgd", {"learning_rate": cfg.eta0}, cfg.ks)["learning_rate"]
    out = {"discrepancy": Curve(batch, np.zeros_like(batch)), "learning_rate": Curve(batch, lr)}
    if cfg.adam:
        adam_batch = np.asarray(cfg.adam_ks, np.float64) * cfg.base_batch
        adam_lr = scaled_hyperparameters("adam", {"learning_rate": cfg.adam_eta0}, cfg.adam_ks)["learning_rate"]
        out[key("adam", "discrepancy")] = Curve(adam_batch, np.zeros_like(adam_batch))
        out[key("adam", "learning_rate")] = Curve(adam_batch, adam_lr)
    return out


# ---------------------------------------------------------------------------------------------
# Experiment


def _task(cfg: Config):
    """The student, its loss, the training set ``(X, Y)`` and the held-out ``(X, f*(X), Y)``."""
    net = MLP((cfg.d_in, cfg.width, 1), "tanh", "sp", dtype=DTYPE)
    train_set, test = noisy_teacher_split(jax.random.key(cfg.data_seed), cfg.n_train, cfg.n_test, cfg.d_in,
                                          noise=cfg.noise, noise_seed=cfg.data_seed, width=cfg.teacher_width,
                                          dtype=DTYPE)

    def loss(params, batch):
        return mse(net.apply(params, batch[0]), batch[1])

    return net, loss, train_set, test


def _loss_observer(net: MLP, test):
    def observe(params, params0):
        x, clean, noisy = test
        out = net.apply(params, x)  # (n_test, 1)
        return {"excess": mse(out, clean), "test_loss": mse(out, noisy)}

    return observe


def _snapshots(**schedule) -> Probe:
    """The raveled parameters ``(P,)`` of the probed members at the probe's steps (measured after training)."""
    return Probe("params", lambda params, preconditioner, data: ravel_pytree(params)[0], **schedule)


def _curvature(cfg: Config, task, x: np.ndarray, snapshots: np.ndarray) -> dict[str, Curve]:
    """:func:`~learnmech.observe.curvature.noise_curvature` at every snapshot ``(members, T, P)``: ``G`` exact on
    the training set, ``H`` (traces) on its first ``hessian_examples``, ``Sigma`` from the next ``noise_examples``."""
    net, loss, train_set, _ = task
    h, n = cfg.hessian_examples, cfg.noise_examples
    parts = (train_set, jax.tree.map(lambda a: a[:h], train_set), jax.tree.map(lambda a: a[h:h + n], train_set))
    values = noise_curvature_along(loss, ravel_pytree(net.init(jax.random.key(0)))[1], snapshots, *parts)
    return {name: Curve(x, v) for name, v in values.items()}  # the NoiseCurvature fields, (members, T) each


def _run(cfg: Config, task, optimizer: str, ks, eta0: float, with_curvature: bool):
    """One ensemble over ``ks x seeds``: examples ``(T,)``, losses ``(K, seeds, T)``, the base run's curvature.

    On the driver: every member reads its seed's stream in micro-batches of ``B0`` and updates every ``k``
    of them, ``k`` and the scaled hyperparameters linked on one grid axis. With ``with_curvature`` the
    members of the base run (``k = 1``, the first ``seeds`` members, grid-major) are measured at ``e0 2^j``.
    """
    net, loss, train_set, test = task
    base = {"learning_rate": eta0, **(ADAM_BASE if optimizer == "adam" else {})}
    scaled = scaled_hyperparameters(optimizer, base, np.asarray(ks))
    axis = {"k": np.asarray(ks, np.int32), **{name: np.asarray(v, DTYPE) for name, v in scaled.items()}}
    e = np.concatenate([[0], example_grid(cfg.window_start, cfg.octaves, cfg.per_octave, cfg.base_batch)])
    octave_points = cfg.window_start * 2 ** np.arange(cfg.octaves + 1) // cfg.base_batch
    probes = [_snapshots(steps=octave_points.tolist(), members=range(cfg.seeds))] if with_curvature else []
    result = train(init=net.init, loss=loss, data=train_set, optimizer=OptimizerSpec(optimizer, base),
                   seeds=list(range(cfg.seeds)), grid={"k": axis}, steps=e // cfg.base_batch,
                   observe=_loss_observer(net, test), batch_size=cfg.base_batch, sampling="stream",
                   accumulate="k", probes=probes, record_loss=False)
    losses = {name: result[name] for name in ("excess", "test_loss")}  # (K, seeds, T)
    curvature = _curvature(cfg, task, octave_points * cfg.base_batch, result.probes["params"].values) \
        if with_curvature else {}
    return e.astype(np.float64), losses, curvature


def _reference(cfg: Config, task):
    """The noiseless path: full-batch GD at ``reference_lr``; its excess risk and curvature at log-spaced steps,
    on the axis ``e = (reference_lr / eta0) B0 steps`` (the base run's examples at equal ``eta x steps``)."""
    net, loss, train_set, test = task
    steps = np.unique(np.round(np.geomspace(1, cfg.reference_steps, cfg.reference_points)).astype(np.int64))
    result = train(init=net.init, loss=loss, data=train_set, optimizer=OptimizerSpec("sgd", {"learning_rate":
                   cfg.reference_lr}), seeds=list(range(cfg.reference_seeds)), steps=steps,
                   observe=_loss_observer(net, test), probes=[_snapshots(steps=steps)], record_loss=False)
    e = steps * cfg.reference_lr / cfg.eta0 * cfg.base_batch
    curvature = _curvature(cfg, task, e, result.probes["params"].values)
    out = {key("reference", "excess"): Curve(e, result["excess"])}  # (reference_seeds, T)
    out.update({key("reference", name): curve for name, curve in curvature.items()})
    return out


def measure(cfg: Config, progress=None):
    def report(part, done):
        if progress is not None:
            progress(f"hparams.linear-scaling ({part})", done, 1)

    task = _task(cfg)
    report("sgd", 0)
    e, sgd, curvature = _run(cfg, task, "sgd", cfg.ks, cfg.eta0, True)
    out = {key("base", name): curve for name, curve in curvature.items()}  # (seeds, octaves + 1)
    for i, k in enumerate(cfg.ks):
        own = e % (k * cfg.base_batch) == 0  # the points where run k is between steps
        out[key("loss", i)] = Curve(e[own], sgd["excess"][i][:, own])  # excess risk, (seeds, T_k)
        out[key("test_loss", i)] = Curve(e[own], sgd["test_loss"][i][:, own])  # noisy held-out loss
    report("sgd", 1)
    report("reference path", 0)
    out.update(_reference(cfg, task))
    report("reference path", 1)
    if cfg.adam:
        report("adam", 0)
        e_adam, adam, _ = _run(cfg, task, "adam", cfg.adam_ks, cfg.adam_eta0, False)
        report("adam", 1)
        for i, k in enumerate(cfg.adam_ks):
            own = e_adam % (k * cfg.base_batch) == 0
            out[key("adam_loss", i)] = Curve(e_adam[own], adam["excess"][i][:, own])
    return out


# ---------------------------------------------------------------------------------------------
# Summary and verdict


def _mean(y: np.ndarray) -> np.ndarray:
    """Mean over seeds (axis 0); NaN (a diverged member) stays NaN."""
    return np.mean(y, axis=0)


def _in_window(cfg: Config, curve: Curve):
    """``(x, y)`` of a curve restricted to the window ``[e0, E]``."""
    inside = (curve.x >= cfg.window_start) & (curve.x <= cfg.examples)
    return curve.x[inside], curve.y[:, inside]


def _discrepancy(cfg: Config, runs: list[Curve], i: int) -> tuple[float, float]:
    """``D`` of ``runs[i]`` against ``runs[0]`` on run ``i``'s points of the window, and its jackknife error."""
    e, run = _in_window(cfg, runs[i])
    at = np.searchsorted(runs[0].x, e)
    if not np.array_equal(runs[0].x[np.minimum(at, runs[0].x.size - 1)], e):
        raise ValueError(f"a point of run {i} is not a point of the base run")
    base = runs[0].y[:, at]  # (seeds, T_i)
    if not np.all(np.isfinite(_mean(base))):
        return float("nan"), 0.0  # the base run diverged: nothing to compare with (a guard says so)
    D = log_discrepancy(e, _mean(run), _mean(base))
    S = run.shape[0]
    drop = np.array([log_discrepancy(e, _mean(np.delete(run, j, 0)), _mean(np.delete(base, j, 0))) for j in range(S)])
    err = math.sqrt((S - 1) / S * np.sum((drop - drop.mean()) ** 2)) if np.all(np.isfinite(drop)) else 0.0
    return D, err


def _geomean(e: np.ndarray, values: np.ndarray) -> float:
    """Geometric mean of positive ``values``, uniform in ``log e`` (the measure of ``D_k``); NaN if one is not."""
    ok = np.all(np.isfinite(values) & (values > 0))
    return float(np.exp(log_average(e, np.log(values)))) if ok and values.size else float("nan")


def _pooled(m, prefix: str, top: str, bottom: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, mean top / mean bottom)`` of two curvature records, seeds pooled before the ratio."""
    with np.errstate(all="ignore"):
        return m[key(prefix, top)].x, _mean(m[key(prefix, top)].y) / _mean(m[key(prefix, bottom)].y)


def _limits(cfg: Config, m, runs: list[Curve]) -> dict:
    """Both limits, their window means and their curves along the window (in units of ``k``). Stability: the seed
    mean leaves the base curve as soon as one member does, so ``lambda_max`` is the sharpest seed's."""
    lam = m[key("base", "sharpness")]  # (seeds, octaves + 1)
    sharpest = int(np.argmax([_geomean(lam.x, row) for row in lam.y]))
    e, h_sigma = _pooled(m, "base", "trace_h_sigma", "trace_sigma")
    _, b_simple = _pooled(m, "base", "trace_sigma", "grad_sq_norm")
    e_win, base = _in_window(cfg, runs[0])
    b_noise = b_noise_at_losses(*(_mean(m[key("reference", name)].y) for name in ("excess", "trace_h_sigma", "g_h_g")),
                                _mean(base))  # (T_window,): on the reference path, at the base run's losses
    out = {"lambda_max": _geomean(e, lam.y[sharpest]), "lambda_max_seed_mean": _geomean(e, _mean(lam.y)),
           "h_sigma": _geomean(e, h_sigma), "B_simple_base": _geomean(e, b_simple),
           "B_noise": _geomean(e_win, b_noise), "B_noise_window_start": float(b_noise[0])}
    out.update(k_stability=float(stability_limit(cfg.eta0, out["lambda_max"])),
               k_noise_weighted=float(stability_limit(cfg.eta0, out["h_sigma"])),
               k_noise=float(noise_limit(out["B_noise"], cfg.base_batch)),
               k_noise_window_start=float(noise_limit(out["B_noise_window_start"], cfg.base_batch)))
    curves = {"k_stability_curve": Curve(e, stability_limit(cfg.eta0, lam.y[sharpest])),
              "k_noise_weighted_curve": Curve(e, stability_limit(cfg.eta0, h_sigma)),
              "k_noise_curve": Curve(e_win, noise_limit(b_noise, cfg.base_batch))}
    return out | curves


def summarize(cfg: Config, prediction, measurement):
    """``D_k`` of every run (jackknife error; the same on the noisy loss), both limits and ``k*``, the ladder's
    agreement, undecided and first disagreeing runs, and the limits along the window (the figure's)."""
    runs, k = indexed(measurement, "loss"), np.asarray(cfg.ks, np.float64)
    D, err = np.array([_discrepancy(cfg, runs, i) for i in range(len(runs))]).T  # (K,), (K,)
    noisy = [_discrepancy(cfg, indexed(measurement, "test_loss"), i)[0] for i in range(len(runs))]
    limits = _limits(cfg, measurement, runs)
    binding, k_star = first_limit({"noise": limits["k_noise"], "stability": limits["k_stability"]})
    base = _mean(_in_window(cfg, runs[0])[1])
    apart = D > AGREE + NOISE_SIGMAS * err  # resolved disagreement (a diverged run: D = inf, err = 0)
    unsure = np.abs(D - AGREE) <= NOISE_SIGMAS * err
    judged, low = k > 1, (k > 1) & (k <= k_star / BRACKET)
    first_open = k[judged & (apart | unsure)][0] if (judged & (apart | unsure)).any() else math.inf
    first_apart = k[judged & apart][0] if (judged & apart).any() else math.inf
    failed_low = bool(apart[low].any())
    out = {"diverged": count_diverged(runs[0]), "base_decay_in_window": float(base[0] / base[-1]),
           "min_decay": cfg.min_decay, "k_star": k_star, "stability_binds": float(binding == "stability"),
           "stability_resolved": float(math.isfinite(limits["k_stability"])),
           "noise_resolved": float(math.isfinite(limits["k_noise"])),
           "bracket_low": k_star / BRACKET, "bracket_high": BRACKET * k_star,
           # a resolved disagreement at k <= k*/1.5 fails the rule whatever the grid or other runs resolve
           "ladder_gap": 1.0 if failed_low else bracket_gap(cfg.ks, k_star),
           "undecided_low": 0.0 if failed_low else float(np.sum(unsure & low)),
           "first_undecided": float(bracket_side(first_open, k_star) != bracket_side(first_apart, k_star)),
           "first_apart_k": first_apart, "first_apart_over_k_star": first_apart / k_star,
           "last_agree_k": float(np.max(k[k < first_open])),
           "D_low_max": float(np.max(D[low])) if low.any() else math.nan}
    out.update(limits)
    for b, d, de, dn in zip((k * cfg.base_batch).astype(int), D, err, noisy):
        out.update({key("D", b): float(d), key("D_err", b): float(de), key("D_noisy_loss", b): float(dn)})
    if cfg.adam:
        adam = indexed(measurement, "adam_loss")
        for i, b in enumerate((np.asarray(cfg.adam_ks) * cfg.base_batch).astype(int)):
            out[key("adam_D", b)] = float(_discrepancy(cfg, adam, i)[0])
    return out


RULES = Rules(
    guards=(diverged("the base run diverged; lower eta0"),
            reached("base excess-risk decay over the window", "base_decay_in_window", "min_decay",
                    "the base run barely trained in the window; train longer"),
            Guard("stability limit resolved", "stability_resolved", ">=", 1.0, fmt="g",
                  advice="lambda_max at the base run's iterates was not positive and finite"),
            Guard("noise limit resolved", "noise_resolved", ">=", 1.0, fmt="g",
                  advice="the reference path did not reach the window's losses (or diverged); lengthen it "
                         "or lower reference_lr"),
            Guard("largest step of the ladder across [k*/1.5, 1.5 k*]", "ladder_gap", "<=", BRACKET, fmt=".3g",
                  advice="the ladder of k cannot resolve the bracket around k*; add runs"),
            Guard("undecided D_k, 1 < k <= k*/1.5", "undecided_low", "<=", 0.0, fmt="g",
                  advice=f"a D_k below k*/1.5 is within {NOISE_SIGMAS:g} jackknife errors of 5%; raise seeds"),
            Guard("first disagreement undecided", "first_undecided", "<=", 0.0, fmt="g",
                  advice=f"a D_k within {NOISE_SIGMAS:g} jackknife errors of 5% leaves the side of the bracket of "
                         "the first disagreement open; raise seeds")),
    checks=(Check("first k with D_k > 5%, over k*", "first_apart_over_k_star", ">=", 1 / BRACKET, fmt=".3f"),
            Check("first k with D_k > 5%, over k*", "first_apart_over_k_star", "<=", BRACKET, fmt=".3f"),
            Check("max D_k, 1 < k <= k*/1.5", "D_low_max", "<=", AGREE)),
)


# ---------------------------------------------------------------------------------------------
# Figure


def _plot_curves(ax, cfg: Config, measurement):
    """Mean over seeds of each run's excess risk; the base run dashed (the rule puts every run on it)."""
    import matplotlib.pyplot as plt

    runs = indexed(measurement, "loss")
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(runs)))  # one per k
    for i, (k, run) in enumerate(zip(cfg.ks[1:], runs[1:]), start=1):
        mean, keep = _mean(run.y), run.x > 0
        label = f"k = {k}" + ("" if np.isfinite(mean[keep]).all() else " (diverged)")
        ax.plot(run.x[keep], mean[keep], color=colors[i], linewidth=1.1, label=label)
    keep = runs[0].x > 0
    reference = _mean(runs[0].y)[keep]
    theory_line(ax, runs[0].x[keep], reference, color="black",
                label=f"B0 = {cfg.base_batch}, eta0 = {cfg.eta0:g}: the rule puts every run here")
    ax.axvspan(cfg.window_start, cfg.examples, color="gray", alpha=0.08, label="compared window")
    ax.set_ylim(0.5 * reference.min(), 8 * reference.max())  # runs that blow up leave the frame
    ax.set(xscale="log", yscale="log", xlabel="examples seen e", ylabel="excess risk (1/2) E (f - f*)^2, seed mean")
    ax.legend(fontsize=5.5, ncol=2)


def _plot_discrepancy(ax, cfg: Config, summary):
    """``D_k`` against ``k``, the 5% threshold, ``k*`` and its bracket."""
    k = np.asarray(cfg.ks[1:], np.float64)
    D, err, Dn = ([summary[key(name, int(b))] for b in k * cfg.base_batch] for name in ("D", "D_err", "D_noisy_loss"))
    D, err, ok = np.array(D), np.array(err), np.isfinite(D)
    top = max(0.2, float(np.max(D[ok], initial=0.2)))
    ax.errorbar(k[ok], D[ok], yerr=err[ok], fmt="o-", color=COLORS[0], markersize=4,
                label="SGD at (k eta0, k B0), measured (jackknife error)")
    ax.plot(k[~ok], np.full((~ok).sum(), 2 * top), "x", color=COLORS[3], label="diverged")
    ax.plot(k, Dn, ".:", color=COLORS[2], label="same, noisy test loss (not judged)")
    if cfg.adam:
        ka = np.asarray(cfg.adam_ks[1:], np.float64)
        ax.plot(ka, [summary[key("adam_D", int(b))] for b in ka * cfg.base_batch], "s--", color=COLORS[1],
                markersize=4, label="Adam, square-root rule (not judged)")
    ax.axhline(AGREE, color="black", linewidth=1.0, label="5%: agreement threshold")
    k_star, which = summary["k_star"], "stability" if summary["stability_binds"] else "noise"
    if np.isfinite(k_star):
        ax.axvline(k_star, color=COLORS[3], label=f"k* = {k_star:.1f} (the {which} limit binds)")
        ax.axvspan(k_star / BRACKET, BRACKET * k_star, color=COLORS[3], alpha=0.1,
                   label="[k*/1.5, 1.5 k*]: the first disagreement must fall here")
    ax.set(xscale="log", yscale="log", ylim=(5e-5, 4 * top), xlabel="batch multiplier k (batch k B0, rate k eta0)",
           ylabel="D_k: mean |log L_k - log L_1| over the window")
    ax.set_xticks(k, [f"{x:g}" for x in k], fontsize=6, rotation=90)  # the ladder itself
    ax.set_xticks([], minor=True)
    ax.legend(fontsize=5.5, loc="lower right")


def _plot_limits(ax, cfg: Config, summary):
    """The two limits along the window in units of ``k``, and the noise-weighted alternative (not judged)."""
    for name, color, label in (("k_stability", COLORS[3], "2 / (eta0 lambda_max), base run"),
                               ("k_noise", COLORS[0], "B_noise / B0, noiseless path at the base run's loss"),
                               ("k_noise_weighted", COLORS[7], "2 / (eta0 h_Sigma), not judged")):
        curve = summary[f"{name}_curve"]
        ax.plot(curve.x, curve.y[0], "o-", markersize=3, color=color, label=f"{label}: {summary[name]:.3g}")
    ax.axhline(summary["k_star"], color="black", linewidth=1.0, label="k* (window geometric means)")
    ax.set(xscale="log", yscale="log", xlabel="examples seen e (window)", ylabel="limit on the multiplier k")
    ax.legend(fontsize=6)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, (ax_l, ax_d, ax_k) = new_figure(3, title="hparams.linear-scaling: SGD at (k eta0, k B0), noisy tanh teacher")
    _plot_curves(ax_l, cfg, measurement)
    _plot_discrepancy(ax_d, cfg, summary)
    _plot_limits(ax_k, cfg, summary)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="hparams.linear-scaling",
    pillar="hyperparameters",
    statement="SGD at (k eta0, k B0) follows the loss curve of (eta0, B0) up to k* = min(B_noise / B0, "
              "2 / (eta0 lambda_max)), and first departs within a factor 1.5 of k* (Adam: the square-root rule).",
    references=("Goyal et al. 2017, arXiv:1706.02677", "Mandt, Hoffman & Blei 2017, arXiv:1704.04289",
                "Jastrzebski et al. 2017, arXiv:1711.04623", "McCandlish et al. 2018, arXiv:1812.06162",
                "Wu, Ma & E 2018, NeurIPS", "Li, Malladi & Arora 2021, arXiv:2102.12470",
                "Malladi et al. 2022, arXiv:2205.10287"),
    config=Config,
    presets={
        "tiny": {"seeds": 2, "ks": (1, 2, 4), "base_batch": 8, "eta0": 0.004, "window_start": 64, "octaves": 2,
                 "per_octave": 2, "d_in": 4, "width": 8, "teacher_width": 8, "n_train": 256, "n_test": 64,
                 "hessian_examples": 64, "noise_examples": 128, "reference_lr": 0.01, "reference_points": 6,
                 "adam": True, "adam_ks": (1, 2)},
        "quick": {},
        "full": {"seeds": 12, "base_batch": 8, "eta0": 0.004, "per_octave": 8, "adam": True,
                 "ks": (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384)},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("sgd", "batch size", "noise", "stability"),
)
