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
``n_samples`` examples. Students: ``MLP((d_in, n, ..., n, 1), "relu", p, base_width=n_0,
bias=False)`` with ``hidden_layers`` hidden layers (at least 2, so that a hidden ``n x n`` matrix
exists), ``p`` in ``{"mup-adam", "sp"}``; Adam (optax defaults ``b1 = 0.9, b2 = 0.999,
eps = 1e-8``) with per-parameter learning rates ``eta * lr_multiplier`` from
``MLP.lr_multipliers``; ``steps`` minibatch steps of ``batch_size`` examples drawn from the pool.
:func:`learnmech.width_transfer.transfer` trains every learning rate x seed of one width in one
vectorised ``learnmech.train.train`` call, per parameterisation; at ``n = n_0`` the SP run
serves muP too (the two networks' layer scalings are identical there, which is checked, not
assumed). Each call is one XLA compilation (about 4 s of CPU whatever the width), which sets the
cost.

Judged widths and the base width (CLAIMS.md, preset rule revised in #9). ``judged_from`` is the
narrowest judged width; narrower widths are trained, their ``eta*`` reported (``unjudged_shift/...``
in the details, hollow markers in the figure), not judged: at width 32 the finite-width corrections
to muP move ``eta*`` by about 0.1 octave per doubling, so a span that starts there measures them as
much as the transfer. muP's base width ``n_0`` is the narrowest *judged* width. Why there: muP's
promise is "tune at ``n_0``, where muP and SP are the same network, and use that ``eta`` at any
``n``", and with ``n_0 = judged_from`` the judged shift is exactly the error of that transfer over
the judged span; ``n_0`` only fixes the constants of the muP family (the learning-rate and readout
multipliers are ``n_0 / n``), so the narrower, unjudged networks are muP networks with ``m < 1``.
It costs nothing: ``n_0`` is trained once either way (the SP run). Presets: ``full`` trains widths
32, 64, ..., 512 and judges 64..512 (8x, ``n_0 = 64``, the rule's floor); ``quick`` trains and judges
32 and 256 (8x, ``n_0 = 32``): a cheap check of the same prediction (3 compilations, about 20 s of
CPU against about 40 s for 64 and 512), which includes the width-32 corrections (it is not bound by
the full preset's floor of 64); ``tiny`` judges 8 and 64.

Which loss. The *training* loss on the whole pool after the last step,
``L = (1/2N) sum_i (f(x_i) - y_i)^2`` (TP-V also tunes on the training loss), averaged over seeds.
``steps x batch_size`` is about six passes over the pool: at good learning rates the loss ends far
below the zero-function loss ``L_0 = (1/2N) sum_i y_i^2`` but far from zero, and the minimum over
``eta`` is a sharp bowl. (A run that trained to ~0 at many learning rates would leave a flat,
ill-defined minimum.) The verdict is inconclusive when the best mean loss is not below
``trained_below x L_0``.

Which regime. The base width's optimum sits above that of wider nets under muP in every regime
tried while choosing this one, most when training is short and full-batch, least with minibatches
(the presets). TP-V tunes at base widths of a few hundred, where the finite-width corrections to
muP are smaller than at 32; the store and the README hold the measured shifts and slopes.

Locating ``eta*`` (:func:`learnmech.fit.optimal_learning_rate`). Per width, the loss is averaged
over seeds at each ``eta`` of a log2 grid (a diverged seed makes the mean ``+inf``); ``eta*`` is the
vertex of the parabola in ``(log2 eta, log L)`` through the grid minimum and its two neighbours. A
minimum at the first or last grid point is flagged (the grid must be widened: inconclusive).

Verdict (CLAIMS.md): over the judged widths, under muP ``|log2 eta*(widest) - log2 eta*(n_0)| <= 0.5``
and under SP the least-squares slope of ``log2 eta*`` against ``log2 n`` is ``<= -0.5``; both must
hold. The guards (``eta*`` inside the grid, trained far enough) look at the judged widths only.
Reported alongside: the muP slope (its drift per doubling), the SP shift, ``eta*`` per width, the
slopes over all widths (``slope_all/...``) and each unjudged width's ``log2 eta*`` relative to
``n_0``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from pydantic import Field, field_validator, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.rules import Check, Guard, Rules
from learnmech.atlas.validators import widths_spanning
from learnmech.data.transfer_task import transfer_task, zero_function_loss
from learnmech.increasing import Increasing
from learnmech.nets.students import MUP_VS_SP, Student
from learnmech.report.transfer import plot_transfer
from learnmech.report import COLORS, theory_line
from learnmech.theory.lr_transfer import ADAM_LR_SLOPES, predicted_lr_shift
from learnmech.width_transfer import Transfer, log2_grid, transfer
from learnmech.transfer_budget import mlp_memory

__all__ = ["CLAIM", "Config", "MUP_SHIFT_MAX", "SP_SLOPE_MAX", "WidthGrid", "grid_edge_guard", "mark_unjudged_losses",
           "plot_judged_optima", "stored_transfer", "transfer_sweeps"]

MUP_SHIFT_MAX = 0.5  # CLAIMS.md: |log2 eta*(widest) - log2 eta*(narrowest)| <= 0.5 under muP
SP_SLOPE_MAX = -0.5  # CLAIMS.md: slope of log2 eta* vs log2 width <= -0.5 under SP
MIN_SPAN = 8.0  # CLAIMS.md: widths span at least 8x


Progress = Callable[[str, int, int], None]


class WidthGrid:
    """The learning-rate grid and the judged widths of a width-transfer config (fields ``widths``,
    ``judged_from``, ``lr_log2_min``, ``lr_log2_max``, ``lr_log2_step``), shared by the MLP and the
    transformer claims."""

    def check_width_grid(self) -> None:
        """At least 3 learning rates; ``judged_from`` one of the widths; the judged widths span ``MIN_SPAN``x."""
        if len(self.learning_rates) < 3:
            raise ValueError("lr_log2_min, lr_log2_max, lr_log2_step: need at least 3 learning rates")
        if self.judged_from is not None and self.judged_from not in self.widths:
            raise ValueError(f"judged_from: must be one of the widths {list(self.widths)}, got {self.judged_from}")
        judged = self.judged_widths
        if len(judged) < 2 or judged[-1] < MIN_SPAN * judged[0]:
            raise ValueError(f"judged_from: the judged widths (>= {judged[0]}) must span at least {MIN_SPAN:g}x, "
                             f"got {judged[0]}..{judged[-1]}")

    @property
    def learning_rates(self) -> np.ndarray:
        return log2_grid(self.lr_log2_min, self.lr_log2_max, self.lr_log2_step)

    @property
    def base_width(self) -> int:
        """muP's base width ``n_0``: the narrowest judged width."""
        return self.widths[0] if self.judged_from is None else self.judged_from

    @property
    def judged_widths(self) -> tuple[int, ...]:
        return tuple(w for w in self.widths if w >= self.base_width)

    @property
    def unjudged_widths(self) -> tuple[int, ...]:
        return tuple(w for w in self.widths if w < self.base_width)


class Config(WidthGrid, ClaimConfig):
    seeds: int = Field(4, ge=1, le=64, description="independent initialisations (and minibatch orders)")
    widths: Increasing(int, 2, "widths") = Field((32, 256), description="hidden widths, increasing, spanning >= "
                                                "8x")
    judged_from: int | None = Field(None, ge=1, description="the narrowest judged width and muP's base width, one "
                                    "of widths; narrower widths are trained and reported, not judged (None: the "
                                    "narrowest width)")
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
        self.check_width_grid()
        if self.batch_size > self.n_samples:
            raise ValueError(f"batch_size: must be at most n_samples = {self.n_samples}, got {self.batch_size}")
        return self


# ---------------------------------------------------------------------------------------------
# Experiment


def transfer_sweeps(widths: Sequence[int], learning_rates, parameterizations: Sequence[str] = ("sp", "mup"), *,
                    steps: int, seeds: int, batch_size: int | None = 32, n_samples: int = 512, d_in: int = 16,
                    hidden_layers: int = 2, data_seed: int = 0, base_width: int | None = None,
                    progress: Progress | None = None) -> dict[str, Transfer]:
    """:func:`learnmech.width_transfer.transfer` of each parameterisation's students on :func:`transfer_task`.

    muP's base width ``base_width`` (default: the narrowest width) reuses SP's losses
    (:meth:`Student.known`), so that network is trained once. ``batch_size`` ``None``: full batch.
    Returns ``{parameterization: Transfer}``.
    """
    data = transfer_task(n_samples, d_in, data_seed)
    memory = mlp_memory(d_in=d_in, hidden_layers=hidden_layers, rows=n_samples)
    out: dict[str, Transfer] = {}
    for p in parameterizations:
        model = Student(p, widths[0] if base_width is None else base_width, d_in, hidden_layers)
        report = None if progress is None else (lambda d, t, p=p: progress(f"learning-rate sweep ({p})", d, t))
        out[p] = transfer(model.init, model.apply, widths, learning_rates, data=data, steps=steps, seeds=seeds,
                          lr_multipliers=model.lr_multipliers, batch_size=batch_size, known=model.known(out),
                          memory=memory, progress=report)
    return out


# ---------------------------------------------------------------------------------------------
# The claim


def predict(cfg: Config):
    """The shift of ``log2 eta*`` from the base width ``n_0``, per parameterisation (theory only)."""
    base = cfg.widths.index(cfg.base_width)
    shifts = {p: predicted_lr_shift(cfg.widths, p) for p in MUP_VS_SP}  # from widths[0]
    return {key("shift", p): Curve(cfg.widths, shift - shift[base]) for p, shift in shifts.items()}


def measure(cfg: Config, progress=None):
    lrs = cfg.learning_rates
    results = transfer_sweeps(cfg.widths, lrs, steps=cfg.steps, seeds=cfg.seeds, batch_size=cfg.batch_size,
                              n_samples=cfg.n_samples, d_in=cfg.d_in, hidden_layers=cfg.hidden_layers,
                              data_seed=cfg.data_seed, base_width=cfg.base_width, progress=progress)
    out = {"zero_loss": zero_function_loss(transfer_task(cfg.n_samples, cfg.d_in, cfg.data_seed))}
    for p, result in results.items():
        for i in range(len(cfg.widths)):
            out[key("loss", p, i)] = Curve(lrs, result.losses[i].T)  # (seeds, K): final training loss, NaN = diverged
    return out


def _losses(cfg: Config, measurement, p: str) -> np.ndarray:
    """``(W, K, seeds)`` from the stored curves."""
    return np.stack([measurement[key("loss", p, i)].y.T for i in range(len(cfg.widths))])


def summarize(cfg: Config, prediction, measurement):
    """``eta*`` per width (log2), the line through the judged ones and their shift from ``n_0``, the best
    loss / ``L_0``, grid-edge counts (judged widths); each unjudged width's ``log2 eta*`` relative to ``n_0``."""
    zero = float(measurement["zero_loss"])
    judged = np.isin(cfg.widths, cfg.judged_widths)  # (W,)
    out = {"trained_below": cfg.trained_below, "judged_from": float(cfg.base_width), "edges": 0.0,
           "unjudged_edges": 0.0, "worst_loss_ratio": -np.inf}
    for p in MUP_VS_SP:
        losses = _losses(cfg, measurement, p)  # (W, K, seeds)
        every = Transfer.from_losses(cfg.widths, cfg.learning_rates, losses)
        line = Transfer.from_losses(cfg.judged_widths, cfg.learning_rates, losses[judged])  # the judged widths
        best = every.mean_loss.min(axis=1) / zero  # (W,) best mean loss / L_0
        out[key("slope", p)] = line.slope
        out[key("intercept", p)] = line.intercept
        out[key("slope_all", p)] = every.slope
        for w, log2_eta, edge, b in zip(cfg.widths, every.log2_eta_star, every.at_edge, best):
            out[key("log2_eta_star", p, w)] = float(log2_eta)
            out[key("at_edge", p, w)] = float(edge)
            out[key("best_loss_ratio", p, w)] = float(b)
        base = float(np.log2(line.eta_star[0]))
        out[key("shift", p)] = float(np.log2(line.eta_star[-1])) - base
        for w in cfg.unjudged_widths:
            out[key("unjudged_shift", p, w)] = out[key("log2_eta_star", p, w)] - base
        out["edges"] += float(np.sum(every.at_edge[judged]))
        out["unjudged_edges"] += float(np.sum(every.at_edge[~judged]))
        out["worst_loss_ratio"] = max(out["worst_loss_ratio"], float(best[judged].max()))
    out["mup_shift"] = abs(out[key("shift", "mup")])
    return out


def grid_edge_guard(over: str) -> Guard:
    """Inconclusive when some ``eta*`` of ``over`` sits at the edge of the learning-rate grid (summary ``edges``)."""
    return Guard(f"eta* at the grid edge (count, {over})", "edges", "<=", 0.0, fmt="g",
                 advice="the loss minimum is at the edge of the learning-rate grid (at_edge/... in the details); "
                        "widen the grid (lr_log2_min / lr_log2_max)")


RULES = Rules(
    guards=(grid_edge_guard("judged widths"),
            Guard("best mean loss / zero-function loss (max over judged widths)", "worst_loss_ratio", "<=",
                  "trained_below", fmt=".3f",
                  advice="at some width the best learning rate did not train far enough; train longer to locate eta*")),
    checks=(Check("muP |log2 eta*(widest) - log2 eta*(narrowest judged)|", "mup_shift", "<=", MUP_SHIFT_MAX,
                  fmt=".2f"),
            Check("SP slope of log2 eta* vs log2 width (judged widths)", key("slope", "sp"), "<=", SP_SLOPE_MAX,
                  fmt=".2f")),
)


# ---------------------------------------------------------------------------------------------
# Figures


def stored_transfer(cfg: Config, measurement, summary, p: str) -> Transfer:
    """The :class:`Transfer` of parameterisation ``p`` from the measured losses and the summary (no refit)."""
    eta = np.array([2.0 ** summary[key("log2_eta_star", p, w)] for w in cfg.widths])
    edge = np.array([summary[key("at_edge", p, w)] > 0 for w in cfg.widths])
    return Transfer(np.asarray(cfg.widths), cfg.learning_rates, _losses(cfg, measurement, p), eta, edge,
                    ~edge & np.isfinite(eta), float(summary[key("slope", p)]), float(summary[key("intercept", p)]))


def mark_unjudged_losses(ax, unjudged: Sequence[int]) -> None:
    """Dot the loss curves of the unjudged widths and say so in the legend."""
    names = {f"width {w}" for w in unjudged}  # plot_transfer's label of each width's curve
    for line in ax.lines:
        if line.get_label() in names:
            line.set_linestyle(":")
            line.set_label(f"{line.get_label()} (not judged)")
    ax.legend(fontsize=7)


def plot_judged_optima(ax, cfg: Config, prediction, summary) -> None:
    """``log2 eta*`` vs ``log2 width``: judged widths filled, unjudged hollow in a grey span; the fitted line over
    the judged widths; theory and verdict bands from ``n_0``."""
    x = np.log2(np.asarray(cfg.widths, np.float64))
    judged = np.isin(cfg.widths, cfg.judged_widths)  # (W,)
    xj, x0 = x[judged], np.log2(cfg.base_width)
    if (~judged).any():
        ax.axvspan(x[0] - 0.25, x0 - 0.5, color="gray", alpha=0.12, label=f"not judged: width < {cfg.base_width}")
    for j, (p, name) in enumerate((("mup", "muP"), ("sp", "SP"))):
        color = COLORS[j]
        y = np.array([summary[key("log2_eta_star", p, w)] for w in cfg.widths])
        ax.plot(xj, y[judged], "o", color=color, markersize=7, label=f"{name}: measured eta*")
        if (~judged).any():
            ax.plot(x[~judged], y[~judged], "o", color=color, markersize=7, fillstyle="none",
                    label=f"{name}: measured eta*, not judged")
        slope, intercept = summary[key("slope", p)], summary[key("intercept", p)]
        if np.isfinite(slope):
            ax.plot(xj, intercept + slope * xj, "-", color=color, linewidth=1.0,
                    label=f"{name}: fit, slope {slope:.2f}")
        base = summary[key("log2_eta_star", p, cfg.base_width)]
        theory_line(ax, x, base + prediction[key("shift", p)].y[0], color=color,
                    label=f"{name}: theory, slope {ADAM_LR_SLOPES[p]:g}")
    y0 = summary[key("log2_eta_star", "mup", cfg.base_width)]  # the same network under both at n_0
    ax.fill_between(xj, y0 - MUP_SHIFT_MAX, y0 + MUP_SHIFT_MAX, color=COLORS[0], alpha=0.1, linewidth=0,
                    label=f"muP verdict: within +/- {MUP_SHIFT_MAX:g} of eta*({cfg.base_width})")
    ax.plot(xj, y0 + SP_SLOPE_MAX * (xj - x0), ":", color=COLORS[1], linewidth=1.0,
            label=f"SP verdict: slope <= {SP_SLOPE_MAX:g}")
    ax.set(xlabel="log2 width", ylabel="log2 eta* (optimal learning rate)",
           title=f"judged widths {cfg.judged_widths[0]}..{cfg.judged_widths[-1]}, muP base width {cfg.base_width}")
    ax.legend(fontsize=6.5, loc="lower left")  # SP falls to the right, muP stays at the top


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    results = {p: stored_transfer(cfg, measurement, summary, p) for p in MUP_VS_SP}
    fig = plot_transfer(results, float(measurement["zero_loss"]), mup_band=MUP_SHIFT_MAX, sp_slope=SP_SLOPE_MAX,
                        verdict=verdict,
                        title=f"hparams.mup-transfer: Adam, {cfg.steps} steps, MLP with {cfg.hidden_layers} "
                              "hidden layers on a teacher")
    for ax in fig.axes[:-1]:
        mark_unjudged_losses(ax, cfg.unjudged_widths)
    fig.axes[1].set_title(f"muP (mup-adam, base width {cfg.base_width})")  # axes: SP, muP, optima
    fig.axes[-1].clear()  # plot_transfer anchors its optima panel at the narrowest width; this claim's is n_0
    plot_judged_optima(fig.axes[-1], cfg, prediction, summary)
    return fig


CLAIM = Claim(
    id="hparams.mup-transfer",
    pillar="hyperparameters",
    statement="Under muP the loss-minimising Adam learning rate does not depend on width; under SP it shrinks "
              "roughly like 1/width.",
    references=("Yang, Hu, Babuschkin, Sidor, Liu, Farhi, Ryder, Pachocki, Chen & Gao 2022 (Tensor Programs V), "
                "arXiv:2203.03466",),
    config=Config,
    presets={
        "tiny": {"seeds": 1, "widths": (8, 64), "lr_log2_min": -10.0, "lr_log2_max": -2.0, "lr_log2_step": 2.0,
                 "steps": 30, "batch_size": 16, "n_samples": 64, "d_in": 8},
        "quick": {"seeds": 4},
        "full": {"seeds": 8, "widths": (32, 64, 128, 256, 512), "judged_from": 64, "lr_log2_min": -13.0,
                 "lr_log2_max": -3.0, "lr_log2_step": 0.5},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("mup", "adam"),
)
