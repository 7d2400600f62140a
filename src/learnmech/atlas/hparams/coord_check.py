"""hparams.coord-check — muP keeps every layer's updates width-independent.

Statement (Yang & Hu 2021, TP-IV, arXiv:2011.14522; Yang et al. 2022, TP-V, arXiv:2203.03466,
Table 3 and Appendix "coordinate check"; spectral form: Yang, Simon & Bernstein 2023,
arXiv:2310.17813): under the maximal-update parameterisation (muP) the RMS size of every layer's
activations and of their change over the first steps of training is Theta(1) in width; under the
standard parameterisation (SP) with the same learning rate the output-layer update grows with
width.

Experiment. ``learnmech.nets.MLP((d_in, n, ..., n, 1), "relu")`` with ``hidden_layers`` hidden
layers, at widths ``n`` spanning at least 8x, under ``"mup-adam"`` with ``base_width`` the
narrowest width and under ``"sp"``; Adam with one learning rate ``eta`` for both; ``k`` full-batch
steps on the centred loss ``L = (1/2n) sum_i (f(x_i; w) - f(x_i; w_0) - y_i)^2`` (see "Centring");
the coordinate check of
:func:`learnmech.observe.coords.coord_check` on held-out probe inputs records, per layer ``l``
(hidden post-activations, then the output), the RMS of ``h_l`` at init and the RMS of
``h_l(t) - h_l(0)`` after each step ``t``. At the base width muP *is* SP (every multiplier is 1),
so both parameterisations share the narrowest network: the comparison is purely how each scales.

muP with Adam (CLAIMS.md table; ``learnmech.nets.parameterization`` row ``mup-adam``, checked to
agree): input weights and biases init variance ``1/fan_in``, LR ``eta``; hidden weights init
variance ``1/fan_in``, LR ``eta base/fan_in``; output weights init variance ``base/fan_in^2``, LR
``eta base/fan_in``; hidden biases LR ``eta``.

Why the updates scale as they do (spectral argument of Yang, Simon & Bernstein 2023). Write a
layer as ``h_l = z_{l-1} W_l`` with ``W_l`` of shape ``(fan_in, fan_out)``. Adam's first step is
``Delta W_l = -eta_l sign(G_l)`` with ``G_l = sum_b z_{l-1,b}^T delta_{l,b}`` of low rank, so
``Delta W_l`` has entries ``+-eta_l`` and spectral norm ``||Delta W_l||_* ~ eta_l sqrt(fan_in
fan_out)``; the incoming features ``z_{l-1}`` (norm ``sqrt(fan_in)`` x RMS) are aligned with its
row space, so the update's own contribution to ``h_l`` has RMS
``||z_{l-1}|| ||Delta W_l||_* / sqrt(fan_out) ~ eta_l fan_in``. The change arriving from below,
``Delta z_{l-1} W_l``, has norm up to ``||Delta z_{l-1}|| ||W_l||_*``, attained when ``Delta
z_{l-1}`` is aligned with ``W_l``, which backpropagation guarantees for the last hidden layer
(its gradient is ``delta_L W_L^T``).

- SP (``eta_l = eta``, ``W ~ N(0, 1/fan_in)``, so ``||W_l||_* = Theta(1)`` for every layer,
  including the ``(n, 1)`` readout, where muP wants ``Theta(1/sqrt(n))``):
  input layer ``eta d_in`` -> exponent 0; hidden layers ``eta n`` -> exponent 1 (the square
  ``W_l`` passes the change from below on at ``Theta(1)`` per coordinate); output: own update
  ``eta n`` plus the last hidden layer's change, RMS ``~ eta n`` and aligned with ``W_L``,
  summed over ``n`` units with weights ``~ n^{-1/2}``: ``eta n^{3/2}``. So the output exponent
  is 3/2 with two or more hidden layers and 1 with one (where the hidden change is ``Theta(1)``
  and contributes only ``n^{1/2}``). These are first-step, leading-order exponents; between
  finite widths the ``n^1`` and ``n^{1/2}`` terms lower the measured slope somewhat.
- muP: ``eta_l fan_in = eta base`` for hidden and output layers, ``eta d_in`` for the input
  layer, and ``||W_L||_* ~ sqrt(base)/sqrt(n)`` cancels the ``sqrt(n)`` of the aligned sum:
  every exponent is 0. At initialisation every hidden layer has RMS ``Theta(1)``; the output has
  ``RMS ~ (base/n)^{1/2}`` (exponent -1/2) under muP and ``Theta(1)`` under SP.

Which step is judged. muP predicts Theta(1) changes after every one of the ``k`` steps, and its
ratios are judged at every step. The SP exponents describe one update from the initialisation:
at the widest widths that first update already moves the output far past the target (by the
factor ``(n/base)^{3/2}``), after which Adam's normalised steps carry it back, so ``h_t - h_0``
for ``t > 1`` measures the phase of that oscillation, not the size of the updates. SP is
therefore judged at step 1; its later steps are recorded and drawn.

Centring and targets. The targets are a random one-hidden-layer ReLU teacher rescaled to unit
RMS. The network is trained centred, on ``f(x; w) - f(x; w_0)`` (Chizat, Oyallon & Bach 2019,
arXiv:1812.07956), for both parameterisations. Reason: under muP the initial output has RMS
``~ (base/n)^{1/2}``, Theta(1) (about 0.5 here) at the base width and vanishing in the wide
networks, and it enters the residual ``f - y`` and so the signs of Adam's first steps. The
narrowest network then trains on a different residual than the wide ones, a finite-width effect
of the base network that does not shrink when the base grows (TP-V zero-initialises the readout
against it; centring does the same in function space while the readout weights keep their
``base/fan_in^2`` variance, so the hidden layers still receive gradient at step 1). Uncentred,
over six data draws (quick preset otherwise), the muP output-layer ratio ranged from 0.51 to 1.44
depending on the target; centred, from 0.84 to 1.01. Centring changes neither the activations
nor ``h_t - h_0``, and it leaves the SP exponents as they are.

Verdict (CLAIMS.md): under muP, for every layer (and here every step ``1..k``), the ratio of the
activation-update RMS (mean over seeds) between the widest and the narrowest network is within
``[0.75, 1.33]``; under SP the output-layer ratio (step 1) exceeds 2. Inconclusive if any member
produced a non-finite value.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator
from pydantic import Field, field_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.rules import Check, Rules, count_diverged, diverged
from learnmech.atlas.validators import widths_spanning
from learnmech.increasing import Increasing
from learnmech.nets import ACTIVATIONS, MLP
from learnmech.nets.students import MUP_VS_SP
from learnmech.theory.coord_exponents import init_exponents, update_exponents
from learnmech.observe import mse
from learnmech.observe.coords import FAST_COMPILE, CoordCheck, CoordModel, coord_check
from learnmech.report import COLORS, band, finish_figure, new_figure, theory_line
from learnmech.train import OptimizerSpec, build_optimizer

__all__ = ["CLAIM", "Config"]

MUP_LOW, MUP_HIGH = 0.75, 1.33  # CLAIMS.md: muP update ratio widest / narrowest within this band
SP_MIN = 2.0  # CLAIMS.md: SP output-layer update ratio must exceed this
MIN_SPAN = 8.0  # CLAIMS.md: widest and narrowest at least 8x apart


DTYPE = "float32"  # changes of ~1e-2 on O(1) activations are far above float32 rounding


class Config(ClaimConfig):
    seeds: int = Field(8, ge=1, le=64, description="independent initialisations per width (the narrowest "
                                                   "networks vary most: their initial output is largest)")
    widths: Increasing(int, 2, "widths") = Field((64, 192, 512), description="hidden widths, increasing, span "
                                                ">= 8x; the narrowest is muP's base width")
    hidden_layers: int = Field(2, ge=1, le=6, description="hidden layers of width n")
    activation: str = Field("relu", description="hidden activation (a key of learnmech.nets.ACTIVATIONS)")
    d_in: int = Field(16, ge=1, le=1024, description="input dimension")
    n_train: int = Field(128, ge=8, le=10_000, description="training examples (full batch)")
    n_probe: int = Field(64, ge=8, le=10_000, description="held-out probe inputs for the coordinates")
    teacher_width: int = Field(64, ge=1, le=4096, description="hidden width of the ReLU teacher")
    eta: float = Field(1e-3, gt=0, le=1.0, description="Adam learning rate (Adam's default; muP trains "
                                                      "stably with it at every width)")
    steps: int = Field(3, ge=1, le=50, description="optimiser steps k; changes recorded after each")
    data_seed: int = 0

    @field_validator("widths")
    @classmethod
    def _span(cls, w: tuple[int, ...]) -> tuple[int, ...]:
        return widths_spanning(w, MIN_SPAN)

    @field_validator("activation")
    @classmethod
    def _known(cls, a: str) -> str:
        if a not in ACTIVATIONS:
            raise ValueError(f"must be one of {sorted(ACTIVATIONS)}")
        return a


def predict(cfg: Config):
    layers = np.arange(1, cfg.hidden_layers + 2)
    span = cfg.widths[-1] / cfg.widths[0]
    out = {}
    for p in MUP_VS_SP:
        a = update_exponents(p, cfg.hidden_layers)
        out[key("exponent", p)] = Curve(layers, a)  # change at step 1 ~ n^a
        out[key("ratio", p)] = Curve(layers, span**a)  # widest / narrowest
        out[key("rms_exponent", p)] = Curve(layers, init_exponents(p, cfg.hidden_layers))
    return out


# ---------------------------------------------------------------------------------------------
# Experiment


def _data(cfg: Config):
    """Training batch ``(X (n_train, d_in), Y (n_train, 1))`` and held-out probe ``(n_probe, d_in)``.

    ``x ~ N(0, I)``; ``y = relu(x W_1) W_2`` with ``W_1 (d_in, teacher_width)`` and
    ``W_2 (teacher_width, 1)`` of entries ``N(0, 1/fan_in)``, rescaled to unit RMS on the training
    set (module docstring, "Targets").
    """
    rng = np.random.default_rng(cfg.data_seed)
    X = rng.standard_normal((cfg.n_train + cfg.n_probe, cfg.d_in))  # (n_train + n_probe, d_in)
    W1 = rng.standard_normal((cfg.d_in, cfg.teacher_width)) / np.sqrt(cfg.d_in)
    W2 = rng.standard_normal((cfg.teacher_width, 1)) / np.sqrt(cfg.teacher_width)
    Y = np.maximum(X[: cfg.n_train] @ W1, 0.0) @ W2  # (n_train, 1)
    Y = Y / np.sqrt(np.mean(Y**2))
    return (jnp.asarray(X[: cfg.n_train], DTYPE), jnp.asarray(Y, DTYPE)), jnp.asarray(X[cfg.n_train:], DTYPE)


def _network(cfg: Config, width: int, parameterization: str) -> MLP:
    return MLP((cfg.d_in,) + (width,) * cfg.hidden_layers + (1,), cfg.activation, parameterization,
               base_width=cfg.widths[0], dtype=DTYPE)


def _centred_parts(net: MLP, x_train: jax.Array):
    """``(init, layers, loss, lr multipliers)`` of the centred network ``f(x; w) - f(x; w_0)``.

    ``init`` stores the initial outputs on the training inputs, ``f0`` of shape ``(n_train, 1)``,
    as a frozen leaf (learning-rate multiplier 0, no gradient); ``loss`` expects the full training
    batch in its original order. ``layers`` are the network's own activations, so ``h_t - h_0`` is
    unaffected by the centring.
    """

    def init(key):
        w = net.init(key)
        return {"net": w, "f0": net.apply(w, x_train)}

    def layers(params, x):
        return net.activations(params["net"], x)

    def loss(params, batch):
        x, y = batch
        return mse(net.apply(params["net"], x) - jax.lax.stop_gradient(params["f0"]), y)

    return init, layers, loss, {"net": net.lr_multipliers(), "f0": 0.0}


def _adam(cfg: Config, multipliers):
    return build_optimizer(OptimizerSpec("adam", {"learning_rate": cfg.eta}), multipliers=multipliers)


def _paired_model(cfg: Config, width: int, x_train: jax.Array) -> CoordModel:
    """The centred muP and SP networks of one width, trained side by side as one model.

    Parameters ``{"mup": ..., "sp": ...}`` are disjoint, the loss is the sum of the two losses and
    Adam acts coordinate-wise, so each half follows exactly the trajectory it would follow alone
    (both are initialised from the same key, as separate runs with the same seed would be); the
    pairing only halves the number of compiled programs. Layers: the muP network's, then SP's.
    """
    parts = {prefix: _centred_parts(_network(cfg, width, name), x_train) for prefix, name in MUP_VS_SP.items()}
    return CoordModel(
        init=lambda key: {prefix: part[0](key) for prefix, part in parts.items()},
        layers=lambda params, x: [h for prefix, part in parts.items() for h in part[1](params[prefix], x)],
        loss=lambda params, batch: sum(part[2](params[prefix], batch) for prefix, part in parts.items()),
        optimizer=_adam(cfg, {prefix: part[3] for prefix, part in parts.items()}),
    )


def _records(prefix: str, check: CoordCheck, layers: range) -> dict[str, Curve]:
    """Per layer and step, a curve over widths with one row per seed (layers renumbered from 0)."""
    out = {}
    for i, l in enumerate(layers):
        out[key("rms", prefix, i)] = Curve(check.widths, check.rms_per_seed[:, :, l].T)  # (seeds, W)
        for t in check.steps:
            out[key("change", prefix, i, t)] = Curve(check.widths, check.change_per_seed[:, :, t - 1, l].T)
    return out


def measure(cfg: Config, progress=None):
    data, probe = _data(cfg)
    # Small networks: compiling (the random draws of init above all) costs far more than running,
    # so the per-width programs are compiled without backend optimisation.
    check = coord_check(lambda n: _paired_model(cfg, n, data[0]), cfg.widths, data=data, probe=probe, steps=cfg.steps,
                        seeds=range(cfg.seeds), compiler_options=FAST_COMPILE)
    L = cfg.hidden_layers + 1
    out = {}
    for i, prefix in enumerate(MUP_VS_SP):
        out.update(_records(prefix, check, range(i * L, (i + 1) * L)))
    if progress is not None:
        progress("hparams.coord-check", 1, 1)
    return out


# ---------------------------------------------------------------------------------------------
# Summary, verdict and figure


def _change(measurement, prefix: str, layer: int, step: int) -> Curve:
    return measurement[key("change", prefix, layer, step)]


def _ratios(cfg: Config, measurement, prefix: str) -> np.ndarray:
    """``(K, L)`` change (mean over seeds) at the widest over the narrowest width, per step and layer."""
    L, K = cfg.hidden_layers + 1, cfg.steps
    mean = np.array([[_change(measurement, prefix, l, t).mean for l in range(L)] for t in range(1, K + 1)])
    with np.errstate(divide="ignore", invalid="ignore"):
        return mean[..., -1] / mean[..., 0]  # mean: (K, L, W)


def summarize(cfg: Config, prediction, measurement):
    """Every ratio widest/narrowest (per parameterisation, layer and step), muP's worst (largest ``|log|``),
    SP's output ratio at step 1 and its leading-order prediction, and the number of diverged members."""
    ratios = {p: _ratios(cfg, measurement, p) for p in MUP_VS_SP}  # (K, L) each
    out = {"diverged": count_diverged(*measurement.values())}
    for p, r in ratios.items():
        out.update({key(f"{p}_ratio", f"layer{l + 1}", f"step{t + 1}"): float(r[t, l])
                    for t in range(r.shape[0]) for l in range(r.shape[1])})
    mup = ratios["mup"]
    with np.errstate(divide="ignore", invalid="ignore"):
        worst = mup.flat[np.argmax(np.abs(np.log(mup)))]
    out.update({"mup_worst_ratio": float(worst), "sp_output_ratio_step1": float(ratios["sp"][0, -1]),
                "sp_output_ratio_predicted": float(prediction[key("ratio", "sp")].y[0, -1])})
    return out


