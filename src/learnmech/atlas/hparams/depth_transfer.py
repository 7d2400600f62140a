"""hparams.depth-transfer — residual scaling makes the learning rate transfer across depth.

Statement (Yang, Yu, Zhu & Hayou 2023, "Tensor Programs VI", arXiv:2310.02244; Bordelon, Noci, Li,
Hanin & Pehlevan 2023, arXiv:2309.16620; Dey et al. 2025, "CompleteP", arXiv:2505.01618): when every
residual branch of a depth-``L`` network is multiplied by ``m_L^{-alpha}`` (``m_L = L / L_0``) and the
Adam learning rates of the tensors inside the blocks by ``m_L^{alpha - 1}``, the loss-minimising
learning rate ``eta*`` does not depend on depth: ``alpha = 1/2`` is Depth-muP, ``alpha = 1`` CompleteP.
With unscaled branches (``alpha = 0``, no correction) ``eta*`` drifts with depth.

Why, in one line. With Adam every entry of a block's weights moves by about its learning rate per
step, so one block moves the residual stream by about ``m_L^{-alpha} m_L^{alpha - 1} eta = eta / m_L``
and the ``L`` blocks together by about ``eta`` whatever the depth: the update's effect on the output,
and so the best ``eta``, is depth-independent. Unscaled, the ``L`` blocks move the stream by about
``m_L eta`` and nothing pins ``eta*``. (The direction and size of the unscaled drift are not predicted
here: the pre-LayerNorm residual stream grows with depth too. It is reported, not judged.)

Experiment. The decoder-only transformer of :mod:`learnmech.nets.transformer` (pre-LayerNorm, learned
positions, untied readout), width ``d_model`` fixed, muP at its own base width (``base_d_model =
d_model``: every width factor is 1, so the width rule plays no part), ``n_heads`` heads, at the depths
``depths`` (``n_layers``, spanning at least 4x). The base depth ``L_0`` is the shallowest depth; the three
depth parameterisations of the model (``depth_scaling`` ``"completep"``, ``"depth-mup"``, ``"none"``) are
the same network there (``m_L = 1``: residual multiplier 1, learning-rate factor 1), which is checked on
their parameterisation tables, not assumed, and that network is trained once (``known=`` of
:func:`learnmech.lm_transfer.lr_sweep`). Training: :func:`learnmech.lm_train.train_lm` with the
default :class:`~learnmech.lm_train.LMRecipe` (AdamW ``b1 = 0.9, b2 = 0.95``, no weight decay, clipping at
global norm 1, 5% warmup then cosine decay to 10% of the peak) and the model's per-tensor multipliers,
``steps`` steps of ``batch_size`` windows of ``seq_len + 1`` bytes of the bundled corpus
(:func:`learnmech.data.text.stdlib_corpus`, each seed its own order, no window read twice unless the
budget exceeds the corpus); every depth x parameterisation is one compiled program over the
learning-rate grid x seeds.

Which loss. The held-out loss (nats per byte) on ``eval_windows`` validation windows after the last step,
averaged over seeds at each ``eta`` of the log2 grid (a diverged seed makes the mean ``+inf``). ``eta*`` is
the vertex of the parabola in ``(log2 eta, log L)`` through the grid minimum and its neighbours
(:class:`learnmech.width_transfer.Transfer`, the estimator of ``hparams.mup-transfer``); a minimum at the
first or last grid point is flagged.

Verdict (CLAIMS.md). Under the judged depth-scaled parameterisation (config field ``judged``, default
``"completep"``; the other depth-scaled one is reported beside it), ``|log2 eta*(deepest) - log2
eta*(L_0)| <= 0.5`` (the width claim's half-octave tolerance, :data:`SHIFT_MAX`) over at least 4x of depth.
Guards (inconclusive), on the judged parameterisation at every depth: ``eta*`` inside the grid, and
trained far enough: the best mean held-out loss below ``trained_below`` times the unigram entropy of the
training bytes (:func:`~learnmech.data.text.unigram_entropy`, the loss of the best model that ignores context), so every depth
learned more than byte frequencies. Reported alongside: ``log2 eta*`` per depth for all three, each one's
shift and least-squares slope against ``log2 depth``, the unscaled drift (``unscaled_drift``, signed, no
threshold), the best held-out loss in bits per byte, the grid-edge counts of the unjudged ones.

Presets. Every run trains four programs (the base depth once, the deepest depth under each rule; more
depths add three each), and each :func:`~learnmech.lm_train.train_lm` call compiles two XLA programs (about
4 s of CPU each), which sets the floor of the cost. ``tiny`` (depths 1 and 4, width 16, 20 steps) exercises
every path. ``quick``: width 16 (2 heads), depths 1 and 4 (the rule's 4x), a one-octave grid
2^-9 .. 2^-2, one seed, 150 steps of 8 windows of 33 bytes (39 k tokens per member): about 40 s on 2
cores, most of it the five compilations. ``full``: width 16, depths 2, 4, 8, 16 (the spec's 2 .. 16), the
one-octave grid 2^-9 .. 2^-2 (8 rates), 2 seeds, 600 steps (0.15 M tokens per member). A first full design
(a half-octave grid of 15 rates, 2 seeds, 1,500 steps) had not finished after 31.5 minutes on 2 quiet
cores, past the 30 minutes the issue allows: a transformer this small is bound by per-operation overhead
(about 7 ms per step at 16 layers), not by its FLOPs, so the FLOP estimate (17 minutes) missed. It was cut
to this design before any full verdict was seen.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.hparams.mup_transfer import MUP_SHIFT_MAX, grid_edge_guard
from learnmech.atlas.keys import key
from learnmech.atlas.rules import Check, Guard, Rules
from learnmech.data.text import Corpus, bits_per_byte, corpus_scalars, stdlib_corpus
from learnmech.increasing import Increasing
from learnmech.lm_train import LMRecipe
from learnmech.lm_transfer import LRSweep, lr_sweep
from learnmech.nets import transformer as tf
from learnmech.report import COLORS, theory_line
from learnmech.report.figures import band, finish_figure, new_figure
from learnmech.width_transfer import Transfer, log2_grid

__all__ = ["CLAIM", "Config", "DEPTH_SCALINGS", "MIN_SPAN", "SHIFT_MAX", "depth_configs", "depth_sweeps"]

SHIFT_MAX = MUP_SHIFT_MAX  # CLAIMS.md: |log2 eta*(deepest) - log2 eta*(shallowest)| <= 0.5, the width claim's band
MIN_SPAN = 4.0  # CLAIMS.md: depths span at least 4x
DEPTH_SCALINGS = ("completep", "depth-mup", "none")  # the two depth-scaled rules, then the unscaled model
NAMES = {"completep": "CompleteP (alpha = 1)", "depth-mup": "Depth-muP (alpha = 1/2)", "none": "unscaled (alpha = 0)"}

Progress = Callable[[str, int, int], None]


class Config(ClaimConfig):
    seeds: int = Field(2, ge=1, le=64, description="independent initialisations (and window orders)")
    depths: Increasing(int, 2, "depths") = Field((1, 4), description="numbers of layers, increasing, spanning >= "
                                                 "4x; the shallowest is the base depth")
    judged: Literal["completep", "depth-mup"] = Field("completep", description="the depth-scaled parameterisation "
                                                      "the verdict judges (the other is reported beside it)")
    d_model: int = Field(16, ge=2, le=1024, description="width (fixed; muP at its base width)")
    n_heads: int = Field(2, ge=1, le=64, description="attention heads (must divide d_model)")
    lr_log2_min: float = Field(-9.0, ge=-40, le=10, description="smallest peak learning rate, log2")
    lr_log2_max: float = Field(-2.0, ge=-40, le=10, description="largest peak learning rate, log2")
    lr_log2_step: float = Field(1.0, gt=0, le=4, description="grid step in log2 eta")
    steps: int = Field(300, ge=1, le=100_000, description="AdamW steps, the same for every run")
    batch_size: int = Field(8, ge=1, le=4096, description="windows per step")
    seq_len: int = Field(32, ge=1, le=1024, description="context length (bytes)")
    eval_windows: int = Field(64, ge=1, le=100_000, description="held-out windows the loss is measured on")
    trained_below: float = Field(1.0, gt=0, le=1, description="the best mean held-out loss must end below this "
                                 "fraction of the training bytes' unigram entropy, else inconclusive")

    @field_validator("depths")
    @classmethod
    def _span(cls, depths: tuple[int, ...]) -> tuple[int, ...]:
        if depths[-1] < MIN_SPAN * depths[0]:
            raise ValueError(f"must span at least {MIN_SPAN:g}x (deepest / shallowest), got {depths[0]}..{depths[-1]}")
        return depths

    @model_validator(mode="after")
    def _grid_and_model(self):
        if len(self.learning_rates) < 3:
            raise ValueError("lr_log2_min, lr_log2_max, lr_log2_step: need at least 3 learning rates")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads: must divide d_model = {self.d_model}, got {self.n_heads}")
        return self

    @property
    def learning_rates(self) -> np.ndarray:
        return log2_grid(self.lr_log2_min, self.lr_log2_max, self.lr_log2_step)

    @property
    def reported(self) -> str:
        """The depth-scaled parameterisation reported beside the judged one."""
        return "depth-mup" if self.judged == "completep" else "completep"

    @property
    def recipe(self) -> LMRecipe:
        return LMRecipe(seq_len=self.seq_len, batch_size=self.batch_size, eval_windows=self.eval_windows)


# ---------------------------------------------------------------------------------------------
# Experiment


def depth_configs(depths, depth_scaling: str, *, d_model: int, n_heads: int,
                  seq_len: int) -> dict[int, tf.TransformerConfig]:
    """``{n_layers: TransformerConfig}`` of one depth parameterisation, base depth the shallowest.

    muP at its own base width (``base_d_model = d_model``), so every width factor is 1.
    """
    return {int(L): tf.TransformerConfig(seq_len=seq_len, d_model=d_model, n_layers=int(L), n_heads=n_heads,
                                         parameterization="mup", base_d_model=d_model, depth_scaling=depth_scaling,
                                         base_depth=int(depths[0])) for L in depths}


def _known(configs: dict[int, tf.TransformerConfig], done: dict[str, LRSweep], every: dict) -> dict | None:
    """The base depth's losses from a sweep in ``done`` whose network there is this one (trained once)."""
    base = min(configs)
    for p, sweep in done.items():
        if tf.same_network(configs[base], every[p][base]):
            return {base: sweep.losses(base)}
    return None


