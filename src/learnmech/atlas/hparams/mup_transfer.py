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
:func:`learnmech.width_transfer.transfer` trains every learning rate x seed of one width in one
vectorised ``learnmech.train.train`` call, per parameterisation; at ``n = base_width`` the SP run
serves muP too (the two networks' layer scalings are identical there, which is checked, not
assumed). Each call is one XLA compilation (about 4 s of CPU whatever the width), which sets the
cost: the quick preset uses the two ends of an 8x span (3 compilations), the full preset five
widths and a half-octave grid.

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

Verdict (CLAIMS.md): under muP ``|log2 eta*(widest) - log2 eta*(narrowest)| <= 0.5``; under SP
the least-squares slope of ``log2 eta*`` against ``log2 n`` over all widths is ``<= -0.5``. Both
must hold. Reported alongside: the muP slope, the SP shift, ``eta*`` per width.
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
from learnmech.theory.lr_transfer import predicted_lr_shift
from learnmech.width_transfer import Transfer, log2_grid, transfer
from learnmech.transfer_budget import mlp_memory

__all__ = ["CLAIM", "Config", "MUP_SHIFT_MAX", "SP_SLOPE_MAX", "transfer_sweeps"]

MUP_SHIFT_MAX = 0.5  # CLAIMS.md: |log2 eta*(widest) - log2 eta*(narrowest)| <= 0.5 under muP
SP_SLOPE_MAX = -0.5  # CLAIMS.md: slope of log2 eta* vs log2 width <= -0.5 under SP
MIN_SPAN = 8.0  # CLAIMS.md: widths span at least 8x


Progress = Callable[[str, int, int], None]


class Config(ClaimConfig):
    seeds: int = Field(4, ge=1, le=64, description="independent initialisations (and minibatch orders)")
    widths: Increasing(int, 2, "widths") = Field((32, 256), description="hidden widths, increasing, spanning >= "
                                                "8x; the narrowest is muP's base width")
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


# ---------------------------------------------------------------------------------------------
# Experiment


def transfer_sweeps(widths: Sequence[int], learning_rates, parameterizations: Sequence[str] = ("sp", "mup"), *,
                    steps: int, seeds: int, batch_size: int | None = 32, n_samples: int = 512, d_in: int = 16,
                    hidden_layers: int = 2, data_seed: int = 0,
                    progress: Progress | None = None) -> dict[str, Transfer]:
    """:func:`learnmech.width_transfer.transfer` of each parameterisation's students on :func:`transfer_task`.

    muP's base width (the narrowest) reuses SP's losses (:meth:`Student.known`), so that network is
    trained once. ``batch_size`` ``None``: full batch. Returns ``{parameterization: Transfer}``.
    """
    data = transfer_task(n_samples, d_in, data_seed)
    memory = mlp_memory(d_in=d_in, hidden_layers=hidden_layers, rows=n_samples)
    out: dict[str, Transfer] = {}
    for p in parameterizations:
        model = Student(p, widths[0], d_in, hidden_layers)
        report = None if progress is None else (lambda d, t, p=p: progress(f"learning-rate sweep ({p})", d, t))
        out[p] = transfer(model.init, model.apply, widths, learning_rates, data=data, steps=steps, seeds=seeds,
                          lr_multipliers=model.lr_multipliers, batch_size=batch_size, known=model.known(out),
                          memory=memory, progress=report)
    return out


# ---------------------------------------------------------------------------------------------
# The claim


def predict(cfg: Config):
    """The shift of ``log2 eta*`` from the narrowest width, per parameterisation (theory only)."""
    return {key("shift", p): Curve(cfg.widths, predicted_lr_shift(cfg.widths, p)) for p in MUP_VS_SP}


def measure(cfg: Config, progress=None):
    lrs = cfg.learning_rates
    results = transfer_sweeps(cfg.widths, lrs, steps=cfg.steps, seeds=cfg.seeds, batch_size=cfg.batch_size,
                              n_samples=cfg.n_samples, d_in=cfg.d_in, hidden_layers=cfg.hidden_layers,
                              data_seed=cfg.data_seed, progress=progress)
    out = {"zero_loss": zero_function_loss(transfer_task(cfg.n_samples, cfg.d_in, cfg.data_seed))}
    for p, result in results.items():
        for i in range(len(cfg.widths)):
            out[key("loss", p, i)] = Curve(lrs, result.losses[i].T)  # (seeds, K): final training loss, NaN = diverged
    return out


