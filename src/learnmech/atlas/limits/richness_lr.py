"""limits.richness-lr — the optimal SGD learning rate scales as gamma^2 (lazy) and gamma^{2/L} (rich).

Statement (Atanasov, Meterez, Simon & Pehlevan 2024, arXiv:2410.04642): with the network's output
multiplied by ``1/gamma`` (muP / mean-field readout, the loss not rescaled), the loss-minimising SGD
learning rate is ``eta* ~ gamma^2`` for ``gamma << 1`` and ``eta* ~ gamma^{2/L}`` for ``gamma >> 1``,
``L`` the number of weight layers (the derivation, the convention for ``eta`` and why ``L`` counts
weight layers are in :mod:`learnmech.theory.richness`).

Network. ``g = learnmech.nets.MLP((64, N, ..., N, 10), "relu", "ntk", sigma=sqrt(2), bias=False)``
with ``L = depth`` weight matrices (every weight ``N(0, 1)``, forward multipliers
``sigma / sqrt(fan_in)``), and the trained function ``f(w; x) = (g(w; x) - g(w0; x)) / (gamma sqrt(N))``:
the extra ``1/sqrt(N)`` makes the readout mean-field (``1/N``), as in the paper's muP networks, so the
regimes change near ``gamma = 1`` at any width; subtracting the initial function (a stop-gradient
copy of ``w0`` carried with the parameters) starts every ``gamma`` at ``f = 0``, so the initial loss
is the zero-function loss ``L_0`` for every run (Chizat, Oyallon & Bach 2019 centre the same way).
ReLU without biases keeps ``g`` positively homogeneous of degree ``L``, the property the rich-side
argument uses. One global learning rate for every layer (the paper's SGD convention: its ``eta_0
gamma^2 N`` differs from the raw ``eta`` used here by a constant at fixed width).

Experiment. Digits (``learnmech.data.load_digits``: 8x8 images, normalised and centred pixels), a
pool of ``n_samples`` images, targets the centred one-hot codes (``regression_targets``), loss
``(1/2B) sum ||f - y||^2``; SGD on minibatches of ``batch_size`` drawn without replacement, a fixed
number of ``steps`` for every run; the loss after the last step on the whole pool, averaged over
seeds (a diverged seed makes the mean ``+inf``: a diverged run is data, ranked above every finite
loss). ``eta*`` per (depth, gamma) by :func:`learnmech.fit.optimal_learning_rate` (the grid
minimum refined by a parabola in ``(log2 eta, log L)``; where the loss falls until the runs diverge,
as it does on the lazy side, ``eta*`` is the last stable grid point). All ``gamma x eta x seed``
members of one depth are one vectorised ``learnmech.train.train`` program.

The learning-rate grid is centred by the prediction, as the paper centres its own ultra-rich sweeps
(``eta = eta_0 gamma^{2/L}``): at each ``gamma`` the grid is ``eta_pred(gamma) 2^k`` for
``k = lr_log2_min .. lr_log2_max`` (step ``lr_log2_step``), ``eta_pred`` from
:func:`learnmech.theory.richness.predicted_optimal_lr` with the crossover at ``gamma = 1`` and the
lazy scale ``A`` from the analytic NTK of ``g`` (:func:`lazy_edge_coefficient`: ``A gamma^2`` is the
lazy full-batch stability edge). The slope is measured by where the minimum sits on each ``gamma``'s
grid, so a wrong exponent moves the minimum across the grid; if it reaches the grid's first or last
point the guard makes the verdict inconclusive (never a pass). A fixed grid in raw ``eta`` would
need about 20 octaves per depth to bracket ``eta*`` over six decades of ``gamma``.

Judged sides, chosen before the claim's runs (after one pilot sweep on a raw grid that put the
crossover near ``gamma = 1``, as the theory says): the lazy side is ``gamma <= lazy_max = 0.01``,
the rich side ``gamma >= rich_min = 100`` (the lowest and the highest decade of the grid
``1e-3 .. 1e3``); the gammas between are trained and reported, not judged.

Verdict (CLAIMS.md): for each depth, the least-squares slope of ``log eta*`` against ``log gamma``
over the lazy side is within 0.3 of 2 and over the rich side within 0.3 of ``2/L``. Inconclusive when
a judged ``eta*`` sits at the edge of its grid or when the best mean loss at a judged ``gamma`` is
not below ``trained_below x L_0``. Reported: ``eta*`` per (depth, gamma), its offset from the
prediction in octaves, the lazy ``eta* / eta_edge`` (below 1: the optimum sits below the lazy
stability edge), the fraction of diverged members.

Why the lazy slope comes out so close to 2: at ``gamma << 1`` the function-space dynamics depend on
``eta`` and ``gamma`` only through ``eta / gamma^2`` (up to ``O(gamma)``), and the centred grids put
every lazy ``gamma`` at the same values of ``eta / gamma^2``: the losses over the grid coincide and
so do the minima (the loss panel of the figure). A different exponent would shift the minimum by
``(exponent - 2) log2(10)`` octaves per decade of ``gamma``.

Measured (December 2026, under load on the shared 2-core machine). ``quick`` (width 32, 512 images,
gammas 1e-3, 1e-2, 1, 1e2, 1e3, 10 learning rates per gamma, 2 seeds, 200 steps; 15-35 s under load,
about 10 s expected on a quiet machine): holds, slopes lazy 2.006 / 2.000 and rich 0.971 / 0.680
(depth 2 / 3; theory 2, 1 and 2/3); ``eta*`` sits 1.1-2.4 octaves below the grid centre, the lazy one
at 0.45 (depth 2) and 0.30 (depth 3) of the analytic lazy stability edge. ``full`` (width 64, 1,024
images, 13 gammas at half-decade steps, 14 learning rates, 3 seeds, 400 steps; 205 s under load):
holds, lazy 1.998 / 2.025, rich 1.009 / 0.738. ``tiny`` (width 8, 64 images, 30 steps, one depth;
about 3 s) is usually inconclusive (too short to train below half the zero-function loss).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.hparams.mup_transfer import grid_edge_guard
from learnmech.atlas.keys import key
from learnmech.atlas.metrics import log_slope
from learnmech.atlas.rules import Check, Guard, Rules
from learnmech.data.real import load_digits, regression_targets
from learnmech.fit.transfer_fit import mean_loss, optimal_learning_rate
from learnmech.increasing import Increasing
from learnmech.nets import MLP
from learnmech.observe import mse
from learnmech.report import COLORS, finish_figure, new_figure, theory_line
from learnmech.theory.richness import lazy_edge_coefficient, lr_exponents, predicted_optimal_lr
from learnmech.train import OptimizerSpec, train
from learnmech.width_transfer import log2_grid

__all__ = ["CLAIM", "Config", "digits_task", "student"]

SLOPE_TOL = 0.3  # CLAIMS.md: both fitted slopes within +/- 0.3 of the prediction
MIN_DECADES = 3.0  # CLAIMS.md: gamma on a log grid over at least 3 decades
DTYPE = "float32"  # the smallest centred output change, ~gamma = 1e-3 of g ~ 0.3, is far above float32 rounding
DIGITS = 1797  # images in scikit-learn's digits


class Config(ClaimConfig):
    seeds: int = Field(2, ge=1, le=64, description="independent initialisations (and minibatch orders)")
    depths: Increasing(int, 1, "depths") = Field((2, 3), description="weight layers L of the MLPs, increasing, >= 2")
    width: int = Field(32, ge=4, le=1024, description="hidden units per hidden layer")
    gammas: Increasing(float, 4, "gammas") = Field((1e-3, 1e-2, 1.0, 1e2, 1e3),
                                                   description="richness values, increasing, spanning >= 3 decades")
    lazy_max: float = Field(1e-2, gt=0, description="lazy side: gamma <= lazy_max (judged)")
    rich_min: float = Field(1e2, gt=0, description="rich side: gamma >= rich_min (judged)")
    lr_log2_min: float = Field(-4.0, ge=-20, le=0, description="grid start, octaves relative to the predicted eta*")
    lr_log2_max: float = Field(0.5, ge=0, le=20, description="grid end, octaves relative to the predicted eta*")
    lr_log2_step: float = Field(0.5, gt=0, le=4, description="grid step in octaves")
    steps: int = Field(200, ge=1, le=100_000, description="SGD steps, the same for every run")
    batch_size: int = Field(32, ge=1, le=DIGITS, description="minibatch size")
    n_samples: int = Field(512, ge=8, le=DIGITS, description="pool of digits images")
    trained_below: float = Field(0.5, gt=0, lt=1, description="the best mean loss at a judged gamma must end below "
                                 "this fraction of the zero-function loss, else inconclusive")
    data_seed: int = 0

    @model_validator(mode="after")
    def _sides(self):
        if self.depths[0] < 2 or self.depths[-1] > 6:
            raise ValueError(f"depths: each must be 2 .. 6 weight layers, got {self.depths}")
        g = np.asarray(self.gammas)
        if math.log10(g[-1] / g[0]) < MIN_DECADES - 1e-9:
            raise ValueError(f"gammas: must span at least {MIN_DECADES:g} decades, got {g[0]:g} .. {g[-1]:g}")
        if self.lazy_max >= self.rich_min:
            raise ValueError(f"lazy_max: must be below rich_min = {self.rich_min:g}, got {self.lazy_max:g}")
        if np.sum(g <= self.lazy_max) < 2 or np.sum(g >= self.rich_min) < 2:
            raise ValueError(f"gammas: need at least 2 values <= lazy_max = {self.lazy_max:g} and 2 >= rich_min = "
                             f"{self.rich_min:g}, got {tuple(self.gammas)}")
        if len(self.offsets) < 3:
            raise ValueError("lr_log2_min, lr_log2_max, lr_log2_step: need at least 3 learning rates per gamma")
        if self.batch_size > self.n_samples:
            raise ValueError(f"batch_size: must be at most n_samples = {self.n_samples}, got {self.batch_size}")
        return self

    @property
    def offsets(self) -> np.ndarray:
        """Grid points in octaves relative to the prediction, ``(K,)``."""
        return np.log2(log2_grid(self.lr_log2_min, self.lr_log2_max, self.lr_log2_step))

    def side(self, gamma: float) -> str:
        return "lazy" if gamma <= self.lazy_max else "rich" if gamma >= self.rich_min else "middle"


# ---------------------------------------------------------------------------------------------
# Experiment


def digits_task(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """``n_samples`` digits images (a ``data_seed`` permutation) ``(n, 64)`` and centred one-hot targets ``(n, 10)``."""
    X, y = load_digits(dtype=jnp.float32)
    idx = np.random.default_rng(cfg.data_seed).permutation(DIGITS)[: cfg.n_samples]
    return np.asarray(X)[idx], np.asarray(regression_targets(y[idx], 10, dtype=jnp.float32))


def student(cfg: Config, depth: int) -> MLP:
    """``g``: the ReLU MLP with ``depth`` weight layers, NTK parameterised, no biases (module docstring)."""
    return MLP((64,) + (cfg.width,) * (depth - 1) + (10,), "relu", "ntk", sigma=math.sqrt(2.0), bias=False,
               dtype=DTYPE)


@functools.lru_cache(maxsize=16)
def _top_ntk_eigenvalue(cfg: Config, depth: int) -> float:
    """``lambda_max(Theta / n)`` of ``g``'s analytic NTK on the pool (cached: predict and measure both need it)."""
    X, _ = digits_task(cfg)
    theta = student(cfg, depth).kernels(np.asarray(X, np.float64), dtype=np.float64).ntk  # (n, n)
    return float(np.linalg.eigvalsh(theta / len(X))[-1])


