"""Language-model training on the one driver: a transformer, a byte corpus, learning rates x budgets x seeds.

Contract. :func:`train_lm` trains the decoder-only transformer of :mod:`learnmech.nets.transformer` with
configuration ``cfg`` on a :class:`~learnmech.data.text.Corpus`, every learning rate x step budget x seed in
one call of :func:`learnmech.train.train` (one compiled program: the members share the model's shapes), and
returns an :class:`LMResult`:

- the data are the corpus's training bytes cut into non-overlapping windows of ``seq_len + 1`` bytes
  (:func:`~learnmech.data.text.windows`); each seed reads them in its own random order without repetition
  (the driver's ``sampling="epochs"``), ``batch_size`` windows per step, so no window is read twice in a run
  unless the budget exceeds the corpus (:attr:`LMResult.passes` > 1, and :attr:`LMResult.notes` says so);
  members of one seed read the same windows in the same order (learning rates compared on common data);
- the update rule is AdamW after global-norm clipping, with a warmup then a cosine, warmup-stable-decay or
  constant schedule over each member's own number of steps
  (:func:`~learnmech.train.lm_optimizer.lm_update_rule`), and the model's per-tensor learning-rate
  multipliers (muP, depth-muP, CompleteP) chained after it;
- a member with a smaller step budget than the others stops at its own last step (the driver's
  ``member_steps``), so budgets share one program without training the short ones longer; a later call with
  the same model, recipe and number of members reuses the compiled program (the driver's cache);
- a member diverges when its loss or its parameters stop being finite (no blow-up factor: a cross-entropy
  cannot grow without its logits growing, which the parameters' finiteness catches first in practice), and is
  then frozen, its losses NaN;
- the loss on ``eval_windows`` held-out windows, spread evenly over the validation text, is measured at
  log-spaced steps and at the end (a probe in the same program); every step's training loss is kept.

Counting. Tokens per member are ``steps x batch_size x seq_len`` (every position of a window is a
prediction). Compute is reported two ways: ``6 N D`` with ``N`` the non-embedding parameters
(:func:`~learnmech.nets.transformer.non_embedding_params`), the convention of the scaling-law claim, and the
model's training FLOPs per token including attention (:func:`~learnmech.nets.transformer.flops_per_token`)
times ``D``.

Limits (checked before any work, one-line ``ValueError`` naming the field): at most :data:`MAX_MEMBERS`
members and :data:`MAX_STEPS` steps; the ensemble must fit in
:data:`~learnmech.transfer_budget.MEMORY_SHARE` of the machine's memory (:func:`lm_memory_bytes`).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.data.text import Corpus, windows
from learnmech.nets import transformer as tf
from learnmech.train import Probe, train
from learnmech.train.lm_optimizer import lm_update_rule
from learnmech.train import epochs_read
from learnmech.train.schedule import log_schedule
from learnmech.transfer_budget import MEMORY_SHARE, PARAMETER_COPIES, machine_memory_bytes

__all__ = ["LMRecipe", "LMResult", "MAX_MEMBERS", "MAX_STEPS", "initial_params", "lm_memory_bytes", "train_lm",
           "validation_windows"]

MAX_MEMBERS = 256  # learning rates x budgets x seeds trained by one call
MAX_STEPS = 1_000_000
SCHEDULES = ("cosine", "wsd", "constant")


@dataclass(frozen=True)
class LMRecipe:
    """How every member is trained: sequence length, batch, AdamW and its schedule, evaluation.

    ``warmup`` and ``decay_fraction`` are fractions of each member's own steps; ``final_fraction`` is the
    learning rate at the last step relative to the peak. ``eval_windows`` held-out windows are read at
    ``observations`` log-spaced steps and at the end. ``train_loss``: also keep every step's training loss
    (:attr:`LMResult.train_loss`); off by default, since writing it from the compiled loop cost about a fifth of
    the throughput of a d_model 128 model on the 2-core machine (``bench/lm.py --profile``).
    """

    seq_len: int = 64
    batch_size: int = 16
    schedule: str = "cosine"
    warmup: float = 0.05
    decay_fraction: float = 0.2
    final_fraction: float = 0.1
    clip: float | None = 1.0
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    eval_windows: int = 64
    observations: int = 8
    train_loss: bool = False

    def __post_init__(self):
        for name in ("seq_len", "batch_size", "eval_windows", "observations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule: must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        for name in ("warmup", "decay_fraction", "final_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: must be in [0, 1], got {value!r}")

    def tokens(self, steps) -> np.ndarray:
        """Tokens a member reads in ``steps`` steps: ``steps x batch_size x seq_len``."""
        return np.asarray(steps, np.int64) * self.batch_size * self.seq_len

    def update_rule(self, cfg: tf.TransformerConfig):
        return lm_update_rule(schedule=self.schedule, warmup=self.warmup, decay_fraction=self.decay_fraction,
                              final_fraction=self.final_fraction, clip=self.clip, weight_decay=self.weight_decay,
                              b1=self.b1, b2=self.b2, eps=self.eps, decay_mask=tf.decay_mask(cfg), steps_key="steps")


@dataclass(frozen=True, eq=False)
class LMResult:
    """Validation losses of every member, shaped ``(budgets, learning rates, seeds)``; nats per byte.

    ``val_loss`` is the held-out loss at each member's last step (NaN where the member diverged);
    ``val_curve`` ``(S, K, seeds, T)`` the held-out loss at ``val_steps`` (a member that stopped earlier
    repeats its final value); ``train_loss`` ``(S, K, seeds)`` the mean training loss of each member's last
    10% of steps (NaN unless the recipe keeps it). ``tokens``, ``compute_6nd`` and ``flops`` are per budget ``(S,)``; ``passes`` the number of
    times the largest budget reads the training windows.
    """

    config: tf.TransformerConfig
    recipe: LMRecipe
    learning_rates: np.ndarray
    steps: np.ndarray
    seeds: tuple[int, ...]
    val_loss: np.ndarray
    val_steps: np.ndarray
    val_curve: np.ndarray
    train_loss: np.ndarray
    diverged: np.ndarray
    tokens: np.ndarray
    compute_6nd: np.ndarray
    flops: np.ndarray
    passes: float
    seconds: float
    corpus: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def n_params(self) -> int:
        """Non-embedding parameters ``N`` (the scaling-law convention)."""
        return tf.non_embedding_params(self.config)

    @property
    def tokens_per_second(self) -> float:
        """Training tokens of every member per second of wall time (compilation included)."""
        members = self.learning_rates.size * len(self.seeds)
        return float(self.tokens.sum() * members / self.seconds) if self.seconds > 0 else float("nan")

    @property
    def mean_val_loss(self) -> np.ndarray:
        """``(S, K)`` seed mean of :attr:`val_loss`; ``+inf`` where a seed diverged."""
        loss = np.where(np.isfinite(self.val_loss), self.val_loss, np.inf)
        return loss.mean(axis=-1)


@functools.lru_cache(maxsize=64)
def _functions(cfg: tf.TransformerConfig, recipe: LMRecipe):
    """The training loss, the held-out loss probe, the update rule and the multipliers of one model and recipe.

    The same objects for every call with equal ``cfg`` and ``recipe``, so that the driver reuses the programs it
    compiled for an earlier call (``learnmech.train.trainer``: its cache is keyed by these functions).
    """
    def member_loss(params, batch):
        return tf.loss(params, batch, cfg)

    def held_out_loss(params, P, batch):
        return tf.loss(params, batch, cfg)

    return member_loss, held_out_loss, recipe.update_rule(cfg), tf.lr_multipliers(cfg)


def initial_params(cfg: tf.TransformerConfig, seeds: Sequence[int]):
    """Each seed's initial parameters, stacked ``(seeds, ...)``: :func:`~learnmech.nets.transformer.init_numpy`.

    Drawn by numpy from the seed (PCG64), not by ``jax.random``: each ``jax.random`` draw of a new shape, or the
    driver's start program around them, is XLA compilation that costs seconds per model size on a 2-core CPU,
    more than training a small model. The seed still sets the member's order of windows (its JAX batch key).
    """
    draws = [tf.init_numpy(int(s), cfg) for s in seeds]
    return jax.tree.map(lambda *leaves: np.stack(leaves), *draws)


def validation_windows(corpus: Corpus, seq_len: int, count: int) -> np.ndarray:
    """``count`` held-out windows ``(count, seq_len + 1)`` spread evenly over the validation text (all if fewer)."""
    held_out = windows(corpus.validation, seq_len)
    if held_out.shape[0] <= count:
        return held_out
    index = np.round(np.linspace(0, held_out.shape[0] - 1, count)).astype(np.int64)
    return held_out[index]


def lm_memory_bytes(cfg: tf.TransformerConfig, recipe: LMRecipe, members: int) -> int:
    """Bytes at the peak of training ``members`` members one after another (an estimate, float32).

    Every member's weights with :data:`~learnmech.transfer_budget.PARAMETER_COPIES` copies (optimiser state,
    gradients, host copies), plus one member's activations: per layer about ``16 B T d`` numbers for the
    residual stream, the MLP hidden layer and their gradients, and ``2 B H T^2`` for the attention weights.
    """
    weights = tf.n_params(cfg) * PARAMETER_COPIES * members
    b, t, d = recipe.batch_size, recipe.seq_len, cfg.d_model
    activations = cfg.n_layers * (16 * b * t * d + 2 * b * cfg.n_heads * t * t) + 2 * b * t * cfg.vocab
    return 4 * (weights + activations)


def _check(cfg, recipe, learning_rates, steps, seeds, n_windows, points=None):
    lrs = np.asarray(learning_rates, np.float64).ravel()
    if lrs.size < 1 or not np.all(np.isfinite(lrs)) or np.any(lrs <= 0):
        raise ValueError(f"learning_rates: need positive finite values, got {lrs.tolist()}")
    budget = np.asarray(steps, np.int64).ravel()
    if budget.size < 1 or np.any(budget < 1) or np.any(budget > MAX_STEPS) or np.any(np.diff(budget) <= 0):
        raise ValueError(f"steps: need strictly increasing integers from 1 to {MAX_STEPS:,}, got {budget.tolist()}")
    if isinstance(seeds, int):
        seeds = tuple(range(seeds))
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds: need at least one seed")
    members = max(lrs.size * budget.size, points if isinstance(points, int) else 0) * len(seeds)
    if members > MAX_MEMBERS:
        raise ValueError(f"learning_rates x steps x seeds: at most {MAX_MEMBERS} members per call, got {members}")
    if n_windows < recipe.batch_size:
        raise ValueError(f"corpus: its training text holds {n_windows} windows of {recipe.seq_len + 1} bytes, "
                         f"fewer than one batch of {recipe.batch_size}")
    need, have = lm_memory_bytes(cfg, recipe, members), MEMORY_SHARE * machine_memory_bytes()
    if need > have:
        raise ValueError(f"d_model: {members} members of this model need about {need / 2**30:.1f} GiB, more than "
                         f"{have / 2**30:.1f} GiB ({MEMORY_SHARE:.0%} of this machine's memory)")
    return lrs, budget, seeds


def train_lm(cfg: tf.TransformerConfig, corpus: Corpus, *, learning_rates: Sequence[float], steps: int | Sequence[int],
             seeds: int | Sequence[int] = 1, recipe: LMRecipe = LMRecipe(), data_offset: int = 0,
             points: int | None = None, progress: Callable[[int, int], None] | None = None) -> LMResult:
    """Train every learning rate x step budget x seed of ``cfg`` on ``corpus`` (see the module docstring).

    Args:
      cfg: the transformer (its ``seq_len`` must equal the recipe's).
      corpus: the text (:func:`learnmech.data.text.load_corpus`).
      learning_rates: peak AdamW learning rates (before the model's per-tensor multipliers).
      steps: one step budget or several, strictly increasing (one axis of members).
      seeds: a count (seeds ``0 .. seeds - 1``) or the seeds (initialisation and the order of the windows).
      recipe: sequence length, batch, schedule and evaluation (:class:`LMRecipe`).
      data_offset: where the first training window starts (``0 <= data_offset <= seq_len``).
      points: train as if with this many (budget, learning rate) points (at least ``budgets x learning rates``):
        the extra members take no step and are dropped from the result. Calls of one model and recipe with the
        same number of points and seeds share one compiled program (the driver's cache), e.g. a learning-rate
        sweep and the budgets that follow it.
      progress: ``progress(done_steps, total_steps)``.
    """
    if cfg.seq_len != recipe.seq_len:
        raise ValueError(f"seq_len: the model's ({cfg.seq_len}) and the recipe's ({recipe.seq_len}) must agree")
    if not 0 <= data_offset <= recipe.seq_len:
        raise ValueError(f"data_offset: must be in [0, {recipe.seq_len}], got {data_offset}")
    data = windows(corpus.train, recipe.seq_len, offset=data_offset)
    lrs, budget, seeds = _check(cfg, recipe, learning_rates, steps, seeds, data.shape[0], points)
    real = budget.size * lrs.size
    if points is not None and (isinstance(points, bool) or not isinstance(points, int) or not
                               real <= points <= MAX_MEMBERS):
        raise ValueError(f"points: must be an integer from budgets x learning rates = {real} to {MAX_MEMBERS}, "
                         f"got {points!r}")
    pad = 0 if points is None else points - real
    held_out = validation_windows(corpus, recipe.seq_len, recipe.eval_windows)
    last = int(budget[-1])
    val_steps = np.unique(np.concatenate([log_schedule(last, recipe.observations), budget]))

    member_loss, held_out_loss, update_rule, multipliers = _functions(cfg, recipe)
    probe = Probe("val_loss", held_out_loss, steps=val_steps.tolist(), data=jnp.asarray(held_out))
    start = time.perf_counter()
    result = train(params0=initial_params(cfg, seeds), loss=member_loss, data=jnp.asarray(data),
                   optimizer=update_rule, seeds=list(seeds),
                   grid={"point": {"steps": np.concatenate([np.repeat(budget, lrs.size), np.zeros(pad)]).astype(np.int32),
                                   "learning_rate": np.concatenate([np.tile(lrs, budget.size),
                                                                    np.full(pad, lrs[0])]).astype(np.float32)}},
                   steps=[0, last], record_loss=False, lr_multipliers=multipliers,
                   batch_size=recipe.batch_size, sampling="epochs", member_steps="steps", probes=[probe],
                   step_loss=recipe.train_loss, blowup=None, layout="auto", progress=progress)
    seconds = time.perf_counter() - start
    shape = (budget.size, lrs.size, len(seeds))  # (S, K, seeds): the points budget-major, then the padding
    n_real = real * len(seeds)
    curve = np.asarray(result.probes["val_loss"].values, np.float64)[:n_real].reshape(shape + (val_steps.size,))
    diverged = np.asarray(result.diverged)[:real].reshape(shape)
    at_end = np.searchsorted(val_steps, budget)  # each budget's own last step is a probe step
    val_loss = np.stack([curve[s, ..., at_end[s]] for s in range(budget.size)])  # (S, K, seeds)
    val_loss = np.where(diverged, np.nan, val_loss)
    train_loss = _trailing_train_loss(np.asarray(result.step_loss, np.float64)[:real].reshape(shape + (-1,)),
                                      budget) if recipe.train_loss \
        else np.full(shape, np.nan)
    tokens = recipe.tokens(budget)
    passes = float(epochs_read(data.shape[0], recipe.batch_size, last))
    notes = ()
    if passes > 1:
        notes = (f"the largest budget reads the training text {passes:.2f} times: windows repeat after the first pass",)
    return LMResult(config=cfg, recipe=recipe, learning_rates=lrs, steps=budget, seeds=seeds, val_loss=val_loss,
                    val_steps=val_steps, val_curve=curve, train_loss=train_loss, diverged=diverged,
                    tokens=tokens, compute_6nd=6.0 * tf.non_embedding_params(cfg) * tokens,
                    flops=tf.flops_per_token(cfg) * tokens, passes=passes, seconds=seconds,
                    corpus=corpus.describe(), notes=notes)


def _trailing_train_loss(step_loss: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """``(S, K, seeds)`` mean training loss over the last 10% (at least one) of each member's own steps."""
    out = np.empty(step_loss.shape[:-1])
    for s, n in enumerate(budget.tolist()):
        tail = max(1, int(math.ceil(0.1 * n)))
        with np.errstate(invalid="ignore"):
            out[s] = np.mean(step_loss[s, ..., n - tail:n], axis=-1)
    return out