def depth_sweeps(cfg: Config, corpus: Corpus, progress: Progress | None = None) -> dict[str, LRSweep]:
    """:func:`learnmech.lm_transfer.lr_sweep` of each depth parameterisation over ``cfg.depths``.

    The base depth is trained by the first parameterisation only when the tables agree there (:func:`~learnmech.nets.transformer.same_network`);
    returns ``{depth_scaling: LRSweep}`` in :data:`DEPTH_SCALINGS` order.
    """
    every = {p: depth_configs(cfg.depths, p, d_model=cfg.d_model, n_heads=cfg.n_heads, seq_len=cfg.seq_len)
             for p in DEPTH_SCALINGS}
    out: dict[str, LRSweep] = {}
    for p in DEPTH_SCALINGS:
        out[p] = lr_sweep(every[p], corpus, learning_rates=cfg.learning_rates, steps=cfg.steps, seeds=cfg.seeds,
                          recipe=cfg.recipe, known=_known(every[p], out, every),
                          label=f"learning-rate sweep ({p})", progress=progress)
    return out


# ---------------------------------------------------------------------------------------------
# The claim


def predict(cfg: Config):
    """The shift of ``log2 eta*`` from the base depth under each depth-scaled parameterisation: zero.

    Per block the Adam update moves the residual stream by ``r x lr factor x eta = m_L^{-1} eta`` (read off
    the model's own table), so ``L`` blocks move it by ``eta`` at every depth (module docstring).
    """
    out = {}
    for p in DEPTH_SCALINGS[:2]:
        configs = depth_configs(cfg.depths, p, d_model=cfg.d_model, n_heads=cfg.n_heads, seq_len=cfg.seq_len)
        moved = [c.depth_multiplier * c.residual_multiplier * tf.lr_multipliers(c)["blocks"]["wq"]
                 for c in configs.values()]  # (depths,) the blocks' summed update per unit eta
        out[key("shift", p)] = Curve(cfg.depths, -np.log2(np.asarray(moved) / moved[0]))
    return out


