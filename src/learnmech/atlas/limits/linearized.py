"""limits.linearized — wide networks train like their linearisation.

Statement: an NTK-parameterised ReLU MLP trained by full-batch gradient descent on
``L = (1/2n) sum_i (f(x_i) - y_i)^2`` follows, more and more closely as its width grows, the
trajectory of its linearisation around initialisation,

    train:  f_k = y + (I - eta Theta / n)^k (f_0 - y)
    test:   f_k(x) = f_0(x) + Theta(x, X) Theta^{-1} (I - (I - eta Theta / n)^k) (y - f_0),

(Jacot, Gabriel & Hongler 2018, arXiv:1806.07572; Lee et al. 2019, arXiv:1902.06720), with
``Theta`` either (i) the *empirical* NTK of that network at initialisation or (ii) the
*analytic* infinite-width NTK, and ``f_0`` in both cases the network's own initial outputs.
Time is ``t = eta * steps``; the exact discrete-GD form of :mod:`learnmech.theory.linearized` is
used, so no flow-vs-GD error enters.

Experiment. Inputs on the sphere of radius ``sqrt(d)``; targets from a fixed random tanh
teacher (:mod:`learnmech.data.teacher_mlp`). For each width ``w``, ``MLP((d, w, .., w, 1), "relu",
"ntk", sigma=sqrt(2), bias=False, dtype="float32")`` is trained by SGD on the full batch with
``eta = eta_fraction * n / lambda_max`` (``lambda_max`` of the analytic NTK on the train set;
``eta_fraction < 2`` is stable for the linearised model), for the number of steps after which
the *expected* linearised loss (below) has fallen by ``loss_drop``. The outputs on train and test
points are recorded at log-spaced steps.

Kernel convention. The analytic NNGP and NTK are the network's own, :meth:`learnmech.nets.MLP.kernels`
(checked against wide networks in the tests): ``learnmech.nets.MLP`` with ``parameterization="ntk"``
trains ``w ~ N(0, 1)`` behind the multiplier ``sigma/sqrt(fan_in)``, so its NTK has
``sigma_w^2 = sigma^2`` in every layer and does not depend on the width. (Were ``sigma`` in the
initialisation instead, ``w ~ N(0, sigma^2)`` behind ``1/sqrt(fan_in)``, the same function would have
an NTK smaller by ``sigma^2``: half the NTK parameterisation's for ReLU.)

Discrepancy (the verdict's metric). For one network and one prediction ``f^lin``,

    D = sqrt( int ||f_t - f^lin_t||^2 dlog t ) / sqrt( int ||f^lin_t - f_0||^2 dlog t ),

with ``||.||`` over all train and test points and the integrals over the trained time span in
``log t`` (every decade of the dynamics counts alike; trapezoid sums on the log-spaced observation
times, so ``D`` does not depend on how many are taken): the distance between the network and the
prediction relative to the distance the predicted function travels. ``D`` is averaged over seeds
at each width. Expected rates: the analytic prediction inherits the ``O(w^{-1/2})`` fluctuation of
the empirical NTK around its limit; the empirical prediction is off only by the kernel's motion
during training, ``O(w^{-1/2})`` by Lee et al.'s bound and ``O(1/w)`` by the perturbative analysis
of Dyer & Gur-Ari 2019 (arXiv:1909.11304).

Verdict (CLAIMS.md): for both predictions, the log-log slope of the mean ``D`` against width is
``<= -0.35`` and the mean ``D`` at the largest width is below 5%; holds only if all four hold (the
headline is ``D`` at the largest width with the analytic NTK). Inconclusive when a member diverged
or the widest networks did not reduce their loss by at least ``MIN_LOSS_REDUCTION``.

``predict`` holds what the theory gives without any network: the expected training loss of the
infinite-width linearised model, averaging ``f_0`` over its Gaussian-process prior
``N(0, K_NNGP)`` (``E[L_k] = (1/2n) (||A y||^2 + tr(A K A^T))``, ``A = (I - eta Theta/n)^k``).
The two linearised trajectories need each network's ``f_0`` and ``Theta_0``, which are measured at
initialisation, so ``measure`` evaluates them (with the same theory functions) beside the network.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.ticker import NullLocator
from pydantic import Field

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.limits.common import relative_frobenius, sphere_inputs
from learnmech.atlas.metrics import linear_fit
from learnmech.atlas.rules import Check, Guard, Rules, count_diverged, diverged
from learnmech.data import teacher_mlp_apply, teacher_mlp_init
from learnmech.increasing import Increasing
from learnmech.nets import MLP
from learnmech.observe import mse_loss
from learnmech.observe.ntk import empirical_ntk
from learnmech.report import COLORS, finish_figure, new_figure, theory_line
from learnmech.theory.linearized import linearized_loss_gd, linearized_test_outputs_gd, linearized_train_outputs_gd
from learnmech.train import OptimizerSpec, log_schedule, train

__all__ = ["CLAIM", "Config", "discrepancy", "network"]

SLOPE_MAX = -0.35  # CLAIMS.md
DISCREPANCY_MAX = 0.05  # CLAIMS.md
MIN_LOSS_REDUCTION = 0.1  # inconclusive unless the widest networks' loss fell at least 10x: the run fitted the data
SIGMA = math.sqrt(2.0)  # He scale for ReLU: the pre-activation variance stays 2 |x|^2/d = 2 through the layers
TEACHER = {"width": 32, "depth": 2, "activation": "tanh"}  # a smooth target of O(1) size
KINDS = ("empirical", "analytic")
SHOWN = (0, 1)  # train and test points (indices within each set) whose trajectories are stored for the figure


class Config(ClaimConfig):
    widths: Increasing(int, 3, "widths") = Field((64, 128, 256, 512, 1024, 2048),
                                                  description="hidden widths, increasing (a slope is fitted)")
    depth: int = Field(2, ge=1, le=6, description="hidden layers")
    d: int = Field(8, ge=2, le=256, description="input dimension (inputs on the sphere of radius sqrt(d))")
    n_train: int = Field(32, ge=4, le=1024)
    n_test: int = Field(32, ge=1, le=1024)
    eta_fraction: float = Field(1.0, gt=0, lt=2, description="eta = eta_fraction * n_train / lambda_max(analytic NTK)")
    loss_drop: float = Field(1e-3, gt=0, lt=1, description="train until the expected linearised loss fell by this factor")
    max_steps: int = Field(20_000, ge=1, le=1_000_000)
    points: int = Field(30, ge=5, le=1000, description="observation points (log-spaced steps)")
    data_seed: int = 0


# ------------------------------------------------------------------------------------ task and theory


def _task(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(n_train + n_test, d)`` on the sphere and train targets ``(n_train,)``, float32 values in float64."""
    x = sphere_inputs(cfg.data_seed, cfg.n_train + cfg.n_test, cfg.d).astype(np.float32)  # (N, d)
    teacher = teacher_mlp_init(jax.random.key(cfg.data_seed), cfg.d, width=TEACHER["width"], depth=TEACHER["depth"],
                               dtype=jnp.float32)
    y = np.asarray(teacher_mlp_apply(teacher, jnp.asarray(x[: cfg.n_train]), TEACHER["activation"]))[:, 0]  # (n,)
    return x.astype(np.float64), y.astype(np.float32).astype(np.float64)


