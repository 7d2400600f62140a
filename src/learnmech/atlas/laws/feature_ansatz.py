"""laws.feature-ansatz — first-layer weights align with the average gradient outer product.

Statement (Radhakrishnan, Beaglehole, Pandit & Belkin 2024, Science, arXiv:2212.13881): after
training, the first-layer neural feature matrix ``NFM = (W - W0)^T (W - W0)`` (``W`` of shape
``(hidden, d_in)``) is proportional to ``AGOP^alpha`` with ``alpha = 1/2``, where
``AGOP = (1/n) sum_i J_i^T J_i`` averages the outer products of the input Jacobians of the trained
network over the training inputs (:mod:`learnmech.observe.agop`). For deep linear networks from a
balanced initialisation the relation is exact with ``alpha = 1/L`` (Tansley, Massart & Cartis 2025, arXiv:2510.15563).

Why ``alpha = 1/L`` for a balanced depth-``L`` linear network. Let ``f(x) = W_L ... W_1 x`` and
``W = W_L ... W_1`` ``(c, d_in)``. (i) The Jacobian of ``f`` is ``W`` at every input, so
``AGOP = W^T W`` exactly, for any data and any loss. (ii) Gradient flow on any loss of ``f`` keeps
``D_l = W_{l+1}^T W_{l+1} - W_l W_l^T`` constant (Arora, Cohen & Hazan 2018, arXiv:1802.06509;
Du, Hu & Lee 2018): from a balanced start (``D_l = 0``) the network stays balanced. (iii) Under
balancedness, ``W^T W = W_1^T ... W_L^T W_L ... W_1``; replacing ``W_L^T W_L`` by ``W_{L-1} W_{L-1}^T``
gives ``W_1^T ... W_{L-1}^T W_{L-1} W_{L-1}^T W_{L-1} ... W_1``, and repeating down the layers,
``W^T W = (W_1^T W_1)^L``. ``W_1^T W_1`` is positive semi-definite and a PSD matrix has one PSD
``L``-th root, so ``W_1^T W_1 = (W^T W)^{1/L} = AGOP^{1/L}``: the ansatz with exponent ``1/L`` and
correlation 1 (Radhakrishnan et al. 2024 show the ``L = 2`` case; Tansley, Massart & Cartis 2025, arXiv:2510.15563, the general
depth). This uses ``W_1`` itself, not ``W_1 - W_1(0)``: the identity is about the weights, and
``(W - W0)^T (W - W0)`` differs from ``W^T W`` by terms of the size of the (small) initial weights.
So the linear-network check uses ``NFM = W_1^T W_1``; the ``W - W0`` version is reported beside it.
Finite learning rates break balancedness by ``O(eta^2)`` per step (Kunin et al. 2021,
arXiv:2012.04728), which the small ``eta`` here keeps far below the 0.999 threshold.

Experiment. (a) Bias-free ReLU MLPs (the reference's ``Net``, aradha/agop_feature_learning) trained
with minibatch SGD on the mean-squared error against one-hot labels (the reference's loss, up to the
factor ``1/2`` of :func:`learnmech.observe.mse`), on MNIST-5k (the judged task) and on scikit-learn's
digits (reported beside it); inputs normalised as in :mod:`learnmech.data.real`. The first layer
starts at ``first_layer_scale`` times its standard-parameterisation draw (the reference trainer's
``init`` option): with the standard scale the width-128 first layer barely moves in the budget, and the
AGOP is dominated by ``W0``'s random directions (measured on MNIST-5k, batch 128, 2 seeds: correlation
0.19 at the standard scale with two hidden layers and 1,000 steps; with one hidden layer and 500 steps
0.85 at 0.1 and 0.92 at 0.01, the default). (b) Deep linear networks of depth 2, 3, 4
(:class:`learnmech.nets.DeepLinear`) on a whitened linear-teacher task (:mod:`learnmech.atlas.dln.experiment`),
from a small exactly balanced initialisation whose singular frames are random (not the teacher's),
trained by full-batch GD in float64. Every network is trained by :func:`learnmech.train.train`.

Correlation: the Pearson correlation of all matrix entries after subtracting each matrix's mean
(:func:`learnmech.observe.agop.feature_correlation`, the reference's ``correlate``), as a function
of ``alpha`` on the grid :data:`ALPHAS`; the best exponent is refined by golden-section search
(:func:`learnmech.observe.agop.best_exponent`).

Verdict (CLAIMS.md): the smallest correlation over seeds of ``NFM`` and ``AGOP^{1/2}`` on MNIST-5k is
``>= 0.9``; for every depth and seed of the linear networks the best exponent is within 0.05 of ``1/L``
and the correlation there is ``>= 0.999``. Guards (inconclusive): a diverged member; an MLP whose MNIST
training accuracy is below 90% (an untrained network tests nothing).

Presets (December 2026, shared 2-core machine under a load average of ~7, so wall times are 2-3x a
quiet machine's; CPU time in brackets): tiny (MNIST 300 examples, digits 200, width 32, 60 steps, depth 2
only) 47 s (24 s CPU), compilation and the MNIST CSV parse dominate; quick (MNIST-5k and all of digits,
width 128, 1 seed, 400 steps; depths 2, 3, 4 on 8 -> 8 -> 4) 60 s (25 s CPU; 37 s at load ~4), holds at 0.927; full (3
seeds, width 256, 2,000 steps; 16 -> 16 -> 8 linear networks with 8 modes) 140 s (68 s CPU), *fails*:
MNIST-5k correlation 0.814 (centred AGOP 0.924, best exponent 0.44), the linear networks hold (``|alpha* -
1/L| <= 1.5e-4``, correlation >= 0.9999999). Longer training lowered the uncentred correlation (0.927 at
400 steps, width 128); the preset was not tuned to pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.dln.experiment import decreasing, make_teacher
from learnmech.atlas.keys import key
from learnmech.atlas.rules import Check, Guard, Rules, count_diverged, diverged
from learnmech.nets import MLP, DeepLinear
from learnmech.observe import mse_loss
from learnmech.observe.agop import (best_exponent, dln_first_layer, feature_correlation, jacobian_moments,
                                    matrix_power, mlp_first_layer, neural_feature_matrix, spectrum)
from learnmech.report import COLORS, band, finish_figure, new_figure
from learnmech.train import OptimizerSpec, train

__all__ = ["ALPHAS", "CLAIM", "Config"]

ALPHAS = np.round(np.arange(0.05, 1.5001, 0.05), 10)  # exponent grid: 1/4, 1/3 (refined), 1/2 and 1 inside
MLP_MIN = 0.9  # CLAIMS.md: correlation(NFM, AGOP^1/2) on MNIST-5k
ALPHA_TOL = 0.05  # CLAIMS.md: |alpha* - 1/L|
DLN_MIN = 0.999  # CLAIMS.md: correlation at alpha*
ACCURACY_MIN = 0.9  # guard: the MLP has learned its training set
MLP_DTYPE = "float32"  # the MLP's correlations are compared to 0.9; float32 rounding is far below
DLN_DTYPE = "float64"  # the linear networks are compared to 0.999 and 0.05 in alpha
MLP_TASKS = ("mnist", "digits")


class Config(ClaimConfig):
    mnist_samples: int = Field(5000, ge=100, le=5000, description="MNIST-5k training examples")
    digits_samples: int = Field(1797, ge=100, le=1797, description="digits training examples")
    width: int = Field(128, ge=8, le=2048, description="hidden units per layer of the MLP")
    hidden_layers: int = Field(1, ge=1, le=4, description="ReLU hidden layers of the MLP")
    first_layer_scale: float = Field(0.01, gt=0, le=1, description="first-layer init, times its SP draw")
    learning_rate: float = Field(0.1, gt=0, le=10, description="SGD learning rate of the MLP")
    batch_size: int = Field(128, ge=1, le=5000, description="SGD minibatch size")
    steps: int = Field(500, ge=10, le=100_000, description="SGD steps of the MLP")
    block: int = Field(500, ge=1, le=5000, description="examples per vectorised Jacobian block")
    depths: tuple[int, ...] = Field((2, 3, 4), description="depths of the linear networks")
    d_in: int = Field(8, ge=2, le=256)
    d_out: int = Field(4, ge=1, le=256)
    hidden: int = Field(8, ge=1, le=512, description="hidden width of the linear networks")
    s: tuple[float, ...] = Field((3.0, 2.0, 1.0, 0.5), description="teacher singular values, decreasing")
    u0: float = Field(1e-2, gt=0, lt=1, description="initial end-to-end singular values (balanced init)")
    eta: float = Field(0.01, gt=0, le=1, description="GD learning rate of the linear networks")
    dln_steps: int = Field(2000, ge=10, le=200_000, description="GD steps of the linear networks")
    dln_samples: int = Field(64, ge=2, le=10_000, description="whitened teacher sample size")
    teacher_seed: int = 0

    _s = field_validator("s")(decreasing)

    @field_validator("depths")
    @classmethod
    def _depths(cls, depths: tuple[int, ...]) -> tuple[int, ...]:
        if not depths or any(not 2 <= L <= 8 for L in depths) or len(set(depths)) != len(depths):
            raise ValueError("must be distinct depths from 2 to 8")
        return depths


def predict(cfg: Config):
    """The predicted exponent of every task: 1/2 for the MLPs, 1/L for the depth-L linear networks."""
    out = {key(task, "alpha"): 0.5 for task in MLP_TASKS}
    out.update({key(f"L{L}", "alpha"): 1.0 / L for L in cfg.depths})
    return out


# ---------------------------------------------------------------------------------------------
# Experiment


def _stacked(trees):
    return jax.tree.map(lambda *w: jnp.stack(w), *trees)


def _member(tree, s: int):
    return jax.tree.map(lambda a: a[s], tree)


def _mlp_data(cfg: Config, task: str):
    from learnmech.data import load_digits, load_mnist5k, one_hot

    X, y = (load_mnist5k if task == "mnist" else load_digits)(dtype=MLP_DTYPE)
    n = cfg.mnist_samples if task == "mnist" else cfg.digits_samples
    return X[:n], y[:n], one_hot(y[:n], 10, dtype=MLP_DTYPE)  # (n, d), (n,), (n, 10)


def _fit_record(task: str, s: int, nfm, agop_matrix, extra: dict) -> tuple[dict, np.ndarray]:
    """Scalars of one member (``task/name/seed``) and its correlation on :data:`ALPHAS`."""
    fit = best_exponent(nfm, agop_matrix, ALPHAS)
    values = {"alpha_best": fit.alpha, "corr_best": fit.correlation, "refined": float(fit.refined), **extra}
    return {key(task, name, s): float(v) for name, v in values.items()}, fit.correlations


def _measure_mlp(cfg: Config, task: str, progress=None) -> dict:
    """Train the MLP on one task; per seed the NFM/AGOP correlations, the best exponent, the accuracy."""
    X, y, Y = _mlp_data(cfg, task)
    net = MLP((X.shape[1],) + (cfg.width,) * cfg.hidden_layers + (10,), "relu", "sp", bias=False, dtype=MLP_DTYPE)

    @jax.jit  # one compilation instead of one per eager operation
    def init(key):
        params = net.init(key)
        params[0] = {"w": cfg.first_layer_scale * params[0]["w"]}  # the reference trainer's `init` option
        return params

    params0 = _stacked([init(jax.random.key(s)) for s in range(cfg.seeds)])
    schedule = np.unique(np.geomspace(1, cfg.steps, 24).astype(int))
    report = None if progress is None else (lambda done, total: progress(f"laws.feature-ansatz {task}", done, total))
    result = train(loss=mse_loss(net.apply), data=(X, Y), optimizer=OptimizerSpec("sgd", {"learning_rate":
                   cfg.learning_rate}), seeds=list(range(cfg.seeds)), steps=schedule, params0=params0,
                   batch_size=min(cfg.batch_size, X.shape[0]), progress=report)
    out, grids = {key("loss", task): Curve(result.steps, result["loss"])}, []
    for s in range(cfg.seeds):
        params, start = _member(result.params, s), _member(params0, s)
        G, mean = jacobian_moments(net.apply, params, X, block=cfg.block)  # (d, d), (10, d)
        G_full, mean = np.asarray(G, np.float64), np.asarray(mean, np.float64)
        nfm = np.asarray(neural_feature_matrix(params, start, first_layer=mlp_first_layer), np.float64)
        nfm_w = np.asarray(neural_feature_matrix(params, first_layer=mlp_first_layer), np.float64)
        G = spectrum(G_full)  # one eigendecomposition for every power of G
        half = matrix_power(G, 0.5)
        accuracy = float(np.mean(np.argmax(np.asarray(net.apply(params, X)), axis=1) == np.asarray(y)))
        scalars, grid = _fit_record(task, s, nfm, G, {
            "corr_half": feature_correlation(nfm, half),
            "corr_half_centered": feature_correlation(nfm, matrix_power(G_full - mean.T @ mean, 0.5)),
            "corr_half_weights": feature_correlation(nfm_w, half), "accuracy": accuracy})
        out.update(scalars)
        grids.append(grid)
        if s == 0:  # the diagonals, drawn as images
            out[key("diag", task, "nfm")] = Curve(np.arange(nfm.shape[0]), np.diag(nfm))
            out[key("diag", task, "agop_half")] = Curve(np.arange(nfm.shape[0]), np.diag(half))
    out[key("corr", task)] = Curve(ALPHAS, np.stack(grids))
    return out


def _balanced_init(cfg: Config, net: DeepLinear):
    """Exactly balanced, small, in random singular frames (``DeepLinear.init_aligned`` with Haar ``U0, V0``)."""
    r = min(cfg.d_in, cfg.d_out)

    def init(key):
        k_u, k_v, k_h = jax.random.split(key, 3)
        U0 = jnp.linalg.qr(jax.random.normal(k_u, (cfg.d_out, r), DLN_DTYPE))[0]  # (d_out, r) orthonormal
        V0 = jnp.linalg.qr(jax.random.normal(k_v, (cfg.d_in, r), DLN_DTYPE))[0]  # (d_in, r) orthonormal
        return net.init_aligned(k_h, U0, V0, cfg.u0)

    return jax.jit(init)  # one compilation instead of one per eager operation


def _measure_dln(cfg: Config, depth: int, progress=None) -> dict:
    """Train a depth-``L`` linear network; per seed the correlation of ``W_1^T W_1`` with ``(W^T W)^alpha``."""
    teacher = make_teacher(cfg.d_in, cfg.d_out, cfg.s, cfg.teacher_seed)
    X, Y = teacher.whitened_sample(jax.random.key(10_000 + cfg.dln_samples), cfg.dln_samples)
    net = DeepLinear((cfg.d_in,) + (cfg.hidden,) * (depth - 1) + (cfg.d_out,), dtype=DLN_DTYPE)
    init = _balanced_init(cfg, net)
    params0 = _stacked([init(jax.random.key(100 + s)) for s in range(cfg.seeds)])
    schedule = np.unique(np.geomspace(1, cfg.dln_steps, 24).astype(int))
    report = None if progress is None else (lambda done, total: progress(f"laws.feature-ansatz L={depth}", done,
                                                                          total))
    result = train(loss=mse_loss(net.apply), data=(X, Y), optimizer=OptimizerSpec("sgd", {"learning_rate": cfg.eta}),
                   seeds=list(range(cfg.seeds)), steps=schedule, params0=params0, progress=report)
    task = f"L{depth}"
    out, grids = {key("loss", task): Curve(result.steps * cfg.eta, result["loss"])}, []
    for s in range(cfg.seeds):
        params, start = _member(result.params, s), _member(params0, s)
        G = np.asarray(jacobian_moments(net.apply, params, X, block=cfg.block)[0], np.float64)  # (d_in, d_in)
        nfm = np.asarray(neural_feature_matrix(params, first_layer=dln_first_layer), np.float64)
        nfm_delta = np.asarray(neural_feature_matrix(params, start, first_layer=dln_first_layer), np.float64)
        G = spectrum(G)
        power = matrix_power(G, 1.0 / depth)
        scalars, grid = _fit_record(task, s, nfm, G, {
            "corr_theory": feature_correlation(nfm, power), "corr_theory_delta": feature_correlation(nfm_delta, power)})
        out.update(scalars)
        grids.append(grid)
    out[key("corr", task)] = Curve(ALPHAS, np.stack(grids))
    return out


def measure(cfg: Config, progress=None):
    out = {}
    for task in MLP_TASKS:
        out.update(_measure_mlp(cfg, task, progress))
    for depth in cfg.depths:
        out.update(_measure_dln(cfg, depth, progress))
    return out


# ---------------------------------------------------------------------------------------------
# Verdict


def _per_seed(measurement, task: str, name: str, seeds: int) -> np.ndarray:
    return np.array([measurement[key(task, name, s)] for s in range(seeds)], dtype=np.float64)


def summarize(cfg: Config, prediction, measurement):
    """Per task: the smallest correlation at the predicted exponent over seeds, the mean best exponent and
    its correlation; over the linear networks the largest ``|alpha* - 1/L|`` and the smallest correlation at
    ``alpha*``; the MLPs' smallest training accuracy on MNIST; the diverged members."""
    S, out = cfg.seeds, {}
    for task in MLP_TASKS:
        for name in ("corr_half", "corr_half_centered", "corr_half_weights", "accuracy"):
            out[key(task, name, "min")] = float(_per_seed(measurement, task, name, S).min())
        out[key(task, "alpha_best", "mean")] = float(_per_seed(measurement, task, "alpha_best", S).mean())
        out[key(task, "corr_best", "min")] = float(_per_seed(measurement, task, "corr_best", S).min())
    errors, corrs = [], []
    for L in cfg.depths:
        task = f"L{L}"
        alpha = _per_seed(measurement, task, "alpha_best", S)
        out[key(task, "alpha_best", "mean")] = float(alpha.mean())
        out[key(task, "alpha_error", "max")] = float(np.max(np.abs(alpha - 1.0 / L)))
        out[key(task, "corr_best", "min")] = float(_per_seed(measurement, task, "corr_best", S).min())
        out[key(task, "corr_theory_delta", "min")] = float(_per_seed(measurement, task, "corr_theory_delta", S).min())
        errors.append(out[key(task, "alpha_error", "max")])
        corrs.append(out[key(task, "corr_best", "min")])
    curves = [measurement[key("loss", t)] for t in MLP_TASKS + tuple(f"L{L}" for L in cfg.depths)]
    out.update(diverged=count_diverged(*curves), dln_alpha_error=float(max(errors)), dln_corr_min=float(min(corrs)))
    return out


