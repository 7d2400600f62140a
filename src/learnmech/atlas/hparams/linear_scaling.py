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
``y = f*(x) + sigma xi`` with ``f*`` a random two-layer tanh teacher (:mod:`learnmech.data`),
``n_train`` training examples; the student, a two-layer tanh MLP (SP), is trained by plain SGD on
``L = (1/2n) sum_i (f(x_i) - y_i)^2``. All runs read the *same stream of examples*: stream position
``p`` of seed ``s`` is training example ``randint(fold_in(key_s, p), n_train)`` (i.i.d. draws with
replacement), read in batches of ``k B0``. A step at batch ``k B0`` is ``k`` micro-batches of ``B0``
whose gradients ``optax.MultiSteps`` averages before one update with learning rate ``k eta0`` --
exactly SGD at batch ``k B0`` -- so every ``k`` lives in one vectorised ensemble advancing in
micro-batches (one compiled program for all batch sizes;
:class:`learnmech.train.stream.StreamProgram`). The shared
stream and initialisation are common random numbers: two curves differ by the effect of batching,
not by a different draw of the noise, and a few seeds resolve ``D_k`` to a small fraction of 5%
(its jackknife error over seeds is in the details). The trainer's own minibatches
(:func:`learnmech.train.train`) draw without replacement by sorting the data set every step, which
on a CPU costs milliseconds per step at batch sizes of a few; this claim therefore drives
:class:`learnmech.train.MemberProgram` (the trainer's member step) with its own sampler.

Conventions. Examples seen ``e = steps x batch``. The compared loss is the excess risk
``L_ex = (1/2) E_x (f(x) - f*(x))^2`` on ``n_test`` held-out inputs with clean targets: the
label-noise floor ``sigma^2 / 2`` is common to every run and would dilute relative differences
(the discrepancy of the noisy held-out loss is reported too, without threshold).

Discrepancy ("area between the log-loss curves"). On the window ``[e0, E]``, ``e0 = window_start``,
``E = e0 2^octaves``,

    D_k = (1 / log(E / e0)) int_{log e0}^{log E} | log Lbar_k(e) - log Lbar_1(e) | d(log e),

with ``Lbar_k`` the mean over seeds of run ``k`` (:func:`learnmech.atlas.metrics.log_discrepancy`),
by the trapezoid rule in ``log e`` over the window's observation points where run ``k`` is between steps (the points are multiples of ``e0``,
so all of them when ``k B0`` divides ``e0``; a coarser subset for the one larger batch). It is the average of
``|log(L_k / L_1)|`` over the window, uniformly in ``log e``, and relative on purpose: the loss spans
decades, an absolute difference would see only the early, large losses, and
``|log(L_k / L_1)| ~ |L_k / L_1 - 1|``, so ``D_k <= 0.05`` reads "run ``k`` stays within about 5% of
the base run across the window". A diverged member makes ``D_k`` infinite.

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
below ``B_crit``; ``k = 192`` is the run beyond ``4 B_crit``. When the agreement part fails, the
headline is ``k B0 / B_crit`` of the first run that disagrees (it must exceed 1).

Learning rates. The base run is in the small-learning-rate (SDE) regime: ``eta0 / B0 = 5e-4``
(quick: ``B0 = 64, eta0 = 0.032``; full: ``B0 = 8, eta0 = 0.004``), a step 1/20 (quick) to 1/170
(full) of the stability edge ``2 / lambda_max ~ 0.67`` (``lambda_max`` of the initial loss Hessian,
2.4-3.2 over the seeds, measured once with :func:`learnmech.observe.sharpness`). The two presets
give the same curves: the micro-batch ``B0`` does not matter below ``B_crit``, as the rule says.

