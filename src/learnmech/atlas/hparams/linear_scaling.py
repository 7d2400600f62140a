"""hparams.linear-scaling — below the critical batch size, SGD depends on eta / B only.

Statement (Goyal et al. 2017, arXiv:1706.02677; Mandt, Hoffman & Blei 2017, arXiv:1704.04289;
Jastrzebski et al. 2017, arXiv:1711.04623; Li, Malladi & Arora 2021, arXiv:2102.12470): below the
critical batch size, ``(eta, B) -> (k eta, k B)`` leaves the loss-versus-examples-seen curve of SGD
unchanged. For Adam the matching rule is the square-root rule ``eta -> sqrt(k) eta``,
``1 - beta_i -> k (1 - beta_i)``, ``eps -> eps / sqrt(k)`` (Malladi, Lyu, Panigrahi & Arora 2022,
arXiv:2205.10287).

Why (the SDE view, :mod:`learnmech.theory.batch_scaling`): ``k`` steps at ``(eta, B)`` and one at
``(k eta, k B)`` read the same examples with the same drift and noise covariance and differ at
second order, by a term ``eta^2 G^T H G / 2`` per step that grows ``k``-fold; so the rule holds while
``B < B_noise = tr(H Sigma) / G^T H G``, estimated by the simple noise scale ``B_simple = tr(Sigma) /
|G|^2`` (McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162), and the runs part for good at the
stability edge ``eta_k ~ 2 / lambda_max``. :func:`learnmech.theory.sgd_linear.sgd_second_moments` is
the exact version of this for linear regression.

Experiment. A teacher-student regression with label noise: ``x ~ N(0, I_d)``,
``y = f*(x) + sigma xi`` with ``f*`` a random two-layer tanh teacher (:mod:`learnmech.data.noisy_teacher`),
``n_train`` training examples; the student, a two-layer tanh MLP (SP), is trained by plain SGD on
``L = (1/2n) sum_i (f(x_i) - y_i)^2``. All runs read the *same stream of examples*: stream position
``p`` of seed ``s`` is training example ``randint(fold_in(key_s, p), n_train)`` (i.i.d. draws with
replacement), read in batches of ``k B0``. A step at batch ``k B0`` is ``k`` micro-batches of ``B0``
whose gradients ``optax.MultiSteps`` averages before one update with learning rate ``k eta0`` --
exactly SGD at batch ``k B0`` -- so every ``k`` lives in one vectorised ensemble advancing in
micro-batches (one compiled program for all batch sizes: the ensemble driver
:func:`learnmech.train.train` with ``sampling="stream"`` and ``accumulate="k"``,
:mod:`learnmech.train.sampling`). The shared stream and initialisation are common random numbers: two
curves differ by the effect of batching, not by a different draw of the noise, and a few seeds resolve
``D_k`` to a small fraction of 5% (its jackknife error over seeds is in the details).

Conventions. Examples seen ``e = steps x batch``. The compared loss is the excess risk
``L_ex = (1/2) E_x (f(x) - f*(x))^2`` on ``n_test`` held-out inputs with clean targets: the
label-noise floor ``sigma^2 / 2`` is common to every run and would dilute relative differences
(the discrepancy of the noisy held-out loss is reported too, without threshold).

Discrepancy ("area between the log-loss curves"). On the window ``[e0, E]``, ``e0 = window_start``,
``E = e0 2^octaves``,

    D_k = (1 / log(E / e0)) int_{log e0}^{log E} | log Lbar_k(e) - log Lbar_1(e) | d(log e),

with ``Lbar_k`` the mean over seeds of run ``k`` (:func:`learnmech.atlas.metrics.log_discrepancy`),
by the trapezoid rule in ``log e`` over the window's observation points where run ``k`` is between
steps (the points are multiples of ``e0``, so all of them when ``k B0`` divides ``e0``; a coarser
subset for the one larger batch). It is the average of ``|log(L_k / L_1)|`` over the window,
uniformly in ``log e``, and relative on purpose: the loss spans decades, an absolute difference
would see only the early, large losses, and ``|log(L_k / L_1)| ~ |L_k / L_1 - 1|``, so
``D_k <= 0.05`` reads "run ``k`` stays within about 5% of the base run across the window". A
diverged member makes ``D_k`` infinite.

Critical batch. ``B_simple(e)`` is measured on the base run at every observation with the
two-batch-size estimator (:func:`learnmech.observe.noise.noise_scale_two_batch`: ``B_small = noise_batch``,
``B_big = n_probe`` examples drawn i.i.d. from the training set; ``B_big`` must be well above
``B_simple`` or the estimate of ``|G|^2`` drowns in noise), numerator and denominator pooled over
seeds; ``B_crit`` is its geometric mean over the window (the same measure as ``D_k``).

Verdict (CLAIMS.md, operational form). The claim holds when every run with ``1 < k`` and
``k B0 <= B_crit`` has ``D_k <= 0.05`` ("for k up to the critical batch size, curves agree within
5%") and some run with ``k B0 >= 4 B_crit`` has ``D_k > 0.05`` ("beyond it they separate"; a
diverged run has separated). A ``D_k`` decides only when it is more than two jackknife errors from
5%; otherwise the verdict is inconclusive, as it is when a member of the base run diverged,
``B_simple`` was not resolved (a pooled ``|G|^2`` estimate not positive), the base excess risk fell
by less than ``min_decay`` over the window, or the ladder has no run on one of the two sides. The
ladder ``k = 1, 2, 4, 8, 12, 16, 24, 32`` (steps of 1.33-2 near the top) samples the range just
below ``B_crit``; ``k = 192`` is the run beyond ``4 B_crit``. :data:`RULES`: these cases as guards, in
this order (:func:`summarize` says when an undecided ``D_k`` counts), then the headline ``k B0 / B_crit``
of the first run with ``D_k`` resolved above 5% (it must exceed 1), ``max D_k`` below and beyond.

Learning rates. The base run is in the small-learning-rate (SDE) regime: ``eta0 / B0 = 5e-4``
(quick: ``B0 = 64, eta0 = 0.032``; full: ``B0 = 8, eta0 = 0.004``), a step 1/20 (quick) to 1/170
(full) of the stability edge ``2 / lambda_max ~ 0.67`` (``lambda_max`` of the initial loss Hessian,
2.4-3.2 over the seeds, measured once with :func:`learnmech.observe.sharpness`). The two presets
give the same curves: the micro-batch ``B0`` does not matter below ``B_crit``, as the rule says.

What bounds the rule. ``D_k`` grows about linearly with ``k`` and then jumps where the scaled learning
rate meets the stability edge, ``k B0 ~ 2 B0 / (eta0 lambda_max)``. ``B_simple`` rises from its value
at initialisation (the student's initial offset is a large, easily learned error) to a plateau set by
the learning rate, not by the task: once the fast directions are in balance with the noise,
``|G|^2 ~ (eta / 2) tr(H Sigma) / B``, so ``B_simple ~ 2 (B / eta) / h`` with
``h = tr(H Sigma) / tr(Sigma)`` (halving ``eta0 / B0`` doubles it). At ``k B0 = B_simple`` the linearly
scaled learning rate is then ``2 / h``, beyond the edge ``2 / lambda_max`` because ``h <= lambda_max``:
measured along such a run, ``B_simple`` cannot mark where the rule stops holding; it sits a factor
``lambda_max / h`` above the edge, so the rule can fail below ``B_crit`` while plain SGD obeys it
closely up to near the edge. Adam's square-root rule needs a preconditioner ``v ~ G^2 + Sigma / B``
that is noise-dominated coordinate by coordinate, which holds only at much smaller batches (a
condition of the Adam SDE of Malladi et al. 2022).
"""