def measure(cfg: Config, progress=None):
    corpus = stdlib_corpus()
    sweeps = depth_sweeps(cfg, corpus, progress)
    runs = [run for sweep in sweeps.values() for run in sweep.runs.values()]
    base = cfg.depths[0]
    out = {**corpus_scalars(corpus), "tokens_per_member": float(cfg.recipe.tokens(cfg.steps)), "passes": max(r.passes for r in runs),
           "seconds": float(sum(r.seconds for r in runs)),
           "base_trained_once": float(all(base not in s.runs for s in list(sweeps.values())[1:]))}
    for p, sweep in sweeps.items():
        for i, L in enumerate(cfg.depths):
            out[key("loss", p, i)] = Curve(cfg.learning_rates, sweep.losses(L).T)  # (seeds, K) held-out nats
    return out


def _losses(cfg: Config, measurement, p: str) -> np.ndarray:
    """``(depths, K, seeds)`` held-out losses from the stored curves."""
    return np.stack([measurement[key("loss", p, i)].y.T for i in range(len(cfg.depths))])


def summarize(cfg: Config, prediction, measurement):
    """Per parameterisation: ``log2 eta*`` per depth, the shift from the base depth, the line against
    ``log2 depth``, grid-edge flags and the best mean loss (bits per byte, and over the unigram entropy); the
    judged shift, the unscaled drift and the guards' numbers on the judged parameterisation."""
    entropy = float(measurement["unigram_entropy"])
    out = {"trained_below": cfg.trained_below, "judged_alpha": tf.DEPTH_ALPHA[cfg.judged],
           "base_depth": float(cfg.depths[0]), "unigram_entropy_bpb": bits_per_byte(entropy)}
    for p in DEPTH_SCALINGS:
        found = Transfer.from_losses(cfg.depths, cfg.learning_rates, _losses(cfg, measurement, p))
        best = found.mean_loss.min(axis=1)  # (depths,) nats
        for L, log2_eta, edge, b in zip(cfg.depths, found.log2_eta_star, found.at_edge, best):
            out[key("log2_eta_star", p, L)] = float(log2_eta)
            out[key("at_edge", p, L)] = float(edge)
            out[key("best_bpb", p, L)] = bits_per_byte(b) if np.isfinite(b) else float("nan")
            out[key("best_loss_ratio", p, L)] = float(b / entropy)
        out[key("shift", p)] = float(found.log2_eta_star[-1] - found.log2_eta_star[0])
        out[key("slope", p)] = found.slope
        out[key("intercept", p)] = found.intercept
        out[key("edges", p)] = float(np.sum(found.at_edge))
    out["judged_shift"] = abs(out[key("shift", cfg.judged)])
    out["reported_shift"] = abs(out[key("shift", cfg.reported)])
    out["unscaled_drift"] = out[key("shift", "none")]
    out["edges"] = out[key("edges", cfg.judged)]
    out["worst_loss_ratio"] = max(out[key("best_loss_ratio", cfg.judged, L)] for L in cfg.depths)
    return out