def network(cfg: Config, width: int) -> MLP:
    """The network trained at ``width``: ``depth`` hidden ReLU layers, NTK parameterisation, no biases."""
    return MLP((cfg.d,) + (width,) * cfg.depth + (1,), "relu", "ntk", sigma=SIGMA, bias=False, dtype="float32")


def _sqrt_psd(k: np.ndarray) -> np.ndarray:
    lam, v = np.linalg.eigh(k)
    return (v * np.sqrt(np.clip(lam, 0.0, None))) @ v.T


def _expected_loss(theta: np.ndarray, nngp: np.ndarray, y: np.ndarray, steps, eta: float) -> np.ndarray:
    """``E_{f_0 ~ N(0, K)}[L_k]`` by the multi-output form: outputs ``[0 | K^{1/2}]`` against targets ``[y | 0]``.

    ``E||A (f_0 - y)||^2 = ||A y||^2 + ||A K^{1/2}||_F^2``, and the loss of several outputs sums them.
    """
    n = y.shape[0]
    f0 = np.concatenate([np.zeros((n, 1)), _sqrt_psd(nngp)], axis=1)  # (n, 1 + n)
    targets = np.concatenate([y[:, None], np.zeros((n, n))], axis=1)  # (n, 1 + n)
    return linearized_loss_gd(theta, f0, targets, steps, eta)