from __future__ import annotations

import math

import jax
import numpy as np
from pydantic import Field, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import indexed, key
from learnmech.atlas.metrics import log_average, log_discrepancy
from learnmech.atlas.rules import Check, Guard, Rules, count_diverged, diverged, reached
from learnmech.data.noisy_teacher import iid_groups, noisy_teacher_split
from learnmech.increasing import Increasing
from learnmech.nets import MLP
from learnmech.observe import mse
from learnmech.observe.probes import noise_scale_probe
from learnmech.report import COLORS, finish_figure, new_figure, theory_line
from learnmech.theory.batch_scaling import scaled_hyperparameters
from learnmech.train import OptimizerSpec, train

__all__ = ["CLAIM", "Config", "RULES", "example_grid", "summarize"]

AGREE = 0.05  # CLAIMS.md: curves agree within 5% (D_k, area between log-loss curves) for k B0 <= B_crit
SEPARATE_FACTOR = 4.0  # operational "beyond it": some k B0 >= 4 B_crit must disagree by more than 5%
NOISE_SIGMAS = 2.0  # a D_k within this many jackknife errors of 5% cannot decide the verdict
DTYPE = "float32"  # the smallest judged differences (~1e-3 in log L) are far above float32 rounding
ADAM_BASE = {"b1": 0.99, "b2": 0.9999, "eps": 1e-8}  # k (1 - b1) < 1 up to k = 99
Ladder = Increasing(int, 2, "batch multipliers")  # and from 1 (Config._shapes)