def _lazy_coefficient(cfg: Config, depth: int) -> float:
    return lazy_edge_coefficient(_top_ntk_eigenvalue(cfg, depth), cfg.width)


def _centres(cfg: Config, depth: int) -> np.ndarray:
    """The predicted ``eta*`` at every gamma, ``(G,)``."""
    return predicted_optimal_lr(np.asarray(cfg.gammas), depth, _lazy_coefficient(cfg, depth))


def _learning_rates(cfg: Config, centres: np.ndarray) -> np.ndarray:
    """``(G, K)``: each gamma's grid, ``eta_pred 2^k``."""
    return centres[:, None] * 2.0 ** cfg.offsets[None, :]


def predict(cfg: Config):
    out = {}
    for L in cfg.depths:
        a = _lazy_coefficient(cfg, L)
        out[key("eta_star", L)] = Curve(np.asarray(cfg.gammas), predicted_optimal_lr(np.asarray(cfg.gammas), L, a))
        out[key("lazy_edge", L)] = Curve(np.asarray(cfg.gammas), a * np.asarray(cfg.gammas) ** 2)
        out[key("slope_lazy", L)], out[key("slope_rich", L)] = lr_exponents(L)
    return out


def _sweep(cfg: Config, depth: int, data, lrs: np.ndarray, progress=None) -> np.ndarray:
    """Final pool losses ``(G, K, seeds)`` of one depth, every member in one ``train`` call."""
    net, n_sqrt = student(cfg, depth), math.sqrt(cfg.width)
    G, K = lrs.shape

    def init(key):
        params = net.init(key)
        return {"net": params, "net0": params}  # net0: w0, never updated (its gradient is stopped)

    def loss(params, batch, hp):
        x, y = batch
        g0 = net.apply(jax.lax.stop_gradient(params["net0"]), x)  # (B, 10)
        f = (net.apply(params["net"], x) - g0) / (hp["gamma"] * n_sqrt)  # (B, 10), centred, mean-field readout
        return mse(f, y)

    gammas = np.repeat(np.asarray(cfg.gammas, np.float32), K)  # (G K,)
    report = None if progress is None else (lambda d, t: progress(f"limits.richness-lr (depth {depth})", d, t))
    result = train(init=init, loss=loss, data=data, optimizer=OptimizerSpec("sgd", {"learning_rate": 1.0}),
                   seeds=list(range(cfg.seeds)), steps=[cfg.steps], batch_size=cfg.batch_size,
                   grid={"run": {"gamma": gammas, "learning_rate": lrs.reshape(-1).astype(np.float32)}},
                   progress=report)
    return np.asarray(result["loss"][:, :, -1], np.float64).reshape(G, K, cfg.seeds)