MUP_RATIO = "muP update ratio widest/narrowest (worst layer and step)"
RULES = Rules(
    guards=(diverged("a member produced a non-finite activation; lower eta"),),
    checks=(Check(MUP_RATIO, "mup_worst_ratio", ">=", MUP_LOW, fmt=".3f"),
            Check(MUP_RATIO, "mup_worst_ratio", "<=", MUP_HIGH, fmt=".3f"),
            Check("SP output update ratio widest/narrowest (step 1)", "sp_output_ratio_step1", ">", SP_MIN,
                  fmt=".3g")),
)


def _layer_label(l: int, L: int) -> str:
    return "output" if l == L - 1 else f"hidden {l + 1}"


def _width_axis(ax, widths):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(widths, [str(int(w)) for w in widths])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("width n")


def _legend(ax, L: int, styles: list[tuple[str, dict]]):
    """One entry per layer (colour) and one per line style, in headroom above the curves."""
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top * (top / bottom) ** 0.6)  # log axis: 60% more decades on top
    handles = [Line2D([], [], color=COLORS[l], marker="o", markersize=3, label=_layer_label(l, L)) for l in range(L)]
    handles += [Line2D([], [], color="black", label=label, **style) for label, style in styles]
    ax.legend(handles=handles, fontsize=6.5, ncol=2, loc="upper left")