class Config(ClaimConfig):
    seeds: int = Field(4, ge=2, le=256, description="initialisations and example streams (>= 2: jackknife)")
    ks: Ladder = Field((1, 2, 4, 8, 12, 16, 24, 32, 192),
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
    n_probe: int = Field(16384, ge=16, le=2**20,
                         description="B_big of the noise estimator, i.i.d. from the training set (>> B_simple)")
    noise_batch: int = Field(64, ge=1, le=4096, description="B_small of the two-batch-size noise estimator")
    min_decay: float = Field(2.0, gt=1.0, description="the base excess risk must fall by this factor over the window")
    adam: bool = Field(False, description="also run Adam with the square-root rule (reported, not judged)")
    adam_eta0: float = Field(3.5e-4, gt=0, le=1.0, description="base Adam learning rate at B0 (chosen for B0 = 8)")
    adam_ks: Ladder = Field((1, 2, 4, 8, 16, 32, 64), description="k of the Adam runs (k (1 - b1) < 1)")
    data_seed: int = 0

    @property
    def examples(self) -> int:
        """``E``, the examples seen by every run."""
        return self.window_start * 2**self.octaves

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
        if self.n_probe % self.noise_batch or self.n_probe < 2 * self.noise_batch:
            raise ValueError("n_probe: must be a multiple of noise_batch, at least twice it")
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


def _loss_observer(net: MLP, test):
    def observe(params, params0):
        x, clean, noisy = test
        out = net.apply(params, x)  # (n_test, 1)
        return {"excess": mse(out, clean), "test_loss": mse(out, noisy)}

    return observe


def _run(cfg: Config, optimizer: str, ks, eta0: float, with_noise: bool):
    """One ensemble over ``ks x seeds``: examples ``(T,)``, losses ``(K, seeds, T)``, noise ``(seeds, T)``.

    On the driver (:func:`learnmech.train.train`): every member reads its seed's stream in micro-batches
    of ``B0`` and updates every ``k`` of them (``sampling="stream"``, ``accumulate="k"``), ``k`` and the
    scaled hyperparameters linked on one grid axis. With ``with_noise`` the base run's (``k = 1``)
    gradient noise is a probe at every point.
    """
    net = MLP((cfg.d_in, cfg.width, 1), "tanh", "sp", dtype=DTYPE)
    train_set, test = noisy_teacher_split(jax.random.key(cfg.data_seed), cfg.n_train, cfg.n_test, cfg.d_in,
                                          noise=cfg.noise, noise_seed=cfg.data_seed, width=cfg.teacher_width,
                                          dtype=DTYPE)  # (X, Y); held out: (X, f*(X), Y)

    def loss(params, batch):
        return mse(net.apply(params, batch[0]), batch[1])

    base = {"learning_rate": eta0, **(ADAM_BASE if optimizer == "adam" else {})}
    scaled = scaled_hyperparameters(optimizer, base, np.asarray(ks))
    axis = {"k": np.asarray(ks, np.int32), **{name: np.asarray(v, DTYPE) for name, v in scaled.items()}}
    e = np.concatenate([[0], example_grid(cfg.window_start, cfg.octaves, cfg.per_octave, cfg.base_batch)])
    micro_steps = e // cfg.base_batch
    probes = [noise_scale_probe(loss, iid_groups(train_set, cfg.n_probe, cfg.noise_batch, seed=cfg.data_seed + 1),
                                steps=micro_steps, members=range(cfg.seeds))] if with_noise else []
    result = train(init=net.init, loss=loss, data=train_set, optimizer=OptimizerSpec(optimizer, base),
                   seeds=list(range(cfg.seeds)), grid={"k": axis}, steps=micro_steps,
                   observe=_loss_observer(net, test), batch_size=cfg.base_batch, sampling="stream",
                   accumulate="k", probes=probes, record_loss=False)
    losses = {name: result[name] for name in ("excess", "test_loss")}  # (K, seeds, T)
    noise = {name: result.probes[name].values for name in ("trace_cov", "grad_sq_norm") if name in result.probes}
    return e.astype(np.float64), losses, noise


def _own_points(e: np.ndarray, batch: int) -> np.ndarray:
    """The observation points where a run at this batch is between steps (``e`` a multiple of it)."""
    return (e % batch) == 0


def measure(cfg: Config, progress=None):
    def report(label, done):
        if progress is not None:
            progress(label, done, 1)

    report("hparams.linear-scaling (sgd)", 0)
    e, sgd, noise = _run(cfg, "sgd", cfg.ks, cfg.eta0, True)
    report("hparams.linear-scaling (sgd)", 1)
    out = {}
    for i, k in enumerate(cfg.ks):
        own = _own_points(e, k * cfg.base_batch)
        out[key("loss", i)] = Curve(e[own], sgd["excess"][i][:, own])  # excess risk, (seeds, T_k)
        out[key("test_loss", i)] = Curve(e[own], sgd["test_loss"][i][:, own])  # noisy held-out loss
    out["trace_cov"] = Curve(e, noise["trace_cov"])  # base run, (seeds, T)
    out["grad_sq_norm"] = Curve(e, noise["grad_sq_norm"])
    if cfg.adam:
        report("hparams.linear-scaling (adam)", 0)
        e_adam, adam, _ = _run(cfg, "adam", cfg.adam_ks, cfg.adam_eta0, False)
        report("hparams.linear-scaling (adam)", 1)
        for i, k in enumerate(cfg.adam_ks):
            own = _own_points(e_adam, k * cfg.base_batch)
            out[key("adam_loss", i)] = Curve(e_adam[own], adam["excess"][i][:, own])
    return out


# ---------------------------------------------------------------------------------------------
# Summary and verdict


def _mean(y: np.ndarray) -> np.ndarray:
    """Mean over seeds (axis 0); NaN (a diverged member) stays NaN."""
    return np.mean(y, axis=0)


def _batches(cfg: Config, ks) -> np.ndarray:
    """The batch ``k B0`` of each run of a ladder, ``(K,)``."""
    return np.asarray(ks, np.float64) * cfg.base_batch


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


def _b_simple(cfg: Config, measurement) -> tuple[Curve, float]:
    """Pooled ``B_simple(e)`` of the base run ``(1, T)`` and its geometric mean over the window (log-e trapezoid)."""
    tr, g2 = measurement["trace_cov"], measurement["grad_sq_norm"]  # (seeds, T)
    with np.errstate(all="ignore"):
        curve = Curve(tr.x, np.mean(tr.y, axis=0) / np.mean(g2.y, axis=0))  # ratio of seed means (McCandlish et al.)
    e, inside = _in_window(cfg, curve)
    if not np.all(np.isfinite(inside) & (inside > 0)):
        return curve, float("nan")
    return curve, float(np.exp(log_average(e, np.log(inside[0]))))


def _first_apart(batch: np.ndarray, D: np.ndarray) -> tuple[float, float]:
    """The last batch before the first with ``D > 5%``, and that first one (NaN if none)."""
    apart = np.flatnonzero(~(D <= AGREE))
    if apart.size == 0:
        return float(batch[-1]), float("nan")
    i = apart[0]
    return (float(batch[i - 1]) if i > 0 else float("nan")), float(batch[i])


def summarize(cfg: Config, prediction, measurement):
    """``D_k`` of every run (its jackknife error; the same on the noisy loss), ``B_simple(e)`` and
    ``B_crit``, and the quantities of the rule: sides of the ladder, resolved and undecided runs.

    A run's ``D_k`` is *resolved* above 5% when it exceeds it by more than ``NOISE_SIGMAS`` jackknife
    errors (a diverged run: ``D = inf``) and *undecided* when it is within them. An undecided run
    below ``B_crit`` counts only when no run there is resolved above (that fails the claim); one at
    ``k B0 >= 4 B_crit`` only when no run below or there is (those decide first).
    """
    runs, batch = indexed(measurement, "loss"), _batches(cfg, cfg.ks)
    D, err = np.array([_discrepancy(cfg, runs, i) for i in range(len(runs))]).T  # (K,), (K,)
    noisy = [_discrepancy(cfg, indexed(measurement, "test_loss"), i)[0] for i in range(len(runs))]
    b_simple, crit = _b_simple(cfg, measurement)
    base = _mean(_in_window(cfg, runs[0])[1])
    below = (batch <= crit) & (batch > cfg.base_batch)  # 1 < k, k B0 <= B_crit (none when B_crit is NaN)
    above = batch >= SEPARATE_FACTOR * crit
    over = D > AGREE + NOISE_SIGMAS * err  # resolved disagreement (a diverged run: D = inf, err = 0)
    unsure = np.abs(D - AGREE) <= NOISE_SIGMAS * err
    last_agree, first_apart = _first_apart(batch, D)
    out = {"diverged": count_diverged(runs[0]), "b_simple_resolved": float(math.isfinite(crit)), "B_crit": crit,
           "B_simple_at_init": float(b_simple.y[0, 0]), "B_simple_at_end": float(b_simple.y[0, -1]),
           "base_decay_in_window": float(base[0] / base[-1]), "min_decay": cfg.min_decay,
           "scaled_lr_at_B_crit": cfg.eta0 * crit / cfg.base_batch,
           "last_batch_within_5pct": last_agree, "first_batch_beyond_5pct": first_apart,
           "ladder_sides": float(below.any()) + float(above.any()),
           "undecided_below": 0.0 if over[below].any() else float(np.sum(unsure & below)),
           "undecided_above": 0.0 if over[below | above].any() else float(np.sum(unsure & above)),
           # the first resolved disagreement: at or below B_crit it fails the rule (inf: none)
           "first_resolved_disagreement_over_B_crit": float(batch[over][0] / crit) if over.any() else math.inf,
           "D_below_max": float(np.max(D[below])) if below.any() else math.nan,
           "D_above_max": float(np.max(D[above])) if above.any() else math.nan, "b_simple": b_simple}
    for b, d, de, dn in zip(batch.astype(int), D, err, noisy):
        out.update({key("D", b): float(d), key("D_err", b): float(de), key("D_noisy_loss", b): float(dn)})
    if cfg.adam:
        adam = indexed(measurement, "adam_loss")
        for i, b in enumerate(_batches(cfg, cfg.adam_ks).astype(int)):
            out[key("adam_D", b)] = float(_discrepancy(cfg, adam, i)[0])
    return out


RULES = Rules(
    guards=(diverged("the base run diverged; lower eta0"),
            Guard("B_simple resolved in the window", "b_simple_resolved", ">=", 1.0, fmt="g",
                  advice="a pooled estimate of |G|^2 was not positive in the window; raise n_probe or seeds"),
            reached("base excess-risk decay over the window", "base_decay_in_window", "min_decay",
                    "the base run barely trained in the window; train longer"),
            Guard("ladder sides covered", "ladder_sides", ">=", 2.0, fmt="g",
                  advice=f"need a run with 1 < k and k B0 <= B_crit and one with k B0 >= {SEPARATE_FACTOR:g} B_crit"),
            Guard("undecided D_k, 1 < k, k B0 <= B_crit", "undecided_below", "<=", 0.0, fmt="g",
                  advice=f"a D_k below B_crit is within {NOISE_SIGMAS:g} jackknife errors of 5%; raise seeds"),
            Guard(f"undecided D_k, k B0 >= {SEPARATE_FACTOR:g} B_crit", "undecided_above", "<=", 0.0, fmt="g",
                  advice=f"a D_k above {SEPARATE_FACTOR:g} B_crit is within {NOISE_SIGMAS:g} jackknife errors of "
                         "5%; raise seeds")),
    checks=(Check("k B0 / B_crit of the first run with D_k > 5%, k B0 <= B_crit",
                  "first_resolved_disagreement_over_B_crit", ">", 1.0),
            Check("max D_k, 1 < k, k B0 <= B_crit", "D_below_max", "<=", AGREE),
            Check(f"max D_k, k B0 >= {SEPARATE_FACTOR:g} B_crit", "D_above_max", ">", AGREE)),
)


# ---------------------------------------------------------------------------------------------
# Figure


def _per_batch(summary, name: str, batch: np.ndarray) -> np.ndarray:
    """The summary's ``name/<k B0>`` scalars over ``batch``, ``(K,)``."""
    return np.array([summary[key(name, b)] for b in batch.astype(int)])


def _plot_curves(ax, cfg: Config, measurement):
    """Mean over seeds of each run's excess risk; the base run dashed (the rule puts every run on it)."""
    import matplotlib.pyplot as plt

    runs = indexed(measurement, "loss")
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(runs)))  # one per k
    for i, (k, run) in enumerate(zip(cfg.ks[1:], runs[1:]), start=1):
        mean = _mean(run.y)
        keep = (run.x > 0) & np.isfinite(mean)
        label = f"k B0 = {k * cfg.base_batch}" + ("" if keep.sum() == (run.x > 0).sum() else " (diverged)")
        ax.plot(run.x[keep], mean[keep], color=colors[i], linewidth=1.1, label=label)
    keep = runs[0].x > 0
    reference = _mean(runs[0].y)[keep]
    theory_line(ax, runs[0].x[keep], reference, color="black",
                label=f"B0 = {cfg.base_batch}, eta0 = {cfg.eta0:g}: the rule puts every run here")
    ax.axvspan(cfg.window_start, cfg.examples, color="gray", alpha=0.08, label="compared window")
    finite = reference[np.isfinite(reference)]
    if finite.size:  # runs that blow up leave the frame instead of squashing the others
        ax.set_ylim(0.5 * finite.min(), 8 * finite.max())
    ax.set(xscale="log", yscale="log", xlabel="examples seen e",
           ylabel="excess risk (1/2) E (f - f*)^2, mean over seeds")
    ax.legend(fontsize=5.5, ncol=2)


