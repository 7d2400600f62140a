"""universal.fourier-features — networks learn modular addition with Fourier features, and grok.

Statement (Nanda, Chan, Lieberum, Smith & Steinhardt 2023, arXiv:2301.05217; Gromov 2023,
arXiv:2301.02679; Morwani, Edelman, Oncescu, Zhao & Kakade 2023, arXiv:2311.07568): on ``a + b mod p``
with one-hot inputs, trained networks represent the inputs with a few Fourier frequencies (neuron weights
``~ cos(2 pi k a / p + phi)``); Gromov's analytic two-layer quadratic network scores 100%; with weight
decay and a training fraction well below 1, test accuracy rises long after train accuracy (grokking).

Theory (``learnmech.theory.modular``). Gromov's network with ``N = analytic_width`` neurons (his
argument needs ``N`` large: the unwanted terms cancel as ``1/sqrt(N)``), frequencies
``s_k = 1 + (k mod (p-1)/2)`` (every frequency pair equally often) and phases drawn i.i.d. uniform on
``[0, 2 pi)`` from ``data_seed`` (his construction), scored on all ``p^2`` pairs. Also recorded (not
judged): the phase-grid construction (9 neurons per frequency) whose output is exactly
``(9/4)(p [q = a + b] - 1)``.

Experiment. Two-layer networks of Gromov's form, ``f(a, b) = phi(u(a) + v(b)) W2`` (no biases; ``u, v`` the
two halves of ``W1``, ``(2p, N)``; the product of the one-hot input with ``W1`` is taken as a gather),
``phi(z) = z^2`` (quadratic) and ``phi(z) = max(z, 0)`` (ReLU). Initialisation ``W1 ~ init_scale N(0, 1)``,
``W2 ~ N(0, 1/N)``; square loss on one-hot targets, ``L = (1/2n) sum_i ||f(x_i) - e_{y_i}||^2`` (Gromov's
MSE); AdamW (optax, decoupled weight decay ``weight_decay``) full batch on a ``fraction`` of the ``p^2``
pairs (``learnmech.data.modular.train_test_split``, seed ``data_seed``); float32. Every
(activation, seed) member trains in one vectorised ``learnmech.train.train`` call; train and test
accuracy are observed on a log schedule of ``points`` steps.

Measured, per member: the first observed step at which train accuracy is 100% and at which test
accuracy is >= 95% (each known to within one observation interval, about ``ln(steps)/points`` relative)
and their ratio, the grokking delay; after training, each neuron's Fourier concentration (share of its
input-weight power, the constant ``k = 0`` excluded, in its best pair ``(k, p - k)``;
``learnmech.theory.modular.fourier_concentration``). Which neurons are judged: weight decay drives
the neurons the solution does not use to zero (or below 1e-30 of the largest contribution), and a zero or
vanishing neuron has no frequency content to judge; a neuron is judged when its contribution
``||u, v||^r ||W2[k]||`` (``r = 2`` quadratic, ``r = 1`` ReLU: the degree of ``phi``) is at least
``NEURON_FLOOR = 1%`` of the largest in its network. The fraction judged is reported.

Verdict (the specification): Gromov's network scores 100%; and for every (activation, seed) member, all
must hold: >= 90% of the judged neurons put >= 80% of their power in one pair, and the test-95% step is
>= 2x the train-100% step. The headline is the smallest value over members (per-activation minima are in
the details). A member is judged on concentration and delay only once it has generalised (test >= 95%);
a judged member that misses a check makes the verdict fail at once (``decisive_failures``); otherwise a
diverged member, a member that never fits its training set, or one that never reaches 95% test accuracy
within ``steps`` makes the verdict inconclusive (grokking not seen within the budget).

Hyperparameters (fixed before the verdicts below, from a short exploration at ``p = 31`` that looked only
at whether the networks fit and generalise within the budget): with ``W1 ~ N(0, 1)`` the quadratic network
under the MSE stalled below 100% train accuracy and decayed to zero (its gradient is cubic in the weights,
weight decay linear); with cross-entropy (lr ``1e-2``) neither activation reached 95% test accuracy in 3,000
steps. ``init_scale = 0.3``, lr ``3e-2`` and weight decay 1 let both fit and generalise.

Presets (wall times of a whole run on the 2-core reference machine under load: load average ~3.5 for
tiny and quick, ~8 for full): ``tiny`` (``p = 11``, 60 steps, 3.1 s, inconclusive by design); ``quick``
(``p = 31``, ``N = 128``, 40% of the pairs, 3,000 steps, 2 seeds, 7.9 s): fails on concentration, still
short of the band at the end: 84-89% of the judged neurons above 80% (Gromov's network 100%, delays 2.9-4.4
quadratic and 8.6-9.2 ReLU);
``full`` (``p = 97``, ``N = 256``, 5,000 steps, 2 seeds, 776 s): fails on the delay. Both ReLU members
sit at chance for ~1,000 steps and then fit and generalise together (test 95% at steps 1,673 and 1,792,
train 100% at 1,919 and 1,986: ratios 0.87 and 0.90, no grokking), with clean Fourier features (96-100% of
136-142 judged neurons concentrated); both quadratic members keep only ~16 live neurons, each on one
frequency, and stall at 63-66% train accuracy (the same settings do not carry over from ``p = 31``). With
``init_scale = 0.3`` and ``learning_rate x weight_decay = 0.03`` per step (optax's decoupled decay, on both
layers) the full preset starts from small weights, where Liu, Michaud & Tegmark 2022 (arXiv:2210.01117)
trace the grokking delay to a large initial weight norm: the failure says "no delay at these settings", not
that grokking is absent at other initialisations.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.rules import Check, Rules, count_diverged, diverged, reached
from learnmech.report import COLORS, finish_figure, new_figure
from learnmech.data.modular import train_test_split
from learnmech.theory.modular import (all_pairs, fourier_concentration, gromov_accuracy, grid_phases,
                                      modular_labels, pair_power)
from learnmech.train import OptimizerSpec, log_schedule, train

__all__ = ["ACTIVATIONS", "CLAIM", "Config", "RULES", "member_numbers", "summarize"]

ACTIVATIONS = ("quadratic", "relu")
DEGREE = {"quadratic": 2, "relu": 1}  # phi(c z) = c^degree phi(z) for c > 0
POWER_SHARE = 0.8  # the specification: >= 80% of a neuron's power in one pair
NEURON_SHARE = 0.9  # ... for >= 90% of the neurons
DELAY = 2.0  # test-95% step >= 2x train-100% step
TEST_LEVEL = 0.95
NEURON_FLOOR = 0.01  # judged neurons: contribution >= 1% of the network's largest
DTYPE = jnp.float32


class Config(ClaimConfig):
    seeds: int = Field(2, ge=1, le=64, description="independent initialisations per activation")
    p: int = Field(31, ge=5, le=211, description="the modulus, a prime")
    width: int = Field(128, ge=4, le=2048, description="hidden neurons N of the trained networks")
    analytic_width: int = Field(512, ge=1, le=4096, description="neurons of Gromov's analytic network")
    fraction: float = Field(0.4, gt=0, le=0.8, description="share of the p^2 pairs used for training")
    activations: tuple[Literal["quadratic", "relu"], ...] = Field(ACTIVATIONS, description="hidden activations")
    init_scale: float = Field(0.3, gt=0, le=10.0, description="standard deviation of the input weights")
    learning_rate: float = Field(3e-2, gt=0, le=1.0, description="AdamW learning rate")
    weight_decay: float = Field(1.0, ge=0, le=100.0, description="AdamW decoupled weight decay (optax)")
    steps: int = Field(3000, ge=10, le=200_000, description="full-batch AdamW steps")
    points: int = Field(120, ge=10, le=2000, description="log-spaced observation steps of the accuracies")
    data_seed: int = Field(0, description="seed of the train/test split and of Gromov's phases")

    @field_validator("p")
    @classmethod
    def _prime(cls, p: int) -> int:
        if any(p % d == 0 for d in range(2, int(p**0.5) + 1)):
            raise ValueError(f"must be a prime, got {p}")
        return p

    @field_validator("activations")
    @classmethod
    def _activations(cls, acts: tuple[str, ...]) -> tuple[str, ...]:
        if not acts or len(set(acts)) != len(acts):
            raise ValueError(f"must list distinct activations among {ACTIVATIONS}, got {acts}")
        return acts


# ---------------------------------------------------------------------------------------------
# Theory


def predict(cfg: Config):
    """Accuracy on all ``p^2`` pairs of Gromov's network (random phases, ``analytic_width`` neurons) and of the
    exact phase-grid one."""
    half = (cfg.p - 1) // 2
    rng = np.random.default_rng(cfg.data_seed)
    s = 1 + np.arange(cfg.analytic_width) % half  # (N,): every frequency pair equally often
    phases = rng.uniform(0.0, 2 * np.pi, (2, cfg.analytic_width))
    grid_s = np.arange(1, half + 1).repeat(9)  # 9 = the 3 x 3 phase grid per frequency
    return {"analytic_accuracy": gromov_accuracy(cfg.p, s, *phases),
            "analytic_accuracy_grid": gromov_accuracy(cfg.p, grid_s, *grid_phases(3, half))}


# ---------------------------------------------------------------------------------------------
# Experiment


def _network(p: int, width: int, init_scale: float):
    """``(init, apply)``: ``apply(params, pairs, act) = phi(W1[a] + W1[p + b]) @ W2``, ``act`` 0: z^2, 1: relu."""

    def init(key):
        k1, k2 = jax.random.split(key)
        return {"w1": init_scale * jax.random.normal(k1, (2 * p, width), DTYPE),
                "w2": jax.random.normal(k2, (width, p), DTYPE) / np.sqrt(width)}

    def apply(params, pairs, act):
        h = params["w1"][pairs[:, 0]] + params["w1"][p + pairs[:, 1]]  # (n, N) = one-hot(a, b) @ W1
        return jnp.where(act == 0, h * h, jax.nn.relu(h)) @ params["w2"]  # (n, p)

    return init, apply


def measure(cfg: Config, progress=None):
    split = train_test_split(cfg.p, cfg.fraction, cfg.data_seed)
    pairs = all_pairs(cfg.p)
    labels = modular_labels(pairs, cfg.p)
    tr_x, te_x = (jnp.asarray(pairs[i], jnp.int32) for i in split)  # (n, 2): residues
    tr_y, te_y = (jnp.asarray(labels[i]) for i in split)
    init, apply = _network(cfg.p, cfg.width, cfg.init_scale)
    act_ids = np.asarray([ACTIVATIONS.index(a) for a in cfg.activations], np.int32)

    def loss(params, batch, hp):
        x, y = batch
        return 0.5 * jnp.sum((apply(params, x, hp["activation"]) - y) ** 2) / x.shape[0]

    def observe(params, params0, hp):
        acc = lambda x, y: jnp.mean(jnp.argmax(apply(params, x, hp["activation"]), -1) == y)  # noqa: E731
        return {"train_accuracy": acc(tr_x, tr_y), "test_accuracy": acc(te_x, te_y)}

    report = None if progress is None else (lambda d, t: progress("universal.fourier-features", d, t))
    result = train(init=init, loss=loss, data=(tr_x, jax.nn.one_hot(tr_y, cfg.p, dtype=DTYPE)),
                   optimizer=OptimizerSpec("adamw", {"learning_rate": cfg.learning_rate,
                                                     "weight_decay": cfg.weight_decay}),
                   seeds=list(range(cfg.seeds)), grid={"activation": act_ids},
                   steps=log_schedule(cfg.steps, cfg.points), observe=observe, blowup=None, layout="vmap",
                   progress=report)
    return _records(cfg, result)


def _records(cfg: Config, result):
    """Per activation: accuracy and loss curves ``(seeds, T)``; per neuron concentration and contribution
    ``(seeds, N)``; per seed the pair power spectrum of every neuron ``(N, floor(p/2) + 1)``."""
    steps = np.asarray(result.steps, np.float64)
    neurons, freqs = np.arange(cfg.width, dtype=np.float64), np.arange(cfg.p // 2 + 1, dtype=np.float64)
    out = {}
    for i, act in enumerate(cfg.activations):
        for name in ("train_accuracy", "test_accuracy", "loss"):
            out[key(name, act)] = Curve(steps, result.observations[name][i])
        w1 = np.asarray(result.params["w1"][i], np.float64)  # (S, 2p, N)
        w2 = np.asarray(result.params["w2"][i], np.float64)  # (S, N, p)
        conc = np.stack([fourier_concentration(w, cfg.p)[0] for w in w1])  # (S, N)
        size = np.linalg.norm(w1, axis=1) ** DEGREE[act] * np.linalg.norm(w2, axis=2)  # (S, N)
        out[key("concentration", act)] = Curve(neurons, np.nan_to_num(conc, nan=0.0))
        out[key("contribution", act)] = Curve(neurons, size)
        for s in range(cfg.seeds):
            power = pair_power(w1[s, : cfg.p], cfg.p) + pair_power(w1[s, cfg.p:], cfg.p)  # (K, N)
            out[key("power", act, s)] = Curve(freqs, power.T)
    return out


# ---------------------------------------------------------------------------------------------
# Summary and verdict


def _first_step(steps: np.ndarray, values: np.ndarray, level: float) -> float:
    hit = np.flatnonzero(values >= level)
    return float(steps[hit[0]]) if hit.size else float("nan")


def member_numbers(steps, train_acc, test_acc, concentration, contribution) -> dict[str, float]:
    """One member's numbers: train-100% and test-95% steps, their ratio, and (once it has generalised) the
    fraction of judged neurons (contribution >= NEURON_FLOOR of the largest) with concentration >= 0.8."""
    t_train, t_test = _first_step(steps, train_acc, 1.0), _first_step(steps, test_acc, TEST_LEVEL)
    judged = contribution >= NEURON_FLOOR * np.max(contribution)
    grokked = np.isfinite(t_test)
    return {"train_step": t_train, "test_step": t_test,
            "delay_ratio": t_test / max(t_train, 1.0) if grokked and np.isfinite(t_train) else float("nan"),
            "judged_neurons": float(judged.sum()),
            "concentrated": float(np.mean(concentration[judged] >= POWER_SHARE)) if grokked else float("nan")}


def _nanmin(values) -> float:
    values = np.asarray(values, np.float64)
    return float(np.nanmin(values)) if np.any(np.isfinite(values)) else float("nan")


def summarize(cfg: Config, prediction, measurement):
    """Per member (keys ``activation/seed/...``, :func:`member_numbers`), per activation and over all members the
    smallest delay ratio and concentrated fraction; how many members fitted, generalised, diverged."""
    out = {"analytic_accuracy": float(prediction["analytic_accuracy"]),
           "analytic_accuracy_grid": float(prediction["analytic_accuracy_grid"])}
    rows = []
    for act in cfg.activations:
        tr, te = measurement[key("train_accuracy", act)], measurement[key("test_accuracy", act)]
        conc, size = measurement[key("concentration", act)].y, measurement[key("contribution", act)].y
        mine = [member_numbers(tr.x, tr.y[s], te.y[s], conc[s], size[s]) for s in range(cfg.seeds)]
        for s, numbers in enumerate(mine):
            out.update({key(act, s, k): v for k, v in numbers.items()})
        out[key(act, "min_delay_ratio")] = _nanmin([m["delay_ratio"] for m in mine])
        out[key(act, "min_concentrated")] = _nanmin([m["concentrated"] for m in mine])
        rows += mine
    # members of different activations share seed rows: count each activation's diverged seeds separately
    diverged = sum(count_diverged(measurement[key("loss", a)], measurement[key("train_accuracy", a)])
                   for a in cfg.activations)
    out.update(members=float(len(rows)), diverged=float(diverged),
               members_fitted=float(sum(np.isfinite(m["train_step"]) for m in rows)),
               members_generalised=float(sum(np.isfinite(m["test_step"]) for m in rows)),
               min_delay_ratio=_nanmin([m["delay_ratio"] for m in rows]),
               min_concentrated=_nanmin([m["concentrated"] for m in rows]))
    return out


RULES = Rules(
    guards=(diverged("a member diverged; lower the learning rate"),
            reached("members reaching 100% train accuracy", "members_fitted", "members",
                    "a member never fitted its training set; train longer"),
            reached(f"members reaching {TEST_LEVEL:.0%} test accuracy", "members_generalised", "members",
                    "a member did not generalise within the budget (no grokking seen); train longer")),
    checks=(Check("Gromov's analytic network, accuracy on all p^2 pairs", "analytic_accuracy", ">=", 1.0),
            Check(f"min over members of the share of neurons with >= {POWER_SHARE:.0%} power in one pair",
                  "min_concentrated", ">=", NEURON_SHARE, fmt=".3f"),
            Check("min over members of step(test 95%) / step(train 100%)", "min_delay_ratio", ">=", DELAY,
                  fmt=".3f")),
    decisive_failures=True,
)


# ---------------------------------------------------------------------------------------------
# Figure


def _plot_accuracy(ax, cfg: Config, measurement, prediction):
    for i, act in enumerate(cfg.activations):
        for name, style in (("train_accuracy", ":"), ("test_accuracy", "-")):
            curve = measurement[key(name, act)]
            for s, y in enumerate(curve.y):
                ax.plot(np.maximum(curve.x, 1), y, style, color=COLORS[i], linewidth=1.1,
                        label=f"{act}, {name.split('_')[0]} (measured)" if s == 0 else None)
    ax.axhline(TEST_LEVEL, color="gray", linewidth=0.7)
    ax.set(xscale="log", xlabel="AdamW step (step 0 drawn at 1)", ylabel="accuracy",
           title=f"p = {cfg.p}, train fraction {cfg.fraction:g}; Gromov's network "
                 f"{float(prediction['analytic_accuracy']):.1%} (theory)")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7)


def _plot_spectrum(ax, cfg: Config, measurement, act: str):
    """Seed 0: each judged neuron's share of power per pair (k, p - k), k >= 1, neurons sorted by their best k."""
    power = measurement[key("power", act, 0)].y[:, 1:]  # (N, K - 1)
    size = measurement[key("contribution", act)].y[0]
    keep = size >= NEURON_FLOOR * size.max()
    share = power[keep] / power[keep].sum(axis=1, keepdims=True)
    order = np.argsort(np.argmax(share, axis=1), kind="stable")
    image = ax.imshow(share[order], aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest",
                      extent=(0.5, cfg.p // 2 + 0.5, share.shape[0], 0))
    ax.set(xlabel="frequency pair k (k, p - k)", ylabel="judged neuron (sorted by best k)",
           title=f"{act}: DFT power share of input weights (measured)")
    ax.title.set_fontsize(8)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, axes = new_figure(1 + len(cfg.activations),
                           title=f"universal.fourier-features: two-layer networks on a + b mod {cfg.p}")
    _plot_accuracy(axes[0], cfg, measurement, prediction)
    for ax, act in zip(axes[1:], cfg.activations):
        _plot_spectrum(ax, cfg, measurement, act)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="universal.fourier-features",
    pillar="universal behaviours",
    statement="Two-layer networks trained on a + b mod p with weight decay put each neuron's input weights on one "
              "Fourier frequency, generalise long after they fit the training pairs (grokking), and Gromov's "
              "analytic quadratic network scores 100%.",
    references=("Nanda, Chan, Lieberum, Smith & Steinhardt 2023, arXiv:2301.05217",
                "Gromov 2023, arXiv:2301.02679",
                "Morwani, Edelman, Oncescu, Zhao & Kakade 2023, arXiv:2311.07568"),
    config=Config,
    presets={
        # tiny: every code path in seconds; too short to grok (inconclusive)
        "tiny": {"seeds": 1, "p": 11, "width": 16, "steps": 60, "points": 20},
        "quick": {},
        "full": {"seeds": 2, "p": 97, "width": 256, "steps": 5000, "points": 250},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("grokking", "interpretability", "fourier"),
)