RULES = Rules(
    guards=(diverged("a member diverged; lower the learning rate"),
            Guard("MNIST training accuracy (min over seeds)", key("mnist", "accuracy", "min"), ">=", ACCURACY_MIN,
                  fmt=".3f", advice="the MLP has not learned MNIST; train longer")),
    checks=(Check("corr(NFM, AGOP^1/2) on MNIST-5k (min over seeds)", key("mnist", "corr_half", "min"), ">=",
                  MLP_MIN),
            Check("linear nets: max |alpha* - 1/L|", "dln_alpha_error", "<=", ALPHA_TOL),
            Check("linear nets: min corr at alpha*", "dln_corr_min", ">=", DLN_MIN, fmt=".6f")),
)


# ---------------------------------------------------------------------------------------------
# Figure


def _image(ax, values: np.ndarray, title: str):
    side = int(round(np.sqrt(values.size)))
    ax.imshow(values.reshape(side, side), cmap="viridis")
    ax.set(title=title, xticks=[], yticks=[])


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, (ax_mlp, ax_dln, ax_nfm, ax_agop) = new_figure(
        4, title="laws.feature-ansatz: corr(NFM, AGOP^alpha), Pearson over matrix entries")
    for task, color in zip(MLP_TASKS, COLORS):
        curve = measurement[key("corr", task)]
        band(ax_mlp, curve.x, curve.y, color=color, label=f"{task} (measured)")
    ax_mlp.axvline(0.5, color="black", linestyle="--", label="alpha = 1/2 (theory)")
    ax_mlp.axhline(MLP_MIN, color="gray", linestyle=":", linewidth=1)
    ax_mlp.set(xlabel="exponent alpha", ylabel="corr(NFM, AGOP^alpha)", title=f"ReLU MLP, width {cfg.width}")
    ax_mlp.legend(fontsize=7)
    for i, L in enumerate(cfg.depths):
        color = COLORS[(i + 2) % len(COLORS)]
        curve = measurement[key("corr", f"L{L}")]
        band(ax_dln, curve.x, curve.y, color=color, label=f"L = {L} (measured)")
        ax_dln.axvline(1.0 / L, color=color, linestyle="--", linewidth=1.2, label=f"1/L = {1 / L:.3g} (theory)")
    ax_dln.set(xlabel="exponent alpha", ylabel="corr(W_1^T W_1, AGOP^alpha)", title="balanced linear networks")
    ax_dln.legend(fontsize=7)
    _image(ax_nfm, measurement[key("diag", "mnist", "nfm")].y[0], "MNIST: diag NFM (seed 0)")
    _image(ax_agop, measurement[key("diag", "mnist", "agop_half")].y[0], "MNIST: diag AGOP^1/2 (seed 0)")
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="laws.feature-ansatz",
    pillar="simple laws",
    statement="The first-layer neural feature matrix (W - W0)^T (W - W0) of a trained network is proportional to "
              "AGOP^1/2, the square root of the average gradient outer product of its input Jacobians; for a "
              "balanced depth-L linear network W_1^T W_1 = AGOP^(1/L) exactly.",
    references=("Radhakrishnan, Beaglehole, Pandit & Belkin 2024, Science, arXiv:2212.13881",
                "Tansley, Massart & Cartis 2025, arXiv:2510.15563 (the exponent 1/L of deep linear networks)",
                "Arora, Cohen & Hazan 2018, arXiv:1802.06509 (balancedness is conserved)"),
    config=Config,
    presets={
        # tiny: every path in seconds on small subsets; too short for MNIST's accuracy guard (may be inconclusive)
        "tiny": {"seeds": 1, "mnist_samples": 300, "digits_samples": 200, "width": 32, "steps": 60,
                 "batch_size": 64, "depths": (2,), "dln_steps": 200, "eta": 0.02},
        "quick": {"seeds": 1, "steps": 400},
        "full": {"seeds": 3, "width": 256, "steps": 2000, "dln_steps": 4000, "eta": 0.005, "d_in": 16, "d_out": 8,
                 "hidden": 16, "s": (4.0, 3.0, 2.0, 1.5, 1.0, 0.75, 0.5, 0.25)},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
)