def _plot_discrepancy(ax, cfg: Config, summary):
    """``D_k`` against the batch ``k B0``, the 5% threshold and the region ``k B0 >= 4 B_crit``."""
    batch, crit = _batches(cfg, cfg.ks)[1:], summary["B_crit"]
    D, err = _per_batch(summary, "D", batch), _per_batch(summary, "D_err", batch)
    finite = np.isfinite(D)
    top = max(0.2, float(np.max(D[finite], initial=0.2)))
    ax.errorbar(batch[finite], D[finite], yerr=err[finite], fmt="o-", color=COLORS[0], markersize=4,
                label="SGD, learning rate k eta0 (measured; jackknife error)")
    if (~finite).any():
        ax.plot(batch[~finite], np.full((~finite).sum(), 2 * top), "x", color=COLORS[3], label="diverged")
    ax.plot(batch, _per_batch(summary, "D_noisy_loss", batch), ".:", color=COLORS[2],
            label="same, noisy test loss (not judged)")
    if cfg.adam:
        adam_batch = _batches(cfg, cfg.adam_ks)[1:]
        Da = _per_batch(summary, "adam_D", adam_batch)
        ok = np.isfinite(Da)
        ax.plot(adam_batch[ok], Da[ok], "s--", color=COLORS[1], markersize=4,
                label="Adam, square-root rule (not judged)")
    theory_line(ax, batch, np.full(batch.size, 1e-4), color="gray", label="rule's prediction D = 0 (drawn at 1e-4)")
    ax.axhline(AGREE, color="black", linewidth=1.0, label="5%: agreement threshold")
    ax.axvline(crit, color=COLORS[3], linewidth=1.0, label=f"B_crit = B_simple = {crit:.0f}")
    ax.axvspan(SEPARATE_FACTOR * crit, max(batch[-1], SEPARATE_FACTOR * crit) * 1.5,
               color=COLORS[3], alpha=0.08, label=f">= {SEPARATE_FACTOR:g} B_crit: must separate")
    ax.set(xscale="log", yscale="log", ylim=(5e-5, 4 * top), xlabel="batch size k B0 (learning rate k eta0)",
           ylabel="D_k: mean |log L_k - log L_1| over the window")
    ax.legend(fontsize=5.5, loc="lower right")


