"""hparams.mup-transfer-lm — the optimal learning rate of a transformer transfers across width under muP.

Statement (Yang et al. 2022, "Tensor Programs V", arXiv:2203.03466, Table 3 and Appendix D on
transformers): under muP for Adam the loss-minimising learning rate ``eta*`` of a decoder-only transformer
does not depend on its width ``d_model``; under the standard parameterisation (SP) it shrinks roughly like
``1/d_model`` (about one octave per doubling).

Why (the argument of :mod:`learnmech.atlas.hparams.mup_transfer`, plus attention). With Adam every entry of a
weight moves by about ``eta``; a hidden ``d x d`` matrix whose update is aligned with its ``O(1)`` input moves
its output by ``eta d``, so SP needs ``eta ~ 1/d``. muP (``parameterization="mup"`` of
:mod:`learnmech.nets.transformer`, row ``mup-adam``) divides the Adam learning rate of the hidden matrices
(``wq, wk, wv, wo``, the MLP) and of the readout by ``m = d_model / base_d_model``, starts the readout with an
extra factor ``m^{-1/2}`` on its std, keeps the embeddings' init and learning rate, and scales attention logits
by ``sqrt(base_d_head) / d_head`` instead of ``1/sqrt(d_head)``: after training, query and key are correlated,
so ``q . k`` grows like ``d_head``, not ``sqrt(d_head)`` (TP-V, Section 4). With ``n_heads`` fixed ``d_head``
grows with the width, so that rule is exercised. At ``d_model = base_d_model`` muP and SP are the same network.

Experiment. Byte-level language modelling of the bundled corpus (:func:`learnmech.data.text.stdlib_corpus`,
the interpreter's standard-library sources, split by file): transformers with ``n_layers`` layers,
``n_heads`` heads and ``d_model`` in ``widths``, SP and muP, trained by
:func:`learnmech.lm_transfer.lr_sweep` (one compiled program per width and parameterisation, every learning
rate x seed inside it): AdamW without weight decay (``b1 = 0.9, b2 = 0.95``), gradient clipping at norm 1, a
cosine schedule with 5% warmup to 10% of the peak, ``steps`` steps of ``batch_size`` windows of ``seq_len + 1``
bytes, the same number of tokens for every width (``steps x batch_size x seq_len``). Each seed reads the
training windows in its own order without repetition (:func:`learnmech.lm_train.train_lm`).

Base width (the argument of ``hparams.mup-transfer``): muP's ``base_d_model`` is the narrowest *judged*
width ``judged_from``, where muP and SP coincide, so the judged muP shift is exactly the error of "tune at the
base width, reuse at the widest". That muP and SP are the same network there is checked, not assumed
(:func:`~learnmech.nets.transformer.same_network`: every tensor's init, learning-rate and forward multiplier, and the attention
scale), and only then are the SP losses at the base width reused for muP (``lr_sweep(known=...)``).

Which loss. The held-out loss (nats per byte) on ``eval_windows`` validation windows spread over the
validation files, after the last step, averaged over seeds. ``eta*`` per width is located as in
``hparams.mup-transfer`` (:class:`learnmech.width_transfer.Transfer`: vertex of the parabola in
``(log2 eta, log L)`` through the grid minimum of the seed mean and its two neighbours; a minimum at the
grid's edge is flagged).

Trained far enough. The loss scale of the summary is the corpus's unigram entropy
``H_1 = -sum_b p_b ln p_b`` over byte frequencies ``p_b`` of the training bytes (:func:`~learnmech.data.text.unigram_entropy`): the
held-out loss of a model that learned the byte frequencies and nothing of the context (about 3.2 nats, 4.7
bits per byte, for CPython 3.11's library). The run is inconclusive unless at every judged width the best
held-out loss is below ``trained_below x H_1``: only a model that uses its context says something about the
transformer's learning rate. (``best_loss_ratio/...`` and ``worst_loss_ratio`` in the summary are held-out loss
over ``H_1``; the summary is ``hparams.mup-transfer``'s, with ``H_1`` in place of its zero-function loss.)

Verdict (CLAIMS.md): over the judged widths, under muP ``|log2 eta*(widest) - log2 eta*(base)| <= 0.5`` and
under SP the least-squares slope of ``log2 eta*`` against ``log2 d_model`` is ``<= -0.5``; both must hold.
Guards: no judged ``eta*`` at the grid's edge, trained far enough. Reported: ``eta*`` per width for both, the
slopes, the muP shift, the best held-out loss per width in bits per byte, and the corpus (train / validation
bytes, file count, the first 12 hex digits of its SHA-256 as an integer; the full description is
``Corpus.describe()`` of :func:`~learnmech.data.text.stdlib_corpus`).

Presets. ``quick`` judges ``d_model`` 8 .. 64 (8x, ``n_0 = 8``, 2 heads: ``d_head`` 4 .. 32), one seed, 150
steps and seven learning rates (one seed for cost: three compiled programs take a third of its ~40 s; at 100
steps the narrowest model ended at the unigram entropy, too short to locate its optimum, so 150); ``full`` 64 .. 512 (the spec), one
seed, 200 steps of 16 windows, nine rates 2^-12 .. 2^-4 (the quick run's muP optimum at d_model 64,
2^-5.2, would sit on the top edge of 2^-11 .. 2^-5, the grid first written for it; 300 steps were cut to
200 for time, by a FLOP estimate at the bench's d_model 256 rate, before any full verdict was seen). The
first full run, on 2^-10 .. 2^-4, was inconclusive: SP's optimum at d_model 512 sat on the grid's lower
edge (log2 eta* -7.54, -8.38, -9.49, -10 at 64 .. 512; muP -7.54, -7.66, -7.92, -7.99, shift 0.46), so
the grid was widened by two octaves at the bottom, as the guard asks; 19.6 minutes on 2 cores;
``tiny`` 8 and 64 in 4 steps (it
exercises every path and is too short to hold).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.hparams.mup_transfer import (
    MIN_SPAN,
    MUP_SHIFT_MAX,
    RULES as MLP_RULES,
    SP_SLOPE_MAX,
    WidthGrid,
    mark_unjudged_losses,
    plot_judged_optima,
    stored_transfer,
    predict,
    summarize as transfer_summary,
)
from learnmech.atlas.keys import key
from learnmech.atlas.rules import Guard, Rules
from learnmech.atlas.validators import widths_spanning
from learnmech.data.text import Corpus, bits_per_byte, corpus_scalars, stdlib_corpus
from learnmech.increasing import Increasing
from learnmech.lm_train import LMRecipe
from learnmech.lm_transfer import LRSweep, lr_sweep
from learnmech.nets.students import MUP_VS_SP
from learnmech.nets.transformer import TransformerConfig, same_network
from learnmech.report.transfer import plot_transfer

__all__ = ["CLAIM", "Config", "PRESETS", "sweep_configs"]



class Config(WidthGrid, ClaimConfig):
    seeds: int = Field(2, ge=1, le=16, description="independent initialisations and window orders")
    widths: Increasing(int, 2, "widths") = Field((16, 128), description="d_model values, increasing, spanning "
                                                 ">= 8x, each divisible by n_heads")
    judged_from: int | None = Field(None, ge=1, description="the narrowest judged width and muP's base_d_model, "
                                    "one of widths; narrower widths are trained and reported, not judged (None: "
                                    "the narrowest width)")
    n_heads: int = Field(4, ge=1, le=64, description="attention heads, the same at every width (d_head grows)")
    n_layers: int = Field(2, ge=1, le=16, description="transformer layers")
    lr_log2_min: float = Field(-12.0, ge=-40, le=10, description="smallest peak learning rate, log2")
    lr_log2_max: float = Field(-3.0, ge=-40, le=10, description="largest peak learning rate, log2")
    lr_log2_step: float = Field(1.0, gt=0, le=4, description="grid step in log2 eta")
    steps: int = Field(300, ge=1, le=1_000_000, description="AdamW steps, the same for every run")
    batch_size: int = Field(16, ge=1, le=4096, description="windows per step")
    seq_len: int = Field(32, ge=2, le=2048, description="context length in bytes")
    eval_windows: int = Field(64, ge=1, le=100_000, description="held-out windows the loss is measured on")
    trained_below: float = Field(1.0, gt=0, le=1, description="the best held-out loss must end below this "
                                 "fraction of the corpus's unigram entropy at every judged width, else "
                                 "inconclusive")

    @field_validator("widths")
    @classmethod
    def _widths(cls, w: tuple[int, ...]) -> tuple[int, ...]:
        return widths_spanning(w, MIN_SPAN)

    @model_validator(mode="after")
    def _consistent(self):
        if any(w % self.n_heads for w in self.widths):
            raise ValueError(f"widths: each must be divisible by n_heads = {self.n_heads}, got {list(self.widths)}")
        self.check_width_grid()
        return self

    @property
    def recipe(self) -> LMRecipe:
        """The training recipe of every member (the LMRecipe defaults: AdamW, cosine, clip 1, no decay)."""
        return LMRecipe(seq_len=self.seq_len, batch_size=self.batch_size, eval_windows=self.eval_windows,
                        observations=1)


# ---------------------------------------------------------------------------------------------
# Experiment


def sweep_configs(cfg: Config, parameterization: str) -> dict[int, TransformerConfig]:
    """``{d_model: TransformerConfig}`` of one parameterisation, ``base_d_model = cfg.base_width``."""
    return {w: TransformerConfig(seq_len=cfg.seq_len, d_model=w, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                                 parameterization=parameterization, base_d_model=cfg.base_width)
            for w in cfg.widths}


def _sweeps(cfg: Config, corpus: Corpus, progress) -> dict[str, LRSweep]:
    """SP at every width, then muP with the base width's SP losses reused (checked to be the same network)."""
    configs = {p: sweep_configs(cfg, p) for p in MUP_VS_SP}
    base = cfg.base_width
    if not same_network(configs["sp"][base], configs["mup"][base]):
        raise RuntimeError(f"muP and SP differ at the base width {base}: the SP losses cannot stand for muP")
    common = dict(learning_rates=cfg.learning_rates, steps=cfg.steps, seeds=cfg.seeds, recipe=cfg.recipe,
                  progress=progress)
    sp = lr_sweep(configs["sp"], corpus, label="learning-rate sweep (sp)", **common)
    mup = lr_sweep(configs["mup"], corpus, label="learning-rate sweep (mup)", known={base: sp.losses(base)},
                   **common)
    return {"sp": sp, "mup": mup}