RULES = Rules(
    guards=(grid_edge_guard("judged parameterisation"),
            Guard("best mean held-out loss / unigram entropy (max over depths)", "worst_loss_ratio", "<",
                  "trained_below", fmt=".3f",
                  advice="at some depth the best learning rate learned no more than byte frequencies; train longer")),
    checks=(Check("depth-scaled |log2 eta*(deepest) - log2 eta*(shallowest)|", "judged_shift", "<=", SHIFT_MAX,
                  fmt=".2f"),),
)


# ---------------------------------------------------------------------------------------------
# Figures


def _depth_colors(n: int):
    import matplotlib.pyplot as plt

    return plt.get_cmap("plasma")(np.linspace(0.0, 0.8, n))


def _plot_depth_losses(ax, cfg: Config, measurement, summary, p: str) -> None:
    """Held-out bits per byte against eta, one curve per depth (seed mean and 10-90% band), eta* marked."""
    lrs = cfg.learning_rates
    for i, (L, color) in enumerate(zip(cfg.depths, _depth_colors(len(cfg.depths)))):
        bpb = bits_per_byte(measurement[key("loss", p, i)].y)  # (seeds, K)
        band(ax, lrs, bpb, color=color, label=f"{L} layers")
        log2_eta = summary[key("log2_eta_star", p, L)]
        if np.isfinite(log2_eta):
            ax.axvline(2.0 ** log2_eta, color=color, linewidth=0.8, linestyle=":",
                       alpha=1.0 if summary[key("at_edge", p, L)] == 0 else 0.4)
    ax.axhline(summary["unigram_entropy_bpb"], color="gray", linestyle="--", linewidth=1.0,
               label="unigram entropy of the training bytes")
    ax.plot([], [], ":", color="gray", label="eta* (parabola vertex; faint: grid edge)")
    ax.set(xlabel="peak learning rate eta (AdamW)", ylabel="held-out loss (bits per byte)", title=NAMES[p])
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=7)