def _plan(cfg: Config):
    """Everything the theory fixes before training: data, kernels, ``eta`` and the observation steps."""
    x, y = _task(cfg)
    n = cfg.n_train
    nngp, ntk = network(cfg, cfg.widths[0]).kernels(x, dtype=np.float64)  # the same at every width (NTK param.)
    theta = ntk[:n, :n]
    eta = cfg.eta_fraction * n / float(np.linalg.eigvalsh(theta)[-1])
    ratio = _expected_loss(theta, nngp[:n, :n], y, np.arange(cfg.max_steps + 1), eta)
    ratio = ratio / ratio[0]
    reached = np.flatnonzero(ratio <= cfg.loss_drop)
    horizon = int(reached[0]) if reached.size else cfg.max_steps
    steps = log_schedule(max(horizon, 1), cfg.points)
    return {"x": x, "y": y, "nngp": nngp, "ntk": ntk, "eta": eta, "steps": steps}


def predict(cfg: Config):
    plan = _plan(cfg)
    n = cfg.n_train
    t = plan["eta"] * plan["steps"]
    loss = _expected_loss(plan["ntk"][:n, :n], plan["nngp"][:n, :n], plan["y"], plan["steps"], plan["eta"])
    return {"loss": Curve(t, loss)}


# ------------------------------------------------------------------------------------ experiment


def _log_time_weights(t: np.ndarray) -> np.ndarray:
    """Trapezoid weights of ``integral d(log t)`` on the sampled times; 0 for ``t = 0`` (where ``f = f^lin = f_0``)."""
    w = np.zeros(t.shape)
    positive = np.flatnonzero(t > 0)
    if positive.size > 1:
        w[positive] = np.gradient(np.log(t[positive]))  # interior: half the two neighbouring gaps
        w[positive[[0, -1]]] /= 2.0  # ends: half of one gap
    return w


def discrepancy(t, f, f_lin) -> float:
    """``D = sqrt(int ||f_t - f^lin_t||^2 dlog t) / sqrt(int ||f^lin_t - f_0||^2 dlog t)`` (module docstring).

    ``t`` ``(T,)`` are the observation times, ``f`` and ``f_lin`` ``(T, points)`` the network and the
    predicted outputs with ``f_lin[0] = f_0``; the integrals are trapezoid sums in ``log t``.
    """
    w = _log_time_weights(np.asarray(t, np.float64))
    f, f_lin = np.asarray(f, np.float64), np.asarray(f_lin, np.float64)
    gap = np.sum((f - f_lin) ** 2, axis=1)  # (T,)
    travel = np.sum((f_lin - f_lin[0]) ** 2, axis=1)  # (T,)
    return float(np.sqrt(np.sum(w * gap) / np.sum(w * travel)))


def _linearized(theta: np.ndarray, f0: np.ndarray, y: np.ndarray, steps, eta: float) -> np.ndarray:
    """Predicted outputs ``(steps, N)`` on train then test points from the kernel ``theta`` ``(N, N)``."""
    n = y.shape[0]
    train_out = linearized_train_outputs_gd(theta[:n, :n], f0[:n], y, steps, eta)
    test_out = linearized_test_outputs_gd(theta[:n, :n], theta[n:, :n], f0[:n], f0[n:], y, steps, eta)
    return np.concatenate([train_out, test_out], axis=1)


def _train_width(cfg: Config, plan, width: int, progress):
    """Outputs ``(seeds, T, N)`` on train then test points, the empirical NTK ``(seeds, T, N, N)`` and the loss.

    The NTK is an observable of the trainer (the layer-structured product of
    :func:`learnmech.observe.ntk.empirical_ntk` costs about two training steps), so ``Theta_0`` is
    the kernel of exactly the parameters that the trajectory starts from, and its drift comes free.
    """
    net = network(cfg, width)
    x = jnp.asarray(plan["x"], jnp.float32)  # (N, d): train then test points
    n = cfg.n_train
    y = jnp.asarray(plan["y"][:, None], jnp.float32)  # (n, 1)

    def observe(params, params0):
        return {"f": net.apply(params, x)[:, 0], "ntk": empirical_ntk(net.apply, params, x)}  # (N,), (N, N)

    report = None if progress is None else (lambda done, total: progress(f"limits.linearized w={width}", done, total))
    result = train(
        init=net.init, loss=mse_loss(net.apply), data=(x[:n], y),
        optimizer=OptimizerSpec("sgd", {"learning_rate": plan["eta"]}), seeds=list(range(cfg.seeds)),
        steps=plan["steps"], observe=observe, progress=report,
    )
    return (np.asarray(result["f"], np.float64), np.asarray(result["ntk"], np.float64),
            np.asarray(result["loss"], np.float64))


