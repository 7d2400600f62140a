"""universal.representations — independently trained networks converge to similar representations.

Statement (Kornblith, Norouzi, Lee & Hinton 2019, arXiv:1905.00414; Huh, Cheung, Wang & Isola
2024, arXiv:2405.07987): the similarity of the hidden representations of two networks trained
from independent seeds rises with width (and with performance); how much depends on the metric.

Experiment. One-hidden-layer ReLU MLPs ``d -> m -> 10`` on real data (the scikit-learn digits in
``quick``, the MNIST 5k subset in ``full``; :mod:`learnmech.data.real`), a random held-out split of
``n_test`` images and the rest for training. Square loss ``L = (1/2n) sum_i ||f(x_i) - t_i||^2`` on
the centred one-hot targets of :func:`learnmech.data.regression_targets`; Adam (optax defaults)
with ``batch_size`` minibatches (indices drawn i.i.d., with replacement) for a fixed number of
``steps`` at every width, each seed with its own initialisation and minibatch order.
Representation: the hidden post-activations ``relu(x W1 + b1)`` on the held-out images,
``(n_test, m)``. For every pair of seeds and every width: linear CKA, debiased CKA, mutual kNN
(``k = knn_k``, cosine neighbours as Huh et al.) and, when listed in ``metrics``, RBF CKA
(:mod:`learnmech.observe.representation`).

Which parameterisation. Widths are compared at one learning rate, so the width sweep must have a
limit: muP for Adam (Yang & Hu 2021, arXiv:2011.14522; Yang et al. 2022, arXiv:2203.03466, Table
3), with base width ``widths[0]`` (where it *is* the standard parameterisation). In SP at a fixed
Adam learning rate every readout entry moves by ``~eta`` per step, so the output moves by
``~eta m``: wide SP networks are a different training regime, not a larger copy of the narrow
one. The network is :class:`learnmech.nets.MaskedMLP` (muP-Adam in the multiplier gauge, every
learning rate ``eta``; its docstring has the derivation): the width enters only through a scalar
and a mask, so one vectorised ``learnmech.train.train`` call trains every width x seed at the
widest shape (narrower members have their extra units masked to exactly zero; their gradients and
Adam updates are zero): one compilation for the quick preset. ``pad_widths=False`` trains each
width at its own shape (no wasted work on wide nets; one compilation per width) for the full preset.

Prediction. (i) In the muP limit the training dynamics of the hidden units are deterministic
given their initial weights, and the units are exchangeable: the kernel of the representation,
``K = (1/m) sum_j u_j u_j^T``, is an average over ``m`` units of a seed-independent distribution
plus ``O(1/sqrt(m))`` fluctuations. Every metric therefore tends to 1 as ``m -> infinity``, and
``1 - CKA = O(1/m)``. (ii) At initialisation (the lazy limit) the constant is exact to first order
in ``1/m``: ``linear CKA_init(m) = 1 / (1 + v / m)`` with ``v = E||u||^4 / ||M||_F^2 - 1``
(:func:`learnmech.observe.representation.lazy_linear_cka`, derivation there), computed by Monte
Carlo over ``theory_units`` draws on the held-out inputs. The measurement records every metric at
initialisation too (on independent numpy draws of the same initial hidden layer, ``relu(X W1)``,
not the trained members' own draws: the statistics are the same, and a second threefry draw in
JAX would cost a compilation), so the figure shows how far training moves the similarity from
this baseline.

Verdict (CLAIMS.md): for every metric, the mean over seed pairs of the cross-seed similarity at
the widest width exceeds that at the narrowest (``value`` = the smallest such gain, threshold 0).
Reported: Spearman rank correlation between every two metrics over all (width, pair) values and
within widths (over pairs), the width pairs on whose order two metrics disagree, the log-log slope
of ``1 - linear CKA`` against width (prediction (i): -1), and the initial linear CKA against (ii).
Inconclusive when a member diverged or a member's final training loss is above ``converged_loss``
times its initial loss.

Why the metrics can disagree: CKA weighs the top principal directions of the representation,
which even a 16-unit network spends on the 10-class structure; kNN neighbourhoods depend on the
whole spectrum.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator, model_validator
from scipy.stats import spearmanr

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import indexed, key
from learnmech.atlas.metrics import log_slope
from learnmech.atlas.rules import Check, Guard, Rules, count_diverged, diverged
from learnmech.data import load_digits, load_mnist5k, regression_targets
from learnmech.increasing import Increasing
from learnmech.nets import MaskedMLP
from learnmech.observe import mse
from learnmech.observe.representation import debiased_cka, lazy_linear_cka, linear_cka, mutual_knn, rbf_cka
from learnmech.report import COLORS, band, finish_figure, new_figure, theory_line
from learnmech.train import OptimizerSpec, log_schedule, train

__all__ = ["CLAIM", "Config", "METRICS", "RULES", "metric_agreement", "similarities", "summarize"]

MARGIN = 0.0  # CLAIMS.md: similarity at the widest width exceeds that at the narrowest
REQUIRED = ("linear_cka", "debiased_cka", "mutual_knn")  # CLAIMS.md's metrics
METRICS = REQUIRED + ("rbf_cka",)
LABELS = {"linear_cka": "linear CKA", "debiased_cka": "debiased CKA", "mutual_knn": "mutual kNN",
          "rbf_cka": "RBF CKA"}
SPAN_MIN = 8.0  # the widths span at least 8x
CLASSES = 10
DATASET_SIZE = {"digits": 1797, "mnist5k": 5000}
DTYPE = jnp.float32


class Config(ClaimConfig):
    seeds: int = Field(4, ge=2, le=64, description="independent networks per width (pairs = seeds choose 2)")
    dataset: Literal["digits", "mnist5k"] = Field("digits", description="bundled real data set")
    widths: Increasing(int, 2, "widths") = Field((16, 32, 64, 128), description="hidden widths, increasing, "
                                                 "spanning >= 8x; the first is the muP base width")
    n_test: int = Field(500, ge=20, le=4000, description="held-out images on which representations are compared")
    learning_rate: float = Field(3e-3, gt=0, le=1.0, description="Adam learning rate (muP: the same at every width)")
    batch_size: int = Field(128, ge=1, le=4096, description="examples per minibatch")
    steps: int = Field(1000, ge=10, le=100_000, description="training steps, the same at every width")
    points: int = Field(8, ge=2, le=200, description="observation points of the training loss (log-spaced)")
    metrics: tuple[str, ...] = Field(REQUIRED, description=f"similarity metrics, among {METRICS}")
    knn_k: int = Field(10, ge=1, le=100, description="neighbours of the mutual kNN metric")
    sigma_frac: float = Field(0.8, gt=0, le=10.0, description="RBF bandwidth / median pairwise distance")
    pad_widths: bool = Field(True, description="train every width in one call at the widest shape (masked)")
    converged_loss: float = Field(0.25, gt=0, lt=1, description="final/initial training loss needed for a verdict")
    theory_units: int = Field(5000, ge=100, le=1_000_000, description="Monte Carlo units for the init prediction")
    data_seed: int = 0

    @field_validator("widths")
    @classmethod
    def _span(cls, w: tuple[int, ...]) -> tuple[int, ...]:
        if w[-1] < SPAN_MIN * w[0]:
            raise ValueError(f"must span at least {SPAN_MIN:g}x (widest / narrowest), got {w[0]}..{w[-1]}")
        return w

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, m: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(m) - set(METRICS)
        if unknown or not set(REQUIRED) <= set(m) or len(set(m)) != len(m):
            raise ValueError(f"must list each of {REQUIRED} once, optionally 'rbf_cka'; got {m}")
        return tuple(x for x in METRICS if x in m)  # canonical order

    @model_validator(mode="after")
    def _sizes(self):
        n_train = DATASET_SIZE[self.dataset] - self.n_test
        if n_train < self.batch_size:
            raise ValueError(f"n_test: leaves {n_train} training images, fewer than batch_size {self.batch_size}")
        if self.knn_k >= self.n_test:
            raise ValueError(f"knn_k: must be below n_test = {self.n_test}")
        return self


# ---------------------------------------------------------------------------------------------
# Data and theory


def _split(cfg: Config):
    """``(X_train, T_train, X_test, y_test)``: float32 inputs, centred one-hot targets, int labels."""
    X, y = (load_digits if cfg.dataset == "digits" else load_mnist5k)()
    X, y = np.asarray(X), np.asarray(y)  # (N, d), (N,)
    perm = np.random.default_rng(cfg.data_seed).permutation(len(y))
    test, tr = perm[: cfg.n_test], perm[cfg.n_test:]
    T = np.asarray(regression_targets(jnp.asarray(y[tr]), CLASSES, dtype=DTYPE))  # (n_train, 10)
    return X[tr], T, X[test], y[test]


def predict(cfg: Config):
    _, _, X_test, _ = _split(cfg)
    widths = np.asarray(cfg.widths, np.float64)
    return {
        "lazy_linear_cka": Curve(widths, lazy_linear_cka(X_test, widths, units=cfg.theory_units, seed=cfg.data_seed)),
        "limit": Curve(widths, np.ones(widths.size)),  # muP limit: every metric -> 1
    }


# ---------------------------------------------------------------------------------------------
# Experiment


def _initial_features(X, width: int, rng: np.random.Generator) -> np.ndarray:
    """The hidden layer at initialisation drawn in numpy, ``relu(X W1)``, ``W1 ~ N(0, I/d)`` ``(d, width)``.

    ``X`` is ``(n, d)``; returns ``(n, width)`` in float64 (the distribution of
    :meth:`learnmech.nets.MaskedMLP.init`'s live units, whose ``b1 = 0``).
    """
    X = np.asarray(X, np.float64)
    return np.maximum(X @ (rng.standard_normal((X.shape[1], width)) / math.sqrt(X.shape[1])), 0.0)


def _metric_fns(cfg: Config):
    fns = {"linear_cka": linear_cka, "debiased_cka": debiased_cka,
           "mutual_knn": lambda a, b: mutual_knn(a, b, cfg.knn_k),
           "rbf_cka": lambda a, b: rbf_cka(a, b, cfg.sigma_frac)}
    return {m: fns[m] for m in cfg.metrics}


def similarities(reps, fns) -> dict[str, np.ndarray]:
    """Every metric on every pair ``a < b`` of ``reps`` ``(seeds, n, M)``: ``{metric: (pairs,)}``.

    Masked (all-zero) columns change none of the metrics: they add nothing to any Gram matrix,
    norm or distance.
    """
    pairs = list(itertools.combinations(range(len(reps)), 2))
    return {name: np.array([float(f(reps[a], reps[b])) for a, b in pairs]) for name, f in fns.items()}


def _train_group(cfg: Config, net: MaskedMLP, widths, data, progress, done_before: int, total: int):
    """One ``train`` call for ``widths`` at the shape of ``net`` (the widest of them)."""

    def loss(params, batch, hp):
        x, t = batch
        return mse(net.apply(params, x, hp["width"]), t)

    report = None if progress is None else (
        lambda done, _t: progress("universal.representations", done_before + done * len(widths), total))
    return train(init=lambda key, hp: net.init(key, hp["width"]), loss=loss, data=data,
                 optimizer=OptimizerSpec("adam", {"learning_rate": cfg.learning_rate}), seeds=list(range(cfg.seeds)),
                 grid={"width": list(widths)}, steps=log_schedule(cfg.steps, cfg.points), batch_size=cfg.batch_size,
                 sampling="with_replacement", layout="vmap", progress=report)


@functools.partial(jax.jit, static_argnums=0)
def _evaluate(net: MaskedMLP, params, x, width):
    """Per seed (leading axis of ``params``): outputs ``(S, n, 10)`` and hidden units ``(S, n, M)``."""
    return jax.vmap(lambda p: net.forward(p, x, width))(params)


def measure(cfg: Config, progress=None):
    X_tr, T_tr, X_te, y_te = _split(cfg)
    data = (jnp.asarray(X_tr, DTYPE), jnp.asarray(T_tr, DTYPE))
    t_test = np.asarray(regression_targets(jnp.asarray(y_te), CLASSES), np.float64)  # (n_test, 10)
    groups = [cfg.widths] if cfg.pad_widths else [(m,) for m in cfg.widths]
    fns = _metric_fns(cfg)
    W, S = len(cfg.widths), cfg.seeds
    sims = {key(kind, name): [] for kind in ("similarity", "init_similarity") for name in fns}
    acc, test_loss, out = np.zeros((S, W)), np.zeros((S, W)), {}
    i = 0
    for group in groups:
        net = MaskedMLP(d_in=X_tr.shape[1], max_width=max(group), d_out=CLASSES, base_width=cfg.widths[0])
        result = _train_group(cfg, net, group, data, progress, i * cfg.steps, cfg.steps * W)
        for g, m in enumerate(group):
            final = jax.tree.map(lambda a: jnp.asarray(a[g]), result.params)  # leaves (S, ...)
            outputs, reps = _evaluate(net, final, jnp.asarray(X_te, DTYPE), m)  # (S, n, 10), (S, n, M)
            rngs = [np.random.default_rng((cfg.data_seed, 1 + s, m)) for s in range(S)]
            reps0 = np.zeros(reps.shape)  # (S, n, M): zero columns beyond m, as in reps (one compilation per metric)
            reps0[..., :m] = np.stack([_initial_features(X_te, m, r) for r in rngs])
            reps0 = jnp.asarray(reps0, DTYPE)
            for kind, r in (("similarity", reps), ("init_similarity", reps0)):
                for name, v in similarities(r, fns).items():
                    sims[key(kind, name)].append(v)
            outputs = np.asarray(outputs, np.float64)
            acc[:, i] = np.mean(np.argmax(outputs, -1) == y_te[None], axis=1)
            test_loss[:, i] = 0.5 * np.sum((outputs - t_test[None]) ** 2, axis=(1, 2)) / len(y_te)
            out[key("train_loss", i)] = Curve(result.steps, result["loss"][g])  # (S, T), step 0 = initial
            i += 1
    widths = np.asarray(cfg.widths, np.float64)
    out.update({k: Curve(widths, np.stack(v, axis=1)) for k, v in sims.items()})  # (pairs, W)
    out["test_accuracy"] = Curve(widths, acc)
    out["test_loss"] = Curve(widths, test_loss)
    return out


# ---------------------------------------------------------------------------------------------
# Summary, verdict and figure


def metric_agreement(sims: dict[str, np.ndarray]) -> dict[str, float]:
    """Rank agreement of metrics given ``{metric: (pairs, W)}`` similarities.

    ``spearman/A~B``: Spearman correlation over all (width, pair) values; ``spearman_within/A~B``:
    the mean over widths of the correlation over pairs (needs >= 3 pairs); ``order_disagreements/A~B``:
    the number of width pairs ``i < j`` whose mean similarities the two metrics order oppositely.
    """
    out = {}
    for a, b in itertools.combinations(sims, 2):
        ya, yb = np.asarray(sims[a]), np.asarray(sims[b])
        out[key("spearman", f"{a}~{b}")] = float(spearmanr(ya.ravel(), yb.ravel()).statistic)
        if ya.shape[0] >= 3:
            within = [spearmanr(ya[:, i], yb[:, i]).statistic for i in range(ya.shape[1])]
            out[key("spearman_within", f"{a}~{b}")] = float(np.nanmean(within))
        ma, mb = ya.mean(0), yb.mean(0)
        flips = [(i, j) for i, j in itertools.combinations(range(ma.size), 2)
                 if np.sign(ma[j] - ma[i]) * np.sign(mb[j] - mb[i]) < 0]
        out[key("order_disagreements", f"{a}~{b}")] = float(len(flips))
    return out


def summarize(cfg: Config, prediction, measurement):
    """Per metric and width the mean cross-seed similarity (trained and at init) and the gain
    widest - narrowest; the metrics' rank agreement; the slope of ``1 - linear CKA``; the init CKA
    against prediction (ii); test accuracy; and what the guards need: diverged members and the
    worst final / initial training loss."""
    widths = np.asarray(cfg.widths, np.float64)
    sims = {m: measurement[key("similarity", m)].y for m in cfg.metrics}  # (pairs, W)
    losses = indexed(measurement, "train_loss")  # W curves, each (S, T)
    ratio = np.stack([c.y[:, -1] / c.y[:, 0] for c in losses], axis=1)  # (S, W) final / initial
    out = {"diverged": count_diverged(*losses, measurement["test_loss"],
                                      *(measurement[key("similarity", m)] for m in cfg.metrics)),
           "loss_ratio_max": float(np.max(ratio)), "converged_loss": cfg.converged_loss}
    for m, y in sims.items():
        init = measurement[key("init_similarity", m)].y.mean(0)
        for i, w in enumerate(cfg.widths):
            out[key(m, w)] = float(y[:, i].mean())
            out[key(f"{m}_init", w)] = float(init[i])
        out[key("gain", m)] = float(y[:, -1].mean() - y[:, 0].mean())
    out["gain_min"] = float(np.min([out[key("gain", m)] for m in cfg.metrics]))
    out.update(metric_agreement(sims))
    lin = sims["linear_cka"].mean(0)
    if np.all(lin < 1):
        out["slope_one_minus_linear_cka"] = log_slope(widths, 1.0 - lin)  # prediction (i): -1
    init = measurement[key("init_similarity", "linear_cka")].y.mean(0)
    pred = prediction["lazy_linear_cka"].y[0]
    out.update({key("linear_cka_init_predicted", w): float(p) for w, p in zip(cfg.widths, pred)})
    out["init_one_minus_cka_rel_error_max"] = float(np.max(np.abs((1 - init) / (1 - pred) - 1)))
    acc = measurement["test_accuracy"].y.mean(0)
    out.update({key("test_accuracy", w): float(a) for w, a in zip(cfg.widths, acc)})
    return out


RULES = Rules(
    guards=(diverged("a member diverged (NaN loss or similarity); lower the learning rate"),
            Guard("final / initial training loss (max)", "loss_ratio_max", "<=", "converged_loss", fmt=".3f",
                  advice="a member ended above converged_loss of its initial training loss; train longer")),
    checks=(Check("min over metrics of similarity gain widest - narrowest", "gain_min", ">", MARGIN),
            *(Check(f"{LABELS[m]} gain widest - narrowest", key("gain", m), ">", MARGIN) for m in REQUIRED)),
)


def _width_axis(ax, widths):
    ax.set_xscale("log", base=2)
    ax.minorticks_off()
    ax.set_xticks(widths, [f"{w:g}" for w in widths])


def _plot_similarity(ax, cfg: Config, prediction, measurement, summary):
    widths = np.asarray(cfg.widths, np.float64)
    markers = {"linear_cka": "o", "debiased_cka": "x", "mutual_knn": "s", "rbf_cka": "^"}
    for k, m in enumerate(cfg.metrics):
        band(ax, widths, measurement[key("similarity", m)].y, color=COLORS[k],
             label=f"{LABELS[m]} (trained, 10-90% of pairs)", marker=markers[m], markersize=4)
        ax.plot(widths, [summary[key(f"{m}_init", w)] for w in cfg.widths], ":", color=COLORS[k], linewidth=1.0)
    theory_line(ax, widths, prediction["lazy_linear_cka"].y[0], color="black",
                label="linear CKA at init, 1 / (1 + v/m) (theory)")
    ax.plot([], [], ":", color="gray", label="same metric at initialisation (measured)")
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set(xlabel="hidden width m", ylabel="cross-seed similarity (held-out inputs)", ylim=(0, 1.02))
    _width_axis(ax, widths)
    ax.legend(fontsize=6.5, loc="lower right")


def _plot_scatter(ax, cfg: Config, measurement):
    sims = {m: measurement[key("similarity", m)].y for m in cfg.metrics}  # (pairs, W)
    x = sims["linear_cka"]
    shades = np.linspace(0.25, 1.0, len(cfg.widths))
    for k, (m, y) in enumerate(sims.items()):
        if m == "linear_cka":
            continue
        for i, s in enumerate(shades):
            ax.scatter(x[:, i], y[:, i], s=12, color=COLORS[k], alpha=float(s), linewidths=0,
                       label=LABELS[m] if i == len(shades) - 1 else None)
    lo = min(float(np.min(v)) for v in sims.values())
    ax.plot([lo, 1], [lo, 1], color="gray", linewidth=0.7, label="y = x")
    ax.set(xlabel="linear CKA (one point per width x seed pair)", ylabel="other metric",
           title="metric vs metric (darker = wider)")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7)


def _plot_performance(ax, cfg: Config, measurement):
    widths = np.asarray(cfg.widths, np.float64)
    band(ax, widths, measurement["test_accuracy"].y, color=COLORS[0], label="test accuracy", marker="o", markersize=3)
    ax.set(xlabel="hidden width m", ylabel="test accuracy (held-out)")
    _width_axis(ax, widths)
    twin = ax.twinx()
    band(twin, widths, measurement["test_loss"].y, color=COLORS[3], label="test loss (1/2n sum ||f - t||^2)",
         marker="s", markersize=3)
    twin.set_ylabel("test loss", color=COLORS[3])
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper center")


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, (ax_s, ax_m, ax_p) = new_figure(3, title=f"universal.representations: 1-hidden-layer ReLU MLPs (muP, Adam) "
                                                   f"on {cfg.dataset}, {cfg.seeds} seeds per width")
    _plot_similarity(ax_s, cfg, prediction, measurement, summary)
    _plot_scatter(ax_m, cfg, measurement)
    _plot_performance(ax_p, cfg, measurement)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="universal.representations",
    pillar="universal behaviours",
    statement="The hidden representations of networks trained from independent seeds grow more similar with width, "
              "by every metric (linear and debiased CKA, mutual kNN), though the metrics rank them differently.",
    references=("Kornblith, Norouzi, Lee & Hinton 2019, arXiv:1905.00414",
                "Nguyen, Raghu & Kornblith 2021, arXiv:2010.15327",
                "Huh, Cheung, Wang & Isola 2024, arXiv:2405.07987"),
    config=Config,
    presets={
        "tiny": {"seeds": 3, "widths": (16, 128), "n_test": 40, "batch_size": 32, "steps": 100, "points": 2,
                 "learning_rate": 1e-2, "metrics": METRICS, "knn_k": 5, "theory_units": 100},
        "quick": {},
        "full": {"dataset": "mnist5k", "seeds": 8, "widths": (16, 32, 64, 128, 256, 512), "n_test": 1000,
                 "steps": 2000, "points": 20, "metrics": METRICS, "pad_widths": False},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("representations", "width", "real data"),
)