def measure(cfg: Config, progress=None):
    X, Y = digits_task(cfg)
    data = (jnp.asarray(X, DTYPE), jnp.asarray(Y, DTYPE))
    out = {"zero_loss": float(0.5 * np.sum(np.asarray(Y, np.float64) ** 2) / len(Y))}
    for L in cfg.depths:
        lrs = _learning_rates(cfg, _centres(cfg, L))  # (G, K)
        losses = _sweep(cfg, L, data, lrs, progress)  # (G, K, seeds)
        for i in range(len(cfg.gammas)):
            out[key("loss", L, i)] = Curve(lrs[i], losses[i].T)  # (seeds, K) against eta
    return out


# ---------------------------------------------------------------------------------------------
# Verdict and figure


def _side_slope(gammas: np.ndarray, eta: np.ndarray, usable: np.ndarray) -> float:
    return log_slope(gammas[usable], eta[usable]) if usable.sum() >= 2 else math.nan


def _depth_summary(cfg: Config, L: int, prediction, measurement, out: dict) -> None:
    gammas, zero = np.asarray(cfg.gammas), float(measurement["zero_loss"])
    side = np.array([cfg.side(g) for g in gammas])
    eta, edge, best = np.empty(gammas.size), np.zeros(gammas.size, bool), np.empty(gammas.size)
    for i in range(gammas.size):
        curve = measurement[key("loss", L, i)]
        means = mean_loss(curve.y.T)  # (K,)
        eta[i], edge[i] = optimal_learning_rate(curve.x, means)
        best[i] = np.min(means) / zero
        out[key("log2_eta_star", L, i)] = math.log2(eta[i]) if np.isfinite(eta[i]) else math.nan
        out[key("offset_octaves", L, i)] = math.log2(eta[i] / prediction[key("eta_star", L)].y[0, i])
        out[key("at_edge", L, i)] = float(edge[i])
        out[key("best_loss_ratio", L, i)] = float(best[i])
        out[key("diverged_fraction", L, i)] = float(np.mean(~np.isfinite(curve.y)))
    judged = side != "middle"
    usable = ~edge & np.isfinite(eta)
    lazy_exp, rich_exp = lr_exponents(L)
    slope_lazy = _side_slope(gammas, eta, usable & (side == "lazy"))
    slope_rich = _side_slope(gammas, eta, usable & (side == "rich"))
    lazy = side == "lazy"
    out.update({key("slope_lazy", L): slope_lazy, key("slope_rich", L): slope_rich,
                key("lazy_offset", L): abs(slope_lazy - lazy_exp), key("rich_offset", L): abs(slope_rich - rich_exp),
                key("lazy_eta_over_edge", L): float(np.mean(eta[lazy] / prediction[key("lazy_edge", L)].y[0, lazy]))})
    out["edges"] += float(np.sum(edge[judged]))
    out["unjudged_edges"] += float(np.sum(edge[~judged]))
    out["worst_loss_ratio"] = max(out["worst_loss_ratio"], float(best[judged].max()))