def measure(cfg: Config, progress=None):
    plan = _plan(cfg)
    n = cfg.n_train
    t = plan["eta"] * plan["steps"]
    shown = list(SHOWN) + [n + i for i in SHOWN if i < cfg.n_test]  # train points, then test points
    widths = np.asarray(cfg.widths, np.float64)
    out = {}
    disc = {kind: np.full((cfg.seeds, len(widths)), np.nan) for kind in KINDS}
    kernel_error, kernel_drift = np.full((cfg.seeds, len(widths)), np.nan), np.full((cfg.seeds, len(widths)), np.nan)
    for j, width in enumerate(cfg.widths):
        f, ntk, loss = _train_width(cfg, plan, width, progress)  # (seeds, T, N), (seeds, T, N, N), (seeds, T)
        kernel_error[:, j] = relative_frobenius(ntk[:, 0], plan["ntk"])
        kernel_drift[:, j] = relative_frobenius(ntk[:, -1], ntk[:, 0])  # NaN for a diverged member
        for kind in KINDS:
            kernels = ntk[:, 0] if kind == "empirical" else [plan["ntk"]] * cfg.seeds
            preds = [_linearized(k, f[s, 0], plan["y"], plan["steps"], plan["eta"]) for s, k in enumerate(kernels)]
            disc[kind][:, j] = [discrepancy(t, f[s], p) for s, p in enumerate(preds)]  # NaN if diverged
            out[key("outputs", width, kind)] = Curve(t, preds[0][:, shown].T)
        out[key("outputs", width, "network")] = Curve(t, f[0][:, shown].T)
        out[key("loss", width)] = Curve(t, loss)
    for kind in KINDS:
        out[key("discrepancy", kind)] = Curve(widths, disc[kind])
    out["kernel_error"] = Curve(widths, kernel_error)
    out["kernel_drift"] = Curve(widths, kernel_drift)
    return out


# ------------------------------------------------------------------------------------ verdict and figure


def _log_fit(x, y) -> tuple[float, float]:
    """``(slope, intercept)`` of ``log y`` against ``log x``; NaN where ``y`` is not positive and finite."""
    ly = np.log(y)
    return linear_fit(np.log(x), ly) if np.all(np.isfinite(ly)) else (math.nan, math.nan)


def summarize(cfg: Config, prediction, measurement):
    """Per prediction: the log-log slope of the seed-mean ``D`` against width (and its intercept, for
    the figure), ``D`` at each width and at the largest; the kernel's error at init and its drift
    during training (reported, no threshold); the loss reduction of the widest networks."""
    curves = [measurement[key("discrepancy", kind)] for kind in KINDS]
    widest = measurement[key("loss", cfg.widths[-1])].y  # (seeds, T)
    expected = prediction["loss"].y[0]
    out = {"diverged": count_diverged(*curves),
           key("loss_reduction", "widest"): float(np.mean(widest[:, -1] / widest[:, 0])),
           key("loss_reduction", "expected"): float(expected[-1] / expected[0])}
    for kind, c in zip(KINDS, curves):
        out[key("slope", kind)], out[key("intercept", kind)] = _log_fit(c.x, c.mean)
        out[key("largest", kind)] = float(c.mean[-1])
        out.update({key("discrepancy", kind, f"w={int(w)}"): float(v) for w, v in zip(c.x, c.mean)})
    for name in ("kernel_error", "kernel_drift"):
        k = measurement[name]
        out[key(name, "slope")] = _log_fit(k.x, k.mean)[0]
        out[key(name, "largest")] = float(k.mean[-1])
    return out


def _slope_check(kind: str) -> Check:
    return Check(f"log-log slope of discrepancy vs width ({kind} NTK)", key("slope", kind), "<=", SLOPE_MAX, fmt=".3f")


def _largest_check(kind: str) -> Check:
    return Check(f"discrepancy at the largest width ({kind} NTK)", key("largest", kind), "<", DISCREPANCY_MAX,
                 fmt=".2%")