def _plot_noise_scale(ax, cfg: Config, summary):
    """The pooled ``B_simple(e)`` of the base run and its window geometric mean ``B_crit``."""
    b_simple = summary["b_simple"]
    keep = b_simple.x > 0
    ax.plot(b_simple.x[keep], b_simple.y[0, keep], "o-", color=COLORS[4], markersize=3,
            label="B_simple = tr(Sigma) / |G|^2, base run (seeds pooled)")
    ax.axhline(summary["B_crit"], color=COLORS[3], linewidth=1.0, label="B_crit: geometric mean over the window")
    ax.axvspan(cfg.window_start, cfg.examples, color="gray", alpha=0.08, label="compared window")
    ax.set(xscale="log", yscale="log", xlabel="examples seen e", ylabel="simple noise scale (examples)")
    ax.legend(fontsize=6)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, (ax_l, ax_d, ax_b) = new_figure(3, title="hparams.linear-scaling: SGD at (k eta0, k B0), noisy tanh teacher")
    _plot_curves(ax_l, cfg, measurement)
    _plot_discrepancy(ax_d, cfg, summary)
    _plot_noise_scale(ax_b, cfg, summary)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="hparams.linear-scaling",
    pillar="hyperparameters",
    statement="Below the critical batch size B_simple, SGD at (k eta, k B) follows the loss-versus-examples curve "
              "of (eta, B) (Adam: the square-root rule); well beyond it the curves separate.",
    references=("Goyal et al. 2017, arXiv:1706.02677", "Mandt, Hoffman & Blei 2017, arXiv:1704.04289",
                "Jastrzebski et al. 2017, arXiv:1711.04623", "McCandlish et al. 2018, arXiv:1812.06162",
                "Li, Malladi & Arora 2021, arXiv:2102.12470", "Malladi et al. 2022, arXiv:2205.10287"),
    config=Config,
    presets={
        "tiny": {"seeds": 2, "ks": (1, 2, 4), "base_batch": 8, "eta0": 0.004, "window_start": 64, "octaves": 2,
                 "per_octave": 2, "d_in": 4, "width": 8, "teacher_width": 8, "n_train": 256, "n_test": 64,
                 "n_probe": 256, "noise_batch": 16, "adam": True, "adam_ks": (1, 2)},
        "quick": {},
        "full": {"seeds": 12, "base_batch": 8, "eta0": 0.004, "per_octave": 8, "adam": True,
                 "ks": (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 1536)},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("sgd", "batch size", "noise"),
)