def summarize(cfg: Config, prediction, measurement):
    """Per (depth, gamma): ``log2 eta*``, its offset from the prediction, the edge flag, the best loss over
    ``L_0``; per depth: the two side slopes and their distances from 2 and ``2/L``; the worst over depths."""
    out = {"edges": 0.0, "unjudged_edges": 0.0, "worst_loss_ratio": 0.0, "trained_below": cfg.trained_below}
    for L in cfg.depths:
        _depth_summary(cfg, L, prediction, measurement, out)
    for s in ("lazy", "rich"):  # NaN (a side without two usable gammas) propagates to the check: it fails
        out[f"{s}_offset_max"] = float(np.max([out[key(f"{s}_offset", L)] for L in cfg.depths]))
    return out


RULES = Rules(
    guards=(grid_edge_guard("judged gammas"),
            Guard("best mean loss / zero-function loss (max over judged gammas)", "worst_loss_ratio", "<=",
                  "trained_below", fmt=".3f",
                  advice="at some judged gamma no learning rate trained far enough; train longer")),
    checks=(Check("|slope - 2/L| of log eta* vs log gamma, rich side (max over depths)", "rich_offset_max", "<=",
                  SLOPE_TOL, fmt=".3f"),
            Check("|slope - 2| of log eta* vs log gamma, lazy side (max over depths)", "lazy_offset_max", "<=",
                  SLOPE_TOL, fmt=".3f")),
)