def _plot_changes(ax, cfg: Config, prediction, measurement, prefix: str, step: int, title: str):
    L, K = cfg.hidden_layers + 1, cfg.steps
    widths = np.asarray(cfg.widths, float)
    exponents = prediction[key("exponent", prefix)].y[0]
    for l in range(L):
        color = COLORS[l]
        band(ax, widths, _change(measurement, prefix, l, step).y, color=color, marker="o", markersize=3)
        if step != K:
            ax.plot(widths, _change(measurement, prefix, l, K).mean, ":", color=color, alpha=0.7)
        anchor = _change(measurement, prefix, l, step).mean[0]
        theory_line(ax, widths, anchor * (widths / widths[0]) ** exponents[l], color=color)
        if prefix == "mup":
            ax.fill_between(widths, MUP_LOW * anchor, MUP_HIGH * anchor, color=color, alpha=0.07, linewidth=0)
    _width_axis(ax, widths)
    ax.set(ylabel="RMS of h_t - h_0 on the probe", title=title)
    styles = [(f"measured, step {step} (mean, 10-90% of seeds)", {}),
              ("theory slope " + ", ".join(f"{a:g}" for a in exponents), {"linestyle": "--"})]
    if step != K:
        styles.append((f"measured, step {K}", {"linestyle": ":"}))
    if prefix == "mup":
        styles.append((f"judged band [{MUP_LOW}, {MUP_HIGH}] x narrowest", {"linewidth": 6, "alpha": 0.15}))
    _legend(ax, L, styles)