def measure(cfg: Config, progress=None):
    corpus = stdlib_corpus()
    sweeps = _sweeps(cfg, corpus, progress)
    runs = [r for s in sweeps.values() for r in s.runs.values()]
    out = {"tokens_per_member": float(cfg.steps * cfg.batch_size * cfg.seq_len),
           "passes": max(r.passes for r in runs), "train_seconds": float(sum(r.seconds for r in runs)),
           **corpus_scalars(corpus)}
    for p, sweep in sweeps.items():
        for i in range(len(cfg.widths)):  # (seeds, K): held-out loss in nats per byte, NaN = diverged
            out[key("loss", p, i)] = Curve(cfg.learning_rates, sweep.transfer.losses[i].T)
    return out


# ---------------------------------------------------------------------------------------------
# The claim


def summarize(cfg: Config, prediction, measurement):
    """``hparams.mup-transfer``'s summary with the unigram entropy as the loss scale, plus bits per byte.

    Adds ``best_bits_per_byte/{p}/{width}`` (best seed-mean held-out loss), ``unigram_bits_per_byte``,
    ``bits_per_byte_worst`` (the largest over judged widths) and the corpus scalars.
    """
    entropy = float(measurement["unigram_entropy"])
    out = dict(transfer_summary(cfg, prediction, {**measurement, "zero_loss": entropy}))
    for p in MUP_VS_SP:
        for w in cfg.widths:
            out[key("best_bits_per_byte", p, w)] = bits_per_byte(out[key("best_loss_ratio", p, w)] * entropy)
    out["unigram_bits_per_byte"] = bits_per_byte(entropy)
    out["bits_per_byte_worst"] = bits_per_byte(out["worst_loss_ratio"] * entropy)
    for name in ("train_bytes", "validation_bytes", "n_files", "sha256_prefix", "tokens_per_member"):
        out[name] = float(measurement[name])
    return out