def _plot_depth(ax, cfg: Config, L: int, color, prediction, measurement, summary) -> None:
    g = np.asarray(cfg.gammas)
    for i, gi in enumerate(g):  # each gamma's grid as a thin vertical bar
        x = measurement[key("loss", L, i)].x
        ax.plot([gi, gi], [x[0], x[-1]], color="gray", linewidth=3, alpha=0.25, solid_capstyle="butt",
                label="learning-rate grid" if i == 0 else None)
    eta = np.array([2.0 ** summary[key("log2_eta_star", L, i)] for i in range(g.size)])
    edge = np.array([summary[key("at_edge", L, i)] > 0 for i in range(g.size)])
    ax.plot(g[~edge], eta[~edge], "o", color=color, label="measured eta*")
    if edge.any():
        ax.plot(g[edge], eta[edge], "o", color=color, fillstyle="none", label="eta* at the grid edge")
    theory_line(ax, g, prediction[key("eta_star", L)].y[0], color="black", label="prediction (grid centre)")
    lazy_exp, rich_exp = lr_exponents(L)
    for s, expo, style in (("lazy", lazy_exp, "-"), ("rich", rich_exp, "-.")):
        pick = np.array([cfg.side(v) == s for v in g]) & ~edge
        slope = summary[key(f"slope_{s}", L)]
        if pick.sum() >= 2 and np.isfinite(slope):
            x0, y0 = np.exp(np.mean(np.log(g[pick]))), np.exp(np.mean(np.log(eta[pick])))
            ax.plot(g[pick], y0 * (g[pick] / x0) ** slope, style, color=color, linewidth=1.2,
                    label=f"{s} fit: slope {slope:.2f} (theory {expo:.2g})")
    ax.axvspan(g[0] / 1.5, cfg.lazy_max * 1.5, color=COLORS[2], alpha=0.08, label="judged sides")
    ax.axvspan(cfg.rich_min / 1.5, g[-1] * 1.5, color=COLORS[2], alpha=0.08)
    ax.set(xscale="log", yscale="log", xlabel="richness gamma (output multiplier 1/gamma)",
           ylabel="learning rate eta (raw SGD step)", title=f"depth L = {L} weight layers")
    ax.legend(fontsize=6.5, loc="upper left")