What the measurement shows (quick; full within a few % of it, 12 seeds). ``D_k`` grows about
linearly with ``k`` (0.001 at ``k B0 = 128``, 0.01 at 512, 0.039 at 1024) and then jumps: the run at
1536 (learning rate 0.77) blows up transiently (``D = 0.51``), the run at 2048 diverges. That is the
stability edge of the scaled learning rate, ``k B0 = 2 B0 / (eta0 lambda_max) ~ 1300``. ``B_simple``
rises from ~13 at initialisation (the student's initial offset is a large, easily learned error) to
a plateau of ~2000-2500, and ``B_crit ~ 2000``: the rule fails at ``0.74 B_crit``. The plateau is set
by the learning rate, not by the task: once the fast directions are in balance with the noise,
``|G|^2 ~ (eta / 2) tr(H Sigma) / B``, so ``B_simple ~ 2 (B / eta) / h`` with
``h = tr(H Sigma) / tr(Sigma)`` (halving ``eta0 / B0`` doubles it, measured). At ``k B0 = B_simple``
the linearly scaled learning rate is then ``2 / h``, beyond the edge ``2 / lambda_max`` because
``h <= lambda_max``: measured along such a run, ``B_simple`` cannot mark where the rule stops
holding; it sits a factor ``lambda_max / h`` (here ~1.6) above the edge. Early in training
``B_simple`` is 100 times smaller and the rule holds far beyond it. So the verdict *fails*, because
the simple noise scale along the run and the critical batch of the rule differ by a factor set by
the curvature, while the rule itself (``D_k`` of a few 1e-3 up to a quarter of the edge, 4% at three
quarters of it) is well obeyed by plain SGD. Adam with the square-root rule (full preset, ``B0 = 8``,
``eta0 = 3.5e-4``) agrees within 5% only up to ``k = 2`` (``D = 0.025`` at 16, 0.07 at 32, 0.15 at
64): its preconditioner ``v ~ G^2 + Sigma / B`` is noise-dominated coordinate by coordinate only at
much smaller batches (at ``B0 = 64`` already ``D = 0.08`` at ``k = 2``), a condition of the Adam SDE
of Malladi et al. 2022.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve, Verdict
from learnmech.atlas.hparams.linear_scaling_figure import plot_curves, plot_discrepancy, plot_noise_scale
from learnmech.atlas.metrics import log_average, log_discrepancy
from learnmech.data import teacher_mlp_regression
from learnmech.nets import MLP
from learnmech.observe import mse
from learnmech.observe.noise import noise_scale_two_batch
from learnmech.report import finish_figure, new_figure
from learnmech.theory.batch_scaling import scaled_hyperparameters
from learnmech.train import OptimizerSpec, ensemble_members
from learnmech.train.stream import StreamProgram, advance_ensemble

__all__ = [
    "CLAIM",
    "Config",
    "example_grid",
]

AGREE = 0.05  # CLAIMS.md: curves agree within 5% (D_k, area between log-loss curves) for k B0 <= B_crit
SEPARATE_FACTOR = 4.0  # operational "beyond it": some k B0 >= 4 B_crit must disagree by more than 5%
NOISE_SIGMAS = 2.0  # a D_k within this many jackknife errors of 5% cannot decide the verdict
DTYPE = "float32"  # the smallest judged differences (~1e-3 in log L) are far above float32 rounding
ADAM_BASE = {"b1": 0.99, "b2": 0.9999, "eps": 1e-8}  # k (1 - b1) < 1 up to k = 99

class Config(ClaimConfig):
    seeds: int = Field(4, ge=2, le=256, description="initialisations and example streams (>= 2: jackknife)")
    ks: tuple[int, ...] = Field((1, 2, 4, 8, 12, 16, 24, 32, 192),
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
    adam_ks: tuple[int, ...] = Field((1, 2, 4, 8, 16, 32, 64), description="k of the Adam runs (k (1 - b1) < 1)")
    data_seed: int = 0

    @field_validator("ks", "adam_ks")
    @classmethod
    def _ladder(cls, ks: tuple[int, ...]) -> tuple[int, ...]:
        if len(ks) < 2 or ks[0] != 1 or any(a >= b for a, b in itertools.pairwise(ks)):
            raise ValueError("must start at 1 and increase strictly, at least 2 values")
        return ks

    @property
    def examples(self) -> int:
        """``E``, the examples seen by every run."""
        return self.window_start * 2**self.octaves

    @model_validator(mode="after")
    def _shapes(self):
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
        out["adam/discrepancy"] = Curve(adam_batch, np.zeros_like(adam_batch))
        out["adam/learning_rate"] = Curve(adam_batch, adam_lr)
    return out


# ---------------------------------------------------------------------------------------------
# Experiment


def _task(cfg: Config):
    """Training set ``(n_train, d)``, ``(n_train, 1)``; held-out inputs with clean and noisy targets."""
    X, F, _ = teacher_mlp_regression(jax.random.key(cfg.data_seed), cfg.n_train + cfg.n_test, cfg.d_in,
                                     width=cfg.teacher_width, depth=2, activation="tanh", dtype=DTYPE)
    X, F = np.asarray(X), np.asarray(F)  # (n, d), (n, 1) clean teacher outputs
    noise = np.random.default_rng(cfg.data_seed).standard_normal(F.shape).astype(DTYPE)  # (n, 1)
    Y = F + cfg.noise * noise  # y = f*(x) + sigma xi
    n = cfg.n_train
    return (jnp.asarray(X[:n]), jnp.asarray(Y[:n])), (jnp.asarray(X[n:]), jnp.asarray(F[n:]), jnp.asarray(Y[n:]))


def _loss_observer(net: MLP):
    def observe(params, test):
        x, clean, noisy = test
        out = net.apply(params, x)  # (n_test, 1)
        return {"excess": mse(out, clean), "test_loss": mse(out, noisy)}

    return observe


def _noise_groups(cfg: Config, train_set):
    """``n_probe`` training examples drawn with replacement (i.i.d. from the training set), in groups."""
    index = np.random.default_rng(cfg.data_seed + 1).integers(0, cfg.n_train, cfg.n_probe)  # (P,)
    G = cfg.n_probe // cfg.noise_batch
    return jax.tree.map(lambda a: jnp.asarray(a)[index].reshape(G, cfg.noise_batch, *a.shape[1:]), train_set)


def _run(cfg: Config, optimizer: str, ks, eta0: float, with_noise: bool):
    """One ensemble over ``ks x seeds``: examples ``(T,)``, losses ``(K, seeds, T)``, noise ``(seeds, T)``.

    With ``with_noise`` the base run's (``k = 1``) gradient noise is measured at every point.
    """
    net = MLP((cfg.d_in, cfg.width, 1), "tanh", "sp", dtype=DTYPE)
    train_set, test = _task(cfg)

    def loss(params, batch):
        return mse(net.apply(params, batch[0]), batch[1])

    base = {"learning_rate": eta0, **(ADAM_BASE if optimizer == "adam" else {})}
    hp_np, seed_index = ensemble_members({"k": list(ks)}, list(range(cfg.seeds)))  # grid-major: k = 1 first
    hp = {name: jnp.asarray(v, DTYPE) for name, v in scaled_hyperparameters(optimizer, base, hp_np["k"]).items()}
    hp["k"] = jnp.asarray(hp_np["k"], jnp.int32)
    program = StreamProgram(net.init, loss, OptimizerSpec(optimizer, base), batch_size=cfg.base_batch)
    e = np.concatenate([[0], example_grid(cfg.window_start, cfg.octaves, cfg.per_octave, cfg.base_batch)])

    def noise(params, groups):
        ns = noise_scale_two_batch(loss, params, groups)
        return {"trace_cov": ns.trace_cov, "grad_sq_norm": ns.grad_sq_norm}

    probe = (np.arange(cfg.seeds), noise, _noise_groups(cfg, train_set)) if with_noise else None
    obs = advance_ensemble(program, hp, seed_index, train_set, test, e // cfg.base_batch, _loss_observer(net), probe)
    losses = {name: obs[name].reshape(len(ks), cfg.seeds, -1) for name in ("excess", "test_loss")}
    return e.astype(np.float64), losses, {name: obs[name] for name in ("trace_cov", "grad_sq_norm") if name in obs}


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
        out[f"loss/{i}"] = Curve(e[own], sgd["excess"][i][:, own])  # excess risk, (seeds, T_k)
        out[f"test_loss/{i}"] = Curve(e[own], sgd["test_loss"][i][:, own])  # noisy held-out loss
    out["trace_cov"] = Curve(e, noise["trace_cov"])  # base run, (seeds, T)
    out["grad_sq_norm"] = Curve(e, noise["grad_sq_norm"])
    if cfg.adam:
        report("hparams.linear-scaling (adam)", 0)
        e_adam, adam, _ = _run(cfg, "adam", cfg.adam_ks, cfg.adam_eta0, False)
        report("hparams.linear-scaling (adam)", 1)
        for i, k in enumerate(cfg.adam_ks):
            own = _own_points(e_adam, k * cfg.base_batch)
            out[f"adam/loss/{i}"] = Curve(e_adam[own], adam["excess"][i][:, own])
    summary = _summary(cfg, out)
    out["discrepancy"] = Curve(summary["batch"], summary["D"])  # (1, K); inf where a run diverged
    out["b_simple"] = Curve(e, summary["b_simple_curve"])  # pooled over seeds, (1, T)
    return out


# ---------------------------------------------------------------------------------------------
# Verdict and figure


def _mean(y: np.ndarray) -> np.ndarray:
    """Mean over seeds (axis 0); NaN (a diverged member) stays NaN."""
    return np.mean(y, axis=0)


def _in_window(cfg: Config, curve: Curve):
    """``(x, y)`` of a curve restricted to the window ``[e0, E]``."""
    inside = (curve.x >= cfg.window_start) & (curve.x <= cfg.examples)
    return curve.x[inside], curve.y[:, inside]


def _discrepancy(cfg: Config, measurement, name: str, i: int) -> tuple[float, float]:
    """``D`` of run ``i`` against run 0 on run ``i``'s points of the window, and its jackknife error over seeds."""
    e, run = _in_window(cfg, measurement[f"{name}/{i}"])
    base = measurement[f"{name}/0"]
    at = np.searchsorted(base.x, e)
    if not np.array_equal(base.x[np.minimum(at, base.x.size - 1)], e):
        raise ValueError(f"{name}/{i}: a point of run {i} is not a point of the base run")
    base = base.y[:, at]  # (seeds, T_i)
    if not np.all(np.isfinite(_mean(base))):
        return float("nan"), 0.0  # the base run diverged: nothing to compare with (the judge says so)
    D = log_discrepancy(e, _mean(run), _mean(base))
    S = run.shape[0]
    drop = np.array([log_discrepancy(e, _mean(np.delete(run, j, 0)), _mean(np.delete(base, j, 0))) for j in range(S)])
    err = math.sqrt((S - 1) / S * np.sum((drop - drop.mean()) ** 2)) if np.all(np.isfinite(drop)) else 0.0
    return D, err


def _b_simple(cfg: Config, measurement) -> tuple[np.ndarray, float]:
    """Pooled ``B_simple(e)`` of the base run ``(T,)`` and its geometric mean over the window (log-e trapezoid)."""
    tr, g2 = measurement["trace_cov"], measurement["grad_sq_norm"]  # (seeds, T)
    with np.errstate(all="ignore"):
        curve = np.mean(tr.y, axis=0) / np.mean(g2.y, axis=0)  # ratio of seed means (McCandlish et al.)
    e, inside = _in_window(cfg, Curve(tr.x, curve))
    if not np.all(np.isfinite(inside) & (inside > 0)):
        return curve, float("nan")
    return curve, float(np.exp(log_average(e, np.log(inside[0]))))


def _summary(cfg: Config, measurement) -> dict:
    K = len(cfg.ks)
    D, err = np.array([_discrepancy(cfg, measurement, "loss", i) for i in range(K)]).T  # (K,), (K,)
    noisy = np.array([_discrepancy(cfg, measurement, "test_loss", i)[0] for i in range(K)])
    curve, crit = _b_simple(cfg, measurement)
    base = _mean(_in_window(cfg, measurement["loss/0"])[1])
    out = {"batch": np.asarray(cfg.ks, np.float64) * cfg.base_batch, "D": D, "D_err": err, "D_noisy": noisy,
           "b_crit": crit, "b_simple_curve": curve, "decay": float(base[0] / base[-1])}
    if cfg.adam:
        adam = np.array([_discrepancy(cfg, measurement, "adam/loss", i) for i in range(len(cfg.adam_ks))]).T
        out["D_adam"], out["D_adam_err"] = adam
    return out


def _first_apart(batch: np.ndarray, D: np.ndarray) -> tuple[float, float]:
    """The last batch before the first with ``D > 5%``, and that first one (NaN if none)."""
    apart = np.flatnonzero(~(D <= AGREE))
    if apart.size == 0:
        return float(batch[-1]), float("nan")
    i = apart[0]
    return (float(batch[i - 1]) if i > 0 else float("nan")), float(batch[i])


def judge(cfg: Config, prediction, measurement) -> Verdict:
    s = _summary(cfg, measurement)
    batch, D, err, crit = s["batch"], s["D"], s["D_err"], s["b_crit"]
    last_agree, first_apart = _first_apart(batch, D)
    details = {"B_crit": crit, "B_simple_at_init": float(s["b_simple_curve"][0]),
               "B_simple_at_end": float(s["b_simple_curve"][-1]), "base_decay_in_window": s["decay"],
               "scaled_lr_at_B_crit": cfg.eta0 * crit / cfg.base_batch,
               "last_batch_within_5pct": last_agree, "first_batch_beyond_5pct": first_apart}
    for b, d, de, dn in zip(batch, D, err, s["D_noisy"]):
        details.update({f"D/{b:g}": float(d), f"D_err/{b:g}": float(de), f"D_noisy_loss/{b:g}": float(dn)})
    if cfg.adam:
        for k, d in zip(cfg.adam_ks, s["D_adam"]):
            details[f"adam_D/{k * cfg.base_batch:g}"] = float(d)

    def inconclusive(metric, value, threshold, reason):
        return Verdict(status="inconclusive", metric=metric, value=float(value), threshold=float(threshold),
                       reason=reason, details=details)

    if np.any(np.isnan(measurement["loss/0"].y)):
        return inconclusive("diverged members of the base run", 1.0, 0.0, "the base run diverged; lower eta0")
    if not math.isfinite(crit):
        return inconclusive("B_simple resolved in the window", 0.0, 1.0,
                            "a pooled estimate of |G|^2 was not positive in the window; raise n_probe or seeds")
    if s["decay"] < cfg.min_decay:
        return inconclusive("base excess-risk decay over the window", s["decay"], cfg.min_decay,
                            "the base run barely trained in the window; train longer")
    below = (batch <= crit) & (batch > cfg.base_batch)
    above = batch >= SEPARATE_FACTOR * crit
    if not below.any() or not above.any():
        return inconclusive("ladder sides covered", float(below.any()) + float(above.any()), 2.0,
                            f"B_crit = {crit:.0f}: need a run with 1 < k and k B0 <= B_crit and one with k B0 >= "
                            f"{SEPARATE_FACTOR:g} B_crit; batches {batch.tolist()}")
    # A D_k decides only when it is more than NOISE_SIGMAS jackknife errors from the threshold.
    over = D > AGREE + NOISE_SIGMAS * err  # resolved disagreement (a diverged run: D = inf, err = 0)
    unsure = np.abs(D - AGREE) <= NOISE_SIGMAS * err
    agree, apart = float(np.max(D[below])), float(np.max(D[above]))
    details.update({"D_below_max": agree, "D_above_max": apart})
    reason = (f"B_crit = {crit:.0f} (B_simple, window geometric mean; {details['B_simple_at_init']:.1f} at init); "
              f"max D over 1 < k, k B0 <= B_crit: {agree:.4g} (want <= {AGREE:g}); max D over k B0 >= "
              f"{SEPARATE_FACTOR:g} B_crit: {apart:.4g} (want > {AGREE:g}); D first exceeds 5% between "
              f"k B0 = {last_agree:g} and {first_apart:g}")
    if over[below].any():  # headline: how far below B_crit the first resolved disagreement sits (finite)
        first = float(batch[below & over][0] / crit)
        details["first_resolved_disagreement_over_B_crit"] = first
        return Verdict(status="fails", metric="k B0 / B_crit of the first run with D_k > 5%, k B0 <= B_crit",
                       value=first, threshold=1.0, reason=reason, details=details)
    if unsure[below].any():
        return inconclusive("max D_k, 1 < k, k B0 <= B_crit", agree, AGREE,
                            f"a D_k below B_crit is within {NOISE_SIGMAS:g} jackknife errors of 5%: {reason}")
    if over[above].any():
        return Verdict(status="holds", metric="max D_k, 1 < k, k B0 <= B_crit", value=agree, threshold=AGREE,
                       reason=reason, details=details)
    if unsure[above].any():
        return inconclusive(f"max D_k, k B0 >= {SEPARATE_FACTOR:g} B_crit", apart, AGREE,
                            f"a D_k above {SEPARATE_FACTOR:g} B_crit is within {NOISE_SIGMAS:g} jackknife errors "
                            f"of 5%: {reason}")
    return Verdict(status="fails", metric=f"max D_k, k B0 >= {SEPARATE_FACTOR:g} B_crit", value=apart,
                   threshold=AGREE, reason=reason, details=details)


def plot(cfg: Config, prediction, measurement, verdict=None):
    fig, (ax_l, ax_d, ax_b) = new_figure(3, title="hparams.linear-scaling: SGD at (k eta0, k B0), noisy tanh teacher")
    s = _summary(cfg, measurement)
    plot_curves(ax_l, cfg, measurement)
    plot_discrepancy(ax_d, cfg, s, AGREE, SEPARATE_FACTOR)
    plot_noise_scale(ax_b, cfg, measurement, s)
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
        "quick": {},
        "full": {"seeds": 12, "base_batch": 8, "eta0": 0.004, "per_octave": 8, "adam": True,
                 "ks": (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 1536)},
    },
    predict=predict, measure=measure, judge=judge, plot=plot,
    tags=("sgd", "batch size", "noise"),
)