RULES = Rules(
    guards=(MLP_RULES.guards[0],
            Guard("best held-out loss / unigram entropy (max over judged widths)", "worst_loss_ratio", "<=",
                  "trained_below", fmt=".3f",
                  advice="at some width the best learning rate did not beat the byte frequencies; train longer")),
    checks=MLP_RULES.checks,  # muP shift <= 0.5, SP slope <= -0.5 (CLAIMS.md)
)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    """Held-out loss / unigram entropy vs learning rate per width (SP, muP) and ``log2 eta*`` vs ``log2 d_model``."""
    results = {p: stored_transfer(cfg, measurement, summary, p) for p in MUP_VS_SP}
    title = (f"hparams.mup-transfer-lm: AdamW, {cfg.steps} steps x {cfg.batch_size} x {cfg.seq_len} bytes, "
             f"{cfg.n_layers}-layer transformer, {cfg.n_heads} heads, stdlib bytes")
    fig = plot_transfer(results, float(measurement["unigram_entropy"]), mup_band=MUP_SHIFT_MAX,
                        sp_slope=SP_SLOPE_MAX, verdict=verdict, title=title)
    names = ("SP (attention 1/sqrt(d_head))", f"muP (base d_model {cfg.base_width}, attention 1/d_head)")
    for ax, name in zip(fig.axes[:-1], names):  # axes: SP, muP, optima
        mark_unjudged_losses(ax, cfg.unjudged_widths)
        ax.set(title=name, ylabel="held-out loss / unigram entropy (nats / nats)", xlabel="peak learning rate eta")
    fig.axes[-1].clear()  # plot_transfer anchors its optima at the narrowest width; the judged ones start at n_0
    plot_judged_optima(fig.axes[-1], cfg, prediction, summary)
    fig.axes[-1].set_xlabel("log2 d_model")
    return fig


PRESETS = {
    "tiny": {"seeds": 1, "widths": (8, 64), "n_heads": 2, "lr_log2_min": -8.0, "lr_log2_max": -2.0,
             "lr_log2_step": 3.0, "steps": 4, "batch_size": 2, "seq_len": 8, "eval_windows": 4},
    "quick": {"seeds": 1, "widths": (8, 64), "n_heads": 2, "lr_log2_min": -9.0, "lr_log2_max": -3.0, "steps": 150},
    "full": {"seeds": 1, "widths": (64, 128, 256, 512), "lr_log2_min": -12.0, "lr_log2_max": -4.0, "steps": 200,
             "eval_windows": 256},
}

CLAIM = Claim(
    id="hparams.mup-transfer-lm",
    pillar="hyperparameters",
    statement="Under muP the loss-minimising Adam learning rate of a transformer language model does not depend "
              "on d_model; under SP it shrinks roughly like 1/d_model.",
    references=("Yang, Hu, Babuschkin, Sidor, Liu, Farhi, Ryder, Pachocki, Chen & Gao 2022 (Tensor Programs V), "
                "arXiv:2203.03466",),
    config=Config,
    presets=PRESETS,
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("mup", "adam", "transformer", "language-model"),
)