def _losses(cfg: Config, measurement, p: str) -> np.ndarray:
    """``(W, K, seeds)`` from the stored curves."""
    return np.stack([measurement[key("loss", p, i)].y.T for i in range(len(cfg.widths))])


def summarize(cfg: Config, prediction, measurement):
    """``eta*`` per width (log2), the line through it, its shift, the best loss / ``L_0``, grid-edge counts."""
    zero = float(measurement["zero_loss"])
    out = {"trained_below": cfg.trained_below, "edges": 0.0, "worst_loss_ratio": -np.inf}
    for p in MUP_VS_SP:
        result = Transfer.from_losses(cfg.widths, cfg.learning_rates, _losses(cfg, measurement, p))
        best = result.mean_loss.min(axis=1) / zero  # (W,) best mean loss / L_0
        out[key("slope", p)] = result.slope
        out[key("intercept", p)] = result.intercept
        for w, log2_eta, edge, b in zip(cfg.widths, result.log2_eta_star, result.at_edge, best):
            out[key("log2_eta_star", p, w)] = float(log2_eta)
            out[key("at_edge", p, w)] = float(edge)
            out[key("best_loss_ratio", p, w)] = float(b)
        out[key("shift", p)] = float(np.log2(result.eta_star[-1] / result.eta_star[0]))
        out["edges"] += float(np.sum(result.at_edge))
        out["worst_loss_ratio"] = max(out["worst_loss_ratio"], float(best.max()))
    out["mup_shift"] = abs(out[key("shift", "mup")])
    return out


RULES = Rules(
    guards=(Guard("eta* at the grid edge (count)", "edges", "<=", 0.0, fmt="g",
                  advice="the loss minimum is at the edge of the learning-rate grid (at_edge/... in the details); "
                         "widen the grid (lr_log2_min / lr_log2_max)"),
            Guard("best mean loss / zero-function loss (max over widths)", "worst_loss_ratio", "<=", "trained_below",
                  fmt=".3f", advice="at some width the best learning rate did not train far enough; train longer "
                                    "to locate eta*")),
    checks=(Check("muP |log2 eta*(widest) - log2 eta*(narrowest)|", "mup_shift", "<=", MUP_SHIFT_MAX, fmt=".2f"),
            Check("SP slope of log2 eta* vs log2 width", key("slope", "sp"), "<=", SP_SLOPE_MAX, fmt=".2f")),
)


# ---------------------------------------------------------------------------------------------
# Figures


def _stored_transfer(cfg: Config, measurement, summary, p: str) -> Transfer:
    """The :class:`Transfer` of parameterisation ``p`` from the measured losses and the summary (no refit)."""
    eta = np.array([2.0 ** summary[key("log2_eta_star", p, w)] for w in cfg.widths])
    edge = np.array([summary[key("at_edge", p, w)] > 0 for w in cfg.widths])
    return Transfer(np.asarray(cfg.widths), cfg.learning_rates, _losses(cfg, measurement, p), eta, edge,
                    ~edge & np.isfinite(eta), float(summary[key("slope", p)]), float(summary[key("intercept", p)]))


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    results = {p: _stored_transfer(cfg, measurement, summary, p) for p in MUP_VS_SP}
    return plot_transfer(results, float(measurement["zero_loss"]), mup_band=MUP_SHIFT_MAX, sp_slope=SP_SLOPE_MAX,
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
        "tiny": {"seeds": 1, "widths": (8, 64), "lr_log2_min": -10.0, "lr_log2_max": -2.0, "lr_log2_step": 2.0,
                 "steps": 30, "batch_size": 16, "n_samples": 64, "d_in": 8},
        "quick": {"seeds": 4},
        "full": {"seeds": 8, "widths": (32, 64, 128, 256, 512), "lr_log2_min": -13.0, "lr_log2_max": -3.0,
                 "lr_log2_step": 0.5},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("mup", "adam"),
)