def _plot_losses(ax, cfg: Config, L: int, measurement) -> None:
    zero = float(measurement["zero_loss"])
    for i, gi in enumerate(cfg.gammas):
        curve = measurement[key("loss", L, i)]
        with np.errstate(all="ignore"):
            y = np.minimum(mean_loss(curve.y.T) / zero, 2.0)  # diverged runs drawn at the top
        ax.plot(cfg.offsets, y, "o-", markersize=3, color=COLORS[i % len(COLORS)], label=f"gamma = {gi:.3g}")
    ax.set(xlabel="log2 (eta / predicted eta*)", ylabel="final loss / zero-function loss (2 = diverged)",
           title=f"losses after {cfg.steps} steps, depth {L}", ylim=(0, 2.05))
    ax.legend(fontsize=6.5)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, axes = new_figure(len(cfg.depths) + 1, title="limits.richness-lr: eta* vs gamma, ReLU MLPs on digits (SGD)")
    for j, L in enumerate(cfg.depths):
        _plot_depth(axes[j], cfg, L, COLORS[j], prediction, measurement, summary)
    _plot_losses(axes[-1], cfg, cfg.depths[-1], measurement)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="limits.richness-lr",
    pillar="tractable limits",
    statement="With the output multiplied by 1/gamma, the optimal SGD learning rate scales as gamma^2 for gamma << 1 "
              "(lazy) and as gamma^(2/L) for gamma >> 1 (rich), L the number of weight layers.",
    references=("Atanasov, Meterez, Simon & Pehlevan 2024, arXiv:2410.04642",),
    config=Config,
    presets={
        "tiny": {"seeds": 1, "depths": (2,), "width": 8, "gammas": (1e-3, 1e-2, 1e2, 1e3), "lr_log2_min": -3.0,
                 "lr_log2_max": 1.0, "lr_log2_step": 1.0, "steps": 30, "n_samples": 64, "batch_size": 16},
        "quick": {},
        "full": {"seeds": 3, "width": 64, "steps": 400, "lr_log2_min": -5.0, "lr_log2_max": 1.5,
                 "lr_log2_step": 0.5, "n_samples": 1024,
                 "gammas": tuple(float(10.0 ** (k / 2)) for k in range(-6, 7))},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("lazy-rich", "learning-rate"),
)
