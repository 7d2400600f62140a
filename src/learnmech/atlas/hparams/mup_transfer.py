"""hparams.mup-transfer — the loss-minimising learning rate transfers across width under muP.

Statement (Yang et al. 2022, "Tensor Programs V", arXiv:2203.03466): in the maximal-update
parameterisation (muP) the loss-minimising learning rate ``eta*`` of a network trained with Adam
does not depend on its width ``n``; in the standard parameterisation (SP) it shrinks roughly like
``1/n``.

Why, in one line each (TP-V, Section 5 and Table 3). With Adam an update moves every entry of a
weight matrix by about ``eta`` whatever the gradient's size. A hidden ``n x n`` matrix ``W`` whose
update is aligned with its input ``x`` (entries ``O(1)``) then changes the pre-activation by
``(dW) x ~ eta n``: SP must take ``eta ~ 1/n`` to keep that ``O(1)``, and so must the readout.
muP (``learnmech.nets.MLP`` parameterisation ``"mup-adam"``) scales the hidden and output
learning rates by ``1/m``, ``m = n / base_width``, and the readout's initial variance by an extra
``1/m``, so that every layer's update stays ``O(1)`` at the same ``eta`` for every ``n``: the
loss as a function of ``eta`` converges as ``n`` grows, and so does its minimiser. At
``n = base_width`` the two parameterisations are the same network.

Experiment. Task: regression on a random teacher (``learnmech.data.teacher_mlp_regression``,
``d_in`` Gaussian inputs, a tanh teacher of width 64 and depth 3, no label noise) with a pool of
``n_samples`` examples. Students: ``MLP((d_in, n, ..., n, 1), "relu", p, base_width=widths[0],
bias=False)`` with ``hidden_layers`` hidden layers (at least 2, so that a hidden ``n x n`` matrix
exists), ``p`` in ``{"mup-adam", "sp"}``; Adam (optax defaults ``b1 = 0.9, b2 = 0.999,
eps = 1e-8``) with per-parameter learning rates ``eta * lr_multiplier`` from
``MLP.lr_multipliers``; ``steps`` minibatch steps of ``batch_size`` examples drawn from the pool.
One vectorised ``learnmech.train.train`` call trains every learning rate x seed of one width and
parameterisation; at ``n = base_width`` the SP run serves muP too (the two networks' layer
scalings are identical there, which is checked, not assumed). Each call is one XLA compilation
(about 4 s of CPU whatever the width), which sets the cost: the quick preset uses the two ends of
an 8x span (3 compilations), the full preset five widths and a half-octave grid.

Which loss. The *training* loss on the whole pool after the last step,
``L = (1/2N) sum_i (f(x_i) - y_i)^2`` (TP-V also tunes on the training loss), averaged over seeds.
``steps x batch_size`` is about six passes over the pool: at good learning rates the loss ends at
3-7% of the zero-function loss ``L_0 = (1/2N) sum_i y_i^2``, far below it but far from zero, and
the minimum over ``eta`` is a sharp bowl. (A run that trained to ~0 at many learning rates would
leave a flat, ill-defined minimum.) The judge calls a run inconclusive when the best mean loss is
not below ``trained_below x L_0``.

What the runs show. The optimum of the base width sits 0.2-0.75 octaves above that of wider nets
under muP in every regime tried while choosing this one (widths 32 and 256, 3-4 seeds); most when
training is short and full-batch (full batch on 1,024 examples for 30 steps: 0.75), least with
minibatches (32 from 512 for 100 steps, the presets: 0.23, SP slope -1.14). On the full preset
(widths 32..512, 8 seeds, half-octave grid) muP's ``log2 eta*`` drifts steadily with slope -0.12
per octave of width (-6.05, -6.34, -6.18, -6.41, -6.60), nine times flatter than SP's -1.09 but
not zero: over the 16x span the shift is 0.55 and the claim fails by 0.05, while over the 8x span
of the quick preset (0.23) it holds. TP-V tunes at base widths of a few hundred, where the
finite-width corrections to muP are smaller than at 32.

Locating ``eta*`` (:func:`learnmech.theory.transfer_fit.optimal_learning_rate`). Per width, the
loss is averaged over seeds at each ``eta`` of a log2 grid (a diverged seed makes the mean ``+inf``);
``eta*`` is the vertex of the parabola in ``(log2 eta, log L)`` through the grid minimum and its two
neighbours. A minimum at the first or last grid point is flagged (the grid must be widened:
inconclusive).

Verdict (CLAIMS.md): under muP ``|log2 eta*(widest) - log2 eta*(narrowest)| <= 0.5``; under SP
the least-squares slope of ``log2 eta*`` against ``log2 n`` over all widths is ``<= -0.5``. Both
must hold. Reported alongside: the muP slope, the SP shift, ``eta*`` per width.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve, Verdict
from learnmech.atlas.validators import widths_spanning
from learnmech.data import teacher_mlp_regression
from learnmech.nets import MLP
from learnmech.observe import mse
from learnmech.report import COLORS, band, finish_figure, new_figure, theory_line
from learnmech.theory.transfer_fit import TransferFit, fit_transfer, mean_loss
from learnmech.train import OptimizerSpec, train

__all__ = [
    "CLAIM",
    "Config",
    "MUP_SHIFT_MAX",
    "SP_SLOPE_MAX",
    "PARAMETERIZATIONS",
    "learning_rate_sweep",
    "log2_grid",
    "one_draw_init",
    "plot_transfer",
    "predicted_shift",
    "transfer_sweeps",
    "transfer_task",
    "zero_function_loss",
]

MUP_SHIFT_MAX = 0.5  # CLAIMS.md: |log2 eta*(widest) - log2 eta*(narrowest)| <= 0.5 under muP
SP_SLOPE_MAX = -0.5  # CLAIMS.md: slope of log2 eta* vs log2 width <= -0.5 under SP
SP_SLOPE_THEORY = -1.0  # TP-V: eta* ~ 1/width under SP with Adam
MIN_SPAN = 8.0  # CLAIMS.md: widths span at least 8x

PARAMETERIZATIONS = {"mup": "mup-adam", "sp": "sp"}  # record key -> learnmech.nets.MLP parameterisation
TEACHER = {"width": 64, "depth": 3, "activation": "tanh"}  # the task's teacher (module docstring)
DTYPE = "float32"

Progress = Callable[[str, int, int], None]


class Config(ClaimConfig):
    seeds: int = Field(4, ge=1, le=64, description="independent initialisations (and minibatch orders)")
    widths: tuple[int, ...] = Field((32, 256), description="hidden widths, increasing, spanning >= 8x; "
                                    "the narrowest is muP's base width")
    lr_log2_min: float = Field(-12.0, ge=-40, le=10, description="smallest learning rate, log2")
    lr_log2_max: float = Field(-3.0, ge=-40, le=10, description="largest learning rate, log2")
    lr_log2_step: float = Field(1.0, gt=0, le=4, description="grid step in log2 eta")
    steps: int = Field(100, ge=1, le=100_000, description="Adam steps, the same for every run")
    batch_size: int = Field(32, ge=1, le=100_000, description="minibatch size")
    n_samples: int = Field(512, ge=8, le=1_000_000, description="pool of training examples")
    d_in: int = Field(16, ge=1, le=4096, description="input dimension")
    hidden_layers: int = Field(2, ge=2, le=8, description="hidden layers of the student (>= 2: a hidden n x n matrix)")
    trained_below: float = Field(0.5, gt=0, lt=1, description="the best mean loss must end below this fraction "
                                 "of the zero-function loss, else inconclusive (too short to locate eta*)")
    data_seed: int = 0

    @field_validator("widths")
    @classmethod
    def _widths(cls, w: tuple[int, ...]) -> tuple[int, ...]:
        return widths_spanning(w, MIN_SPAN)

    @model_validator(mode="after")
    def _grid(self):
        if len(self.learning_rates) < 3:
            raise ValueError("lr_log2_min, lr_log2_max, lr_log2_step: need at least 3 learning rates")
        if self.batch_size > self.n_samples:
            raise ValueError(f"batch_size: must be at most n_samples = {self.n_samples}, got {self.batch_size}")
        return self

    @property
    def learning_rates(self) -> np.ndarray:
        return log2_grid(self.lr_log2_min, self.lr_log2_max, self.lr_log2_step)


def log2_grid(log2_min: float, log2_max: float, step: float = 1.0) -> np.ndarray:
    """``2^k`` for ``k = log2_min, log2_min + step, ...`` up to ``log2_max`` (inclusive to 1e-9), ``(K,)``.

    >>> log2_grid(-3, -1).tolist()
    [0.125, 0.25, 0.5]
    """
    if step <= 0:
        raise ValueError(f"step: must be positive, got {step}")
    k = log2_min + step * np.arange(int(math.floor((log2_max - log2_min) / step + 1e-9)) + 1)  # (K,)
    return 2.0 ** k


# ---------------------------------------------------------------------------------------------
# Experiment


def transfer_task(n_samples: int = 512, d_in: int = 16, data_seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """The regression pool: inputs ``(N, d_in) ~ N(0, I)``, targets ``(N, 1)`` of a random tanh teacher.

    The teacher is :data:`TEACHER` (``learnmech.data.teacher_mlp_regression``), drawn from
    ``data_seed``; float32.
    """
    X, Y, _ = teacher_mlp_regression(jax.random.key(data_seed), n_samples, d_in, dtype=jnp.float32, **TEACHER)
    return X, Y


def _student(width: int, parameterization: str, base_width: int, d_in: int, hidden_layers: int) -> MLP:
    return MLP((d_in,) + (width,) * hidden_layers + (1,), "relu", parameterization, base_width=base_width,
               bias=False, dtype=DTYPE)


def one_draw_init(net: MLP) -> Callable[[jax.Array], list]:
    """``init(key)`` with the distribution of ``net.init``, drawing every weight from one normal vector.

    Layer ``l`` gets ``w_l = init_std_l z_l`` (``z_l`` a ``(fan_in, fan_out)`` slice of one
    ``N(0, I)`` draw) and zero biases: the same law as :meth:`learnmech.nets.MLP.init`, which draws
    each layer from its own split key. One threefry draw compiles in about a third of the time of
    ``depth`` draws and a split, and this claim compiles one ensemble per width and
    parameterisation. Different seeds than ``net.init``, same distribution.
    """
    shapes = list(zip(net.widths[:-1], net.widths[1:]))  # [(fan_in, fan_out), ...]
    cuts = np.cumsum([0] + [a * b for a, b in shapes])  # (depth + 1,)

    def init(key):
        z = jax.random.normal(key, (int(cuts[-1]),), net.dtype)  # (n_params,)
        params = []
        for (fan_in, fan_out), sc, lo, hi in zip(shapes, net.scalings, cuts[:-1], cuts[1:]):
            layer = {"w": sc.init_std * z[lo:hi].reshape(fan_in, fan_out)}  # (fan_in, fan_out)
            if net.bias:
                layer["b"] = jnp.zeros((fan_out,), net.dtype)
            params.append(layer)
        return params

    return init


def _train_width(net: MLP, learning_rates, data, *, steps: int, seeds: int, batch_size: int | None,
                 progress: Callable[[int, int], None] | None) -> np.ndarray:
    """Final pool loss of every learning rate x seed of one network, ``(K, seeds)``; NaN if diverged."""

    def loss(params, batch):
        x, y = batch
        return mse(net.apply(params, x), y)

    result = train(
        init=one_draw_init(net), loss=loss, data=data, optimizer=OptimizerSpec("adam", {"learning_rate": 1e-3}),
        seeds=list(range(seeds)), grid={"learning_rate": np.asarray(learning_rates, np.float32)},
        steps=[0, steps], lr_multipliers=net.lr_multipliers(), batch_size=batch_size, layout="vmap",
        progress=progress,
    )
    return np.asarray(result["loss"][..., -1], np.float64)  # (K, seeds); NaN after divergence


def learning_rate_sweep(widths: Sequence[int], learning_rates, parameterization: str, *, steps: int, seeds: int,
                        batch_size: int | None = 32, n_samples: int = 512, d_in: int = 16, hidden_layers: int = 2,
                        data_seed: int = 0, base_width: int | None = None, runs: dict | None = None,
                        progress: Progress | None = None) -> np.ndarray:
    """Final training losses ``(W, K, seeds)`` of Adam at every width x learning rate x seed; NaN = diverged.

    ``parameterization``: ``"mup"`` (``MLP`` ``"mup-adam"`` with ``base_width``, default the
    narrowest width) or ``"sp"``. The task is :func:`transfer_task` (``n_samples``, ``d_in``,
    ``data_seed``) with minibatches of ``batch_size`` (``None``: full batch), the students have
    ``hidden_layers`` hidden layers. One ``train`` call per width; ``runs`` (a dict shared between
    calls) keeps each network's result under its ``(widths, scalings)``, so a network that was
    already trained (muP at its base width is SP) is not trained again.
    """
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization: must be one of {sorted(PARAMETERIZATIONS)}, got {parameterization!r}")
    base = int(base_width or widths[0])
    runs = {} if runs is None else runs
    nets = [_student(w, PARAMETERIZATIONS[parameterization], base, d_in, hidden_layers) for w in widths]
    todo = list(dict.fromkeys((net.widths, net.scalings) for net in nets if (net.widths, net.scalings) not in runs))
    if todo:
        data = transfer_task(n_samples, d_in, data_seed)
        batch = None if batch_size is None or batch_size >= n_samples else int(batch_size)
    for done, ident in enumerate(todo):
        net = next(n for n in nets if (n.widths, n.scalings) == ident)
        report = None if progress is None else (
            lambda d, t, done=done: progress(f"learning-rate sweep ({parameterization})", done * steps + d,
                                             len(todo) * steps))
        runs[ident] = _train_width(net, learning_rates, data, steps=steps, seeds=seeds, batch_size=batch,
                                   progress=report)
    return np.stack([runs[(net.widths, net.scalings)] for net in nets])  # (W, K, seeds)


def transfer_sweeps(widths: Sequence[int], learning_rates, parameterizations: Sequence[str] = ("sp", "mup"),
                    **kwargs) -> dict[str, np.ndarray]:
    """:func:`learning_rate_sweep` for each parameterisation, sharing runs (muP at the base width is SP).

    Takes the keyword arguments of :func:`learning_rate_sweep` (``steps`` and ``seeds`` required);
    returns ``{parameterization: (W, K, seeds)}``.
    """
    runs: dict = {}
    return {p: learning_rate_sweep(widths, learning_rates, p, runs=runs, **kwargs) for p in parameterizations}


def zero_function_loss(data) -> float:
    """``L_0 = (1/2N) sum_i ||y_i||^2``: the loss of predicting 0, the scale of "trained"."""
    _, Y = data
    return float(0.5 * np.sum(np.asarray(Y, np.float64) ** 2) / Y.shape[0])


# ---------------------------------------------------------------------------------------------
# The claim


THEORY_SLOPES = {"mup": 0.0, "sp": SP_SLOPE_THEORY}  # d log2 eta* / d log2 width (TP-V)


def predicted_shift(widths, parameterization: str) -> np.ndarray:
    """``log2 eta*(n) - log2 eta*(n_0)``, ``(W,)``: 0 under muP, ``-log2(n / n_0)`` under SP (TP-V).

    >>> predicted_shift([32, 64, 256], "sp").tolist()
    [-0.0, -1.0, -3.0]
    """
    return THEORY_SLOPES[parameterization] * np.log2(np.asarray(widths, np.float64) / widths[0])


def predict(cfg: Config):
    """The shift of ``log2 eta*`` from the narrowest width, per parameterisation (theory only)."""
    return {f"shift/{p}": Curve(cfg.widths, predicted_shift(cfg.widths, p)) for p in PARAMETERIZATIONS}


def measure(cfg: Config, progress=None):
    lrs = cfg.learning_rates
    losses = transfer_sweeps(cfg.widths, lrs, steps=cfg.steps, seeds=cfg.seeds, batch_size=cfg.batch_size,
                             n_samples=cfg.n_samples, d_in=cfg.d_in, hidden_layers=cfg.hidden_layers,
                             data_seed=cfg.data_seed, progress=progress)
    out = {"zero_loss": Curve([0.0], [[zero_function_loss(transfer_task(cfg.n_samples, cfg.d_in, cfg.data_seed))]])}
    for p, arr in losses.items():
        for i in range(len(cfg.widths)):
            out[f"loss/{p}/{i}"] = Curve(lrs, arr[i].T)  # (seeds, K): final training loss, NaN = diverged
        fit = fit_transfer(cfg.widths, lrs, arr)
        out[f"eta_star/{p}"] = Curve(cfg.widths, fit.eta_star)  # derived; the judge recomputes it
    return out


def _losses(cfg: Config, measurement, p: str) -> np.ndarray:
    """``(W, K, seeds)`` from the stored curves."""
    return np.stack([measurement[f"loss/{p}/{i}"].y.T for i in range(len(cfg.widths))])


def _details(cfg: Config, fits: Mapping[str, TransferFit], best: Mapping[str, np.ndarray]) -> dict[str, float]:
    details = {}
    for p, fit in fits.items():
        details[f"slope/{p}"] = fit.slope
        for w, eta, edge, b in zip(cfg.widths, fit.eta_star, fit.at_edge, best[p]):
            details[f"log2_eta_star/{p}/{w}"] = float(np.log2(eta))
            details[f"at_edge/{p}/{w}"] = float(edge)
            details[f"best_loss_ratio/{p}/{w}"] = float(b)
        details[f"shift/{p}"] = float(np.log2(fit.eta_star[-1] / fit.eta_star[0]))
    return details


def judge(cfg: Config, prediction, measurement) -> Verdict:
    lrs = np.asarray(cfg.learning_rates)
    zero = float(measurement["zero_loss"].y[0, 0])
    losses = {p: _losses(cfg, measurement, p) for p in PARAMETERIZATIONS}
    fits = {p: fit_transfer(cfg.widths, lrs, arr) for p, arr in losses.items()}
    best = {p: mean_loss(arr).min(axis=1) / zero for p, arr in losses.items()}  # (W,) best mean loss / L_0
    details = _details(cfg, fits, best)
    edges = [f"{p} width {w}" for p in fits for w, e in zip(cfg.widths, fits[p].at_edge) if e]
    if edges:
        return Verdict(status="inconclusive", metric="eta* at the grid edge (count)", value=float(len(edges)),
                       threshold=0.0, details=details,
                       reason=f"the loss minimum is at the edge of the learning-rate grid for {', '.join(edges)}; "
                              "widen the grid (lr_log2_min / lr_log2_max)")
    worst = max(float(b.max()) for b in best.values())
    if worst > cfg.trained_below:
        return Verdict(status="inconclusive", metric="best mean loss / zero-function loss (max over widths)",
                       value=worst, threshold=cfg.trained_below, details=details,
                       reason=f"at some width the best learning rate only reached {worst:.3f} of the zero-function "
                              "loss; train longer to locate eta*")
    shift = abs(details["shift/mup"])
    slope = fits["sp"].slope
    log2_eta = {p: " ".join(f"{np.log2(e):.2f}" for e in fits[p].eta_star) for p in fits}
    reason = (f"log2 eta* at widths {list(cfg.widths)}: muP {log2_eta['mup']} (|shift| {shift:.2f}, want <= "
              f"{MUP_SHIFT_MAX:g}); SP {log2_eta['sp']} (slope {slope:.2f}, want <= {SP_SLOPE_MAX:g})")
    margins = {"mup": MUP_SHIFT_MAX - shift, "sp": SP_SLOPE_MAX - slope}
    headline = min(margins, key=margins.get)  # the criterion with the smaller margin (both in log2 units)
    metric, value, threshold = (
        ("muP |log2 eta*(widest) - log2 eta*(narrowest)|", shift, MUP_SHIFT_MAX) if headline == "mup"
        else ("SP slope of log2 eta* vs log2 width", slope, SP_SLOPE_MAX))
    status = "holds" if min(margins.values()) >= 0 else "fails"
    return Verdict(status=status, metric=metric, value=float(value), threshold=threshold, reason=reason,
                   details=details)


# ---------------------------------------------------------------------------------------------
# Figures


def _width_colors(n: int):
    import matplotlib.pyplot as plt

    return plt.get_cmap("viridis")(np.linspace(0.0, 0.85, n))


def _plot_losses(ax, widths, lrs, losses, zero: float, title: str):
    """Loss / L_0 against eta, one curve per width (mean and 10-90% band over seeds), eta* marked."""
    fit = fit_transfer(widths, lrs, losses)
    colors = _width_colors(len(widths))
    for i, (w, c) in enumerate(zip(widths, colors)):
        band(ax, lrs, losses[i].T / zero, color=c, label=f"width {w}")
        means = mean_loss(losses[i]) / zero  # (K,)
        diverged = ~np.isfinite(means)
        if diverged.any():
            ax.plot(lrs[diverged], np.full(diverged.sum(), 1.0), "x", color=c, markersize=6)
        eta = fit.eta_star[i]
        if np.isfinite(eta):
            finite = np.isfinite(means)
            at = np.exp(np.interp(np.log2(eta), np.log2(lrs[finite]), np.log(means[finite])))
            ax.plot([eta], [at], "v", color=c, markersize=8, markeredgecolor="black",
                    fillstyle="none" if fit.at_edge[i] else "full")
    ax.plot([], [], "v", color="gray", markeredgecolor="black", label="eta* (parabola fit; hollow: grid edge)")
    if not np.all(np.isfinite(losses)):
        ax.plot([], [], "x", color="gray", label="a seed diverged (drawn at 1)")
    ax.set(yscale="log", xlabel="learning rate eta (Adam)", title=title,
           ylabel="final training loss / zero-function loss")
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=7)


def _plot_optima(ax, widths, fits: Mapping[str, TransferFit]):
    """log2 eta* against log2 width: measured (dots), fitted line (solid), theory from the narrowest (dashed)."""
    x = np.log2(np.asarray(widths, np.float64))
    names = {"mup": "muP", "sp": "SP"}
    for j, (p, fit) in enumerate(fits.items()):
        color = COLORS[j]
        y = np.log2(fit.eta_star)
        ax.plot(x, y, "o", color=color, markersize=7, label=f"{names[p]}: measured eta*")
        if np.isfinite(fit.slope):
            ax.plot(x, fit.intercept + fit.slope * x, "-", color=color, linewidth=1.0,
                    label=f"{names[p]}: fit, slope {fit.slope:.2f}")
        if np.isfinite(y[0]):
            theory_line(ax, x, y[0] + predicted_shift(widths, p), color=color,
                        label=f"{names[p]}: theory, slope {THEORY_SLOPES[p]:g}")
    y0 = np.log2(next(iter(fits.values())).eta_star[0])  # the narrowest width: the same net in both
    if np.isfinite(y0):
        if "mup" in fits:
            ax.axhspan(y0 - MUP_SHIFT_MAX, y0 + MUP_SHIFT_MAX, color=COLORS[0], alpha=0.1,
                       label=f"muP verdict: within +/- {MUP_SHIFT_MAX:g}")
        if "sp" in fits:
            ax.plot(x, y0 + SP_SLOPE_MAX * (x - x[0]), ":", color=COLORS[1], linewidth=1.0,
                    label=f"SP verdict: slope <= {SP_SLOPE_MAX:g}")
    ax.set(xlabel="log2 width", ylabel="log2 eta* (optimal learning rate)")
    ax.legend(fontsize=7)


def plot_transfer(widths, learning_rates, losses: Mapping[str, np.ndarray], zero_loss: float, *, verdict=None,
                  title: str = "muP transfer: the optimal learning rate across widths"):
    """Loss vs learning rate per width, SP and muP side by side, and ``log2 eta*`` vs ``log2 width``.

    ``losses`` maps ``"sp"`` / ``"mup"`` to ``(W, K, seeds)`` final losses; ``zero_loss`` is
    ``L_0``, the y-axis unit.
    """
    lrs = np.asarray(learning_rates, np.float64)
    order = [p for p in ("sp", "mup") if p in losses]
    fig, axes = new_figure(len(order) + 1, title=title)
    names = {"mup": "muP (mup-adam, base = narrowest width)", "sp": "SP (standard)"}
    for ax, p in zip(axes, order):
        _plot_losses(ax, widths, lrs, losses[p], zero_loss, names[p])
    limits = np.array([ax.get_ylim() for ax in axes[:-1]])  # (panels, 2): one y range for SP and muP
    for ax in axes[:-1]:
        ax.set_ylim(limits[:, 0].min(), limits[:, 1].max())
    fits = {p: fit_transfer(widths, lrs, losses[p]) for p in ("mup", "sp") if p in losses}
    _plot_optima(axes[-1], widths, fits)
    return finish_figure(fig, verdict)


def plot(cfg: Config, prediction, measurement, verdict=None):
    losses = {p: _losses(cfg, measurement, p) for p in PARAMETERIZATIONS}
    return plot_transfer(cfg.widths, cfg.learning_rates, losses, float(measurement["zero_loss"].y[0, 0]),
                         verdict=verdict,
                         title=f"hparams.mup-transfer: Adam, {cfg.steps} steps, MLP with {cfg.hidden_layers} "
                               "hidden layers on a teacher")


CLAIM = Claim(
    id="hparams.mup-transfer",
    pillar="hyperparameters",
    statement="Under muP the loss-minimising Adam learning rate does not depend on width; under SP it shrinks "
              "roughly like 1/width.",
    references=("Yang, Hu, Babuschkin, Sidor, Liu, Farhi, Ryder, Pachocki, Chen & Gao 2022 (Tensor Programs V), "
                "arXiv:2203.03466",),
    config=Config,
    presets={
        "quick": {"seeds": 4},
        "full": {"seeds": 8, "widths": (32, 64, 128, 256, 512), "lr_log2_min": -13.0, "lr_log2_max": -3.0,
                 "lr_log2_step": 0.5},
    },
    predict=predict, measure=measure, judge=judge, plot=plot,
    tags=("mup", "adam"),
)