RULES = Rules(
    guards=(diverged("a member diverged; lower eta_fraction"),
            Guard("loss reduction (widest)", key("loss_reduction", "widest"), "<=", MIN_LOSS_REDUCTION, fmt=".3g",
                  advice="the widest networks did not fit the data; train longer")),
    checks=(_largest_check("analytic"), _slope_check("empirical"), _largest_check("empirical"),
            _slope_check("analytic")),
)


def _trajectories(ax, measurement, width: int, n_shown_train: int, legend: bool) -> None:
    net, emp, ana = (measurement[key("outputs", width, k)] for k in ("network", "empirical", "analytic"))
    t = net.x[1:]  # step 0 has t = 0, off the log axis
    for i in range(net.y.shape[0]):
        c = COLORS[i % len(COLORS)]
        first_of_set = i in (0, n_shown_train)
        where = "train" if i < n_shown_train else "test"
        ax.plot(t, net.y[i, 1:], color=c, linewidth=1.6, alpha=0.85, label=f"network, {where} points" if first_of_set else None)
        theory_line(ax, t, ana.y[i, 1:], color="black", label="linearised, analytic NTK" if i == 0 else None)
        ax.plot(t, emp.y[i, 1:], color=c, linestyle=":", linewidth=1.8, label="linearised, empirical NTK" if i == 0 else None)
    ax.set(xscale="log", xlabel="time t = eta x steps", ylabel="network output f_t(x)", title=f"width {width} (seed 0)")
    if legend:
        ax.legend(fontsize=6.5, loc="best", framealpha=0.7)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, (ax_small, ax_large, ax_d) = new_figure(3, title="limits.linearized: NTK-parameterised ReLU MLP vs its linearisation")
    n_shown_train = sum(1 for i in SHOWN if i < cfg.n_train)
    _trajectories(ax_small, measurement, cfg.widths[0], n_shown_train, legend=True)
    _trajectories(ax_large, measurement, cfg.widths[-1], n_shown_train, legend=False)
    for kind, c, marker in zip(KINDS, (COLORS[0], COLORS[3]), ("o", "s")):
        d = measurement[key("discrepancy", kind)]
        ax_d.scatter(np.repeat(d.x[None], d.y.shape[0], 0), d.y, color=c, s=8, alpha=0.35)
        slope, intercept = summary[key("slope", kind)], summary[key("intercept", kind)]
        ax_d.plot(d.x, d.mean, marker=marker, color=c, linewidth=1.4, label=f"D, {kind} NTK (mean over seeds)")
        ax_d.plot(d.x, np.exp(intercept) * d.x**slope, color=c, linestyle="--", linewidth=1.0, label=f"fit: slope {slope:.2f}")
    k = measurement["kernel_error"]
    ax_d.plot(k.x, k.mean, color="gray", linestyle="-.", linewidth=1.0, label="||Theta_0 - Theta_inf|| / ||Theta_inf||")
    k = measurement["kernel_drift"]
    ax_d.plot(k.x, k.mean, color="gray", linestyle=(0, (1, 1)), linewidth=1.0, label="||Theta_end - Theta_0|| / ||Theta_0||")
    ax_d.axhline(DISCREPANCY_MAX, color="gray", linewidth=0.8, linestyle=":", label="5% threshold")
    ax_d.set(xscale="log", yscale="log", xlabel="hidden width", ylabel="relative distance")
    ax_d.set_xticks(k.x, [str(int(w)) for w in k.x])
    ax_d.xaxis.set_minor_locator(NullLocator())
    ax_d.legend(fontsize=6.5, framealpha=0.7)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="limits.linearized",
    pillar="tractable limits",
    statement="NTK-parameterised MLPs trained by gradient descent follow their linearisation around initialisation, "
              "with the empirical NTK at init and with the analytic infinite-width NTK, increasingly closely as width grows.",
    references=("Jacot, Gabriel & Hongler 2018, arXiv:1806.07572", "Lee et al. 2019, arXiv:1902.06720"),
    config=Config,
    presets={
        "tiny": {"seeds": 2, "widths": (16, 32, 64), "depth": 1, "d": 4, "n_train": 8, "n_test": 4,
                 "max_steps": 200, "points": 6},
        "quick": {"seeds": 2, "widths": (128, 512, 2048), "points": 12},
        "full": {"seeds": 6, "widths": (64, 128, 256, 512, 1024, 2048, 4096), "points": 40},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
)