def _plot_optima(ax, cfg: Config, prediction, summary) -> None:
    """``log2 eta*`` against ``log2 depth`` for the three, the theory (zero shift) and the verdict band."""
    x = np.log2(np.asarray(cfg.depths, np.float64))
    for j, p in enumerate(DEPTH_SCALINGS):
        y = np.array([summary[key("log2_eta_star", p, L)] for L in cfg.depths])
        judged = " (judged)" if p == cfg.judged else ""
        ax.plot(x, y, "o-", color=COLORS[j], markersize=7, linewidth=1.0,
                label=f"{NAMES[p]}{judged}: shift {summary[key('shift', p)]:+.2f}")
        if key("shift", p) in prediction and np.isfinite(y[0]):
            theory_line(ax, x, y[0] + prediction[key("shift", p)].y[0], color=COLORS[j],
                        label=f"{NAMES[p]}: theory")
    y0 = summary[key("log2_eta_star", cfg.judged, cfg.depths[0])]
    if np.isfinite(y0):
        ax.axhspan(y0 - SHIFT_MAX, y0 + SHIFT_MAX, color=COLORS[DEPTH_SCALINGS.index(cfg.judged)], alpha=0.1,
                   label=f"verdict: within +/- {SHIFT_MAX:g} of eta*({cfg.depths[0]} layers)")
    ax.set(xlabel="log2 depth (layers)", ylabel="log2 eta* (optimal peak learning rate)",
           title=f"width {cfg.d_model}, base depth {cfg.depths[0]}")
    ax.legend(fontsize=6.5)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, axes = new_figure(len(DEPTH_SCALINGS) + 1,
                           title=f"hparams.depth-transfer: AdamW, {cfg.steps} steps, byte-level transformer on the "
                                 "stdlib corpus")
    for ax, p in zip(axes, DEPTH_SCALINGS):
        _plot_depth_losses(ax, cfg, measurement, summary, p)
    limits = np.array([ax.get_ylim() for ax in axes[:-1]])  # (panels, 2): one y range for the loss panels
    for ax in axes[:-1]:
        ax.set_ylim(limits[:, 0].min(), limits[:, 1].max())
    _plot_optima(axes[-1], cfg, prediction, summary)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="hparams.depth-transfer",
    pillar="hyperparameters",
    statement="With residual branches scaled by depth^-alpha and the matching learning-rate corrections (Depth-muP, "
              "CompleteP), the loss-minimising learning rate does not depend on depth; unscaled, it drifts.",
    references=("Yang, Yu, Zhu & Hayou 2023 (Tensor Programs VI), arXiv:2310.02244",
                "Bordelon, Noci, Li, Hanin & Pehlevan 2023, arXiv:2309.16620",
                "Dey et al. 2025 (CompleteP), arXiv:2505.01618"),
    config=Config,
    presets={
        "tiny": {"seeds": 1, "depths": (1, 4), "d_model": 16, "n_heads": 2, "lr_log2_min": -8.0, "lr_log2_max": -2.0,
                 "lr_log2_step": 3.0, "steps": 20, "batch_size": 8, "seq_len": 16, "eval_windows": 8},
        "quick": {"seeds": 1, "steps": 150},
        "full": {"depths": (2, 4, 8, 16), "steps": 600, "eval_windows": 256},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("depth-mup", "completep", "adam", "transformer"),
)