def _plot_init(ax, cfg: Config, prediction, measurement):
    L = cfg.hidden_layers + 1
    widths = np.asarray(cfg.widths, float)
    for prefix, style in (("mup", "-"), ("sp", ":")):
        exponents = prediction[key("rms_exponent", prefix)].y[0]
        for l in range(L):
            rms = measurement[key("rms", prefix, l)].mean
            ax.plot(widths, rms, style, marker="o", markersize=3, color=COLORS[l])
            if prefix == "mup" or l == L - 1:  # the SP hidden lines coincide with muP's
                theory_line(ax, widths, rms[0] * (widths / widths[0]) ** exponents[l], color=COLORS[l],
                            alpha=0.6)
    _width_axis(ax, widths)
    ax.set(ylabel="RMS of h_0 on the probe", title="activations at initialisation")
    _legend(ax, L, [("muP", {}), ("SP", {"linestyle": ":"}),
                    ("theory: slope 0; muP output -1/2", {"linestyle": "--"})])


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    K = cfg.steps
    fig, (ax_mup, ax_sp, ax_init) = new_figure(
        3, title=f"hparams.coord-check: ReLU MLP (centred), {cfg.hidden_layers} hidden layers, Adam eta={cfg.eta:g}, "
                 f"base width {cfg.widths[0]}, {cfg.seeds} seeds")
    _plot_changes(ax_mup, cfg, prediction, measurement, "mup", K, f"muP: change after {K} steps (all judged)")
    _plot_changes(ax_sp, cfg, prediction, measurement, "sp", 1, "SP, same eta: first update (judged)")
    _plot_init(ax_init, cfg, prediction, measurement)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="hparams.coord-check",
    pillar="hyperparameters",
    statement="Under muP every layer's activation update over the first steps is width-independent "
              "(ratio widest/narrowest in [0.75, 1.33]); under SP with the same Adam learning rate the "
              "output update grows with width (ratio > 2).",
    references=("Yang & Hu 2021, arXiv:2011.14522", "Yang et al. 2022, arXiv:2203.03466",
                "Yang, Simon & Bernstein 2023, arXiv:2310.17813"),
    config=Config,
    presets={
        "tiny": {"seeds": 2, "widths": (8, 64), "d_in": 4, "n_train": 16, "n_probe": 8, "teacher_width": 8,
                 "steps": 2},
        "quick": {"seeds": 8, "widths": (64, 192, 512)},
        "full": {"seeds": 12, "widths": (64, 128, 256, 512, 1024), "hidden_layers": 3, "steps": 5,
                 "n_train": 256, "n_probe": 128},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("mup", "scaling"),
)
