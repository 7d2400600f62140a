"""Learning-rate transfer across width for your model: sweep a learning-rate grid at each width, find eta*.

Statement (Yang et al. 2022, "Tensor Programs V", arXiv:2203.03466): in the maximal-update
parameterisation (muP) the loss-minimising learning rate ``eta*`` does not depend on the width
``n`` (``log2 eta*`` against ``log2 n`` has slope 0), so it can be tuned on a narrow network and
used on a wide one; in the standard parameterisation with Adam it shrinks like ``1/n`` (slope -1).
:func:`transfer` measures that slope for any model: ``init``/``apply`` functions over a plain pytree,
or a function ``build(width, key)`` returning an equinox Module, a flax nnx Module or a plain pytree
(:mod:`learnmech.model_transfer`), with muP applied by ``parameterization=`` (the first width as its
base) or learning-rate multipliers given by hand.

What it does. For each width it trains one ensemble, every learning rate of the grid x every seed,
with :func:`learnmech.train.train` (one compiled program per width), and keeps the final training
loss on the whole data, ``(K, seeds)``; a diverged member is NaN. Per width, the seed mean
(``+inf`` when a seed diverged: a diverged run ranks above every finite loss) is minimised over the
grid and ``eta*`` is the vertex of the parabola in ``(log2 eta, log L)`` through the grid minimum
and its two neighbours; a minimum at the first or last grid point is flagged ``at_edge`` (widen the
grid) and left out of the fitted line ``log2 eta* = intercept + slope log2 n``
(:func:`learnmech.fit.fit_transfer`).

Before any work the request is checked against the limits of :mod:`learnmech.transfer_budget`
(widths, learning rates, seeds, steps, and the memory of the widest ensemble), and a bad argument
raises ``ValueError`` naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from learnmech import transfer_budget as budget
from learnmech.increasing import increasing
from learnmech.observe.loss import mse
from learnmech.fit import fit_transfer, mean_loss
from learnmech.model_transfer import WidthModel, model_family, params_bytes
from learnmech.train import OptimizerSpec, train

__all__ = ["Transfer", "log2_grid", "transfer"]


def log2_grid(log2_min: float, log2_max: float, step: float = 1.0) -> np.ndarray:
    """``2^k`` for ``k = log2_min, log2_min + step, ...`` up to ``log2_max`` (inclusive to 1e-9), ``(K,)``.

    >>> log2_grid(-3, -1).tolist()
    [0.125, 0.25, 0.5]
    """
    if step <= 0:
        raise ValueError(f"step: must be positive, got {step}")
    k = log2_min + step * np.arange(int(math.floor((log2_max - log2_min) / step + 1e-9)) + 1)  # (K,)
    return 2.0 ** k


@dataclass(frozen=True, eq=False)
class Transfer:
    """The result of :func:`transfer`: the losses table, ``eta*`` per width and the line through them.

    Attributes:
      widths: ``(W,)`` increasing.
      learning_rates: ``(K,)`` the grid, increasing.
      losses: ``(W, K, seeds)`` final training loss of every member; NaN where it diverged.
      eta_star: ``(W,)`` the loss-minimising learning rate per width (parabola vertex, module docstring).
      at_edge: ``(W,)`` True where the grid minimum is the first or last learning rate (``eta*`` is
        that grid point and may lie beyond the grid).
      fitted: ``(W,)`` the widths the line was fitted to (not at the edge, ``eta*`` finite).
      slope, intercept: ``log2 eta* = intercept + slope log2 width`` (NaN when fewer than two fitted).
    """

    widths: np.ndarray
    learning_rates: np.ndarray
    losses: np.ndarray
    eta_star: np.ndarray
    at_edge: np.ndarray
    fitted: np.ndarray
    slope: float
    intercept: float

    @classmethod
    def from_losses(cls, widths, learning_rates, losses) -> "Transfer":
        """``eta*`` and the line from a losses table ``(W, K, seeds)`` measured elsewhere."""
        widths = np.asarray(widths)
        lrs = np.asarray(learning_rates, np.float64)
        losses = np.asarray(losses, np.float64)
        if losses.shape[:2] != (widths.size, lrs.size):
            raise ValueError(f"losses: must be (widths, learning rates, seeds) = ({widths.size}, {lrs.size}, ...), "
                             f"got {losses.shape}")
        found = fit_transfer(widths, lrs, losses)
        return cls(widths, lrs, losses, found.eta_star, found.at_edge, found.fitted, found.slope, found.intercept)

    @property
    def mean_loss(self) -> np.ndarray:
        """``(W, K)`` seed mean of the losses; ``+inf`` where a seed diverged."""
        return mean_loss(self.losses)

    @property
    def best_learning_rate(self) -> np.ndarray:
        """``(W,)`` the grid learning rate of least :attr:`mean_loss` (``eta*`` lies within half a step of it)."""
        return self.learning_rates[np.argmin(self.mean_loss, axis=1)]

    @property
    def log2_eta_star(self) -> np.ndarray:
        """``(W,)`` ``log2 eta*`` (NaN where no loss was finite)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log2(self.eta_star)

    def predicted(self, width: float) -> float:
        """``eta*`` extrapolated along the fitted line to ``width``."""
        return float(2.0 ** (self.intercept + self.slope * math.log2(width)))


Progress = Callable[[int, int], None]


def _whole(value, name: str, limit: int, limit_name: str) -> int:
    if isinstance(value, bool) or not float(value).is_integer() or not 1 <= value <= limit:
        raise ValueError(f"{name}: must be an integer from 1 to {limit} ({limit_name}), got {value!r}")
    return int(value)


def _grid(widths, learning_rates) -> tuple[tuple[int, ...], np.ndarray]:
    """The checked widths and learning rates (``ValueError`` naming the argument)."""
    widths, learning_rates = tuple(widths), tuple(learning_rates)
    if len(widths) > budget.MAX_WIDTHS:
        raise ValueError(f"widths: at most {budget.MAX_WIDTHS} widths (MAX_WIDTHS), got {len(widths)}")
    widths = increasing(widths, at_least=2, name="widths", what="widths")
    if any(not float(w).is_integer() for w in widths) or widths[-1] > budget.MAX_WIDTH:
        raise ValueError(f"widths: must be integers of at most {budget.MAX_WIDTH} (MAX_WIDTH), got {widths}")
    if len(learning_rates) > budget.MAX_LEARNING_RATES:
        raise ValueError(f"learning_rates: at most {budget.MAX_LEARNING_RATES} learning rates (MAX_LEARNING_RATES), "
                         f"got {len(learning_rates)}")
    lrs = increasing(learning_rates, at_least=3, name="learning_rates", what="learning rates (a parabola is fitted)")
    if not all(math.isfinite(float(r)) for r in lrs):
        raise ValueError(f"learning_rates: must be finite, got {lrs}")
    return tuple(int(w) for w in widths), np.asarray(lrs, np.float64)


def _check_memory(params_at, width: int, members: int, memory) -> None:
    need = (memory(width, members) if memory is not None
            else budget.PARAMETER_COPIES * members * params_bytes(params_at(width)))
    refusal = budget.memory_refusal(width, need, f"{members} members")
    if refusal is not None:
        raise ValueError(f"widths: {refusal}")


def transfer(init: Callable[[jax.Array, int], Any] | None = None, apply: Callable[..., Any] | None = None,
             widths: Sequence[int] = (), learning_rates: Sequence[float] = (), *, data, steps: int, seeds: int = 4,
             loss: Callable[[Any, Any], jax.Array] = mse, optimizer: str | OptimizerSpec = "adam",
             build: Callable[[int, jax.Array], Any] | None = None, parameterization: str | None = None,
             lr_multipliers: Callable[[int], Any] | None = None, mup_options: Mapping[str, Any] | None = None,
             batch_size: int | None = None, known: Mapping[int, np.ndarray] | None = None,
             memory: Callable[[int, int], float] | None = None, progress: Progress | None = None) -> Transfer:
    """Train a model at every width x learning rate x seed; return the losses and ``eta*`` per width.

    The model comes in one of two forms (:mod:`learnmech.model_transfer`): ``init`` and ``apply``,
    or ``build`` (with ``apply`` optional).

    Args:
      init: ``init(key, width) -> params``, a plain pytree (``width`` a Python int).
      apply: with ``init``: ``apply(params, x, width) -> outputs``. With ``build``: ``apply(model, x)``,
        by default ``jax.vmap(model)(x)`` for an equinox Module (its layers take one example) and
        ``model(x)`` for any other callable model (flax nnx); required for a plain-pytree model.
      widths: at least 2 positive, strictly increasing integers (the first is where you would tune,
        and muP's base width).
      learning_rates: at least 3 positive, strictly increasing values, e.g. :func:`log2_grid`.
      data: ``(x, y)`` arrays with a leading example axis; the loss is recorded on all of it.
      steps: optimiser steps, the same for every run.
      seeds: members per learning rate, seeds ``0 .. seeds - 1`` (initialisation and minibatch order).
      loss: ``loss(outputs, targets) -> scalar``; default :func:`learnmech.observe.mse`,
        ``(1/2n) sum_i ||f(x_i) - y_i||^2``.
      optimizer: a name of :data:`learnmech.train.OPTIMIZERS` or an :class:`~learnmech.train.OptimizerSpec`
        (its other hyperparameters kept; the learning rate is the grid's).
      build: ``build(width, key) -> model``: an equinox Module, a flax nnx Module or a plain pytree of
        arrays (instead of ``init``); its trainable arrays are trained (:func:`learnmech.adapters.split`).
      parameterization: ``"mup-adam"``, ``"mup-sgd"`` or ``"sp"``: apply :func:`learnmech.nets.mup`
        between the model at ``widths[0]`` and at each width (init and learning-rate multipliers);
        ``None`` (default): train the model as written.
      lr_multipliers: ``width -> pytree`` of per-leaf learning-rate multipliers given by hand (muP), or
        None; not together with ``parameterization``.
      mup_options: more keyword arguments of :func:`learnmech.nets.mup` (e.g. ``zero_readout``,
        ``kinds``, ``init_convention``) with ``parameterization``.
      batch_size: examples per step; ``None`` (or at least the number of examples): full batch.
      known: ``{width: (K, seeds) losses}`` already measured with this grid and these seeds, used as
        given instead of training (e.g. muP at its base width is the SP network).
      memory: ``(width, members) -> bytes`` at the peak of training, for the memory check; default
        :data:`~learnmech.transfer_budget.PARAMETER_COPIES` copies of the weights (activations not counted).
      progress: ``progress(done_steps, total_steps)`` over every width trained.

    Returns:
      A :class:`Transfer`: ``losses`` ``(W, K, seeds)``, ``eta_star``, ``at_edge``, ``slope``, ...

    Example: an equinox MLP under muP for Adam, on data ``x`` ``(n, 8)`` and targets ``y`` ``(n, 1)``::

        import equinox as eqx
        make = lambda width, key: eqx.nn.MLP(8, 1, width, depth=2, key=key)
        result = transfer(build=make, widths=[32, 64, 128], learning_rates=log2_grid(-10, -2),
                          data=(x, y), steps=100, seeds=2, parameterization="mup-adam")
        result.eta_star        # (3,) the best Adam learning rate at each width
        result.slope           # d log2 eta* / d log2 width: near 0 when the rate transfers
        result.predicted(4096)  # eta* extrapolated to width 4096

    A flax nnx model is built the same way (``build = lambda width, key: Net(width, rngs=nnx.Rngs(key))``).
    Your own functions instead, a two-layer network whose readout is scaled by ``1/width``::

        def init(key, width):
            k1, k2 = jax.random.split(key)
            return {"w1": jax.random.normal(k1, (d, width)) / d**0.5, "w2": jax.random.normal(k2, (width, 1))}

        def apply(params, x, width):
            return jax.nn.relu(x @ params["w1"]) @ params["w2"] / width

        result = transfer(init, apply, [32, 64, 128], log2_grid(-10, -2), data=(x, y), steps=100, seeds=2)
    """
    widths, lrs = _grid(widths, learning_rates)
    seeds = _whole(seeds, "seeds", budget.MAX_SEEDS, "MAX_SEEDS")
    steps = _whole(steps, "steps", budget.MAX_STEPS, "MAX_STEPS")
    spec = optimizer if isinstance(optimizer, OptimizerSpec) else OptimizerSpec(optimizer)
    known = {int(w): np.asarray(v, np.float64) for w, v in (known or {}).items()}
    for w, v in known.items():
        if w not in widths or v.shape != (lrs.size, seeds):
            raise ValueError(f"known: width {w} must be one of {list(widths)} with losses of shape "
                             f"({lrs.size}, {seeds}), got {v.shape}")
    model_at, params_at = model_family(init=init, apply=apply, build=build, base_width=widths[0],
                                       parameterization=parameterization, lr_multipliers=lr_multipliers,
                                       mup_options=mup_options, example=data[0])
    todo = [w for w in widths if w not in known]
    if todo:
        _check_memory(params_at, todo[-1], lrs.size * seeds, memory)
    models = {w: model_at(w) for w in todo}  # abstract traces only: every model is checked before any training
    n = int(jax.tree.leaves(data)[0].shape[0])
    batch = None if batch_size is None or batch_size >= n else int(batch_size)
    for done, width in enumerate(todo):
        report = None if progress is None else (lambda d, t, done=done: progress(done * steps + d, len(todo) * steps))
        known[width] = _train_width(models[width], loss, lrs, data, spec=spec, steps=steps, seeds=seeds,
                                    batch_size=batch, progress=report)
    return Transfer.from_losses(np.asarray(widths), lrs, np.stack([known[w] for w in widths]))  # (W, K, seeds)


def _train_width(model: WidthModel, loss, lrs: np.ndarray, data, *, spec: OptimizerSpec, steps: int, seeds: int,
                 batch_size: int | None, progress: Progress | None) -> np.ndarray:
    """Final loss on the whole data of every learning rate x seed at one width, ``(K, seeds)``; NaN if diverged."""

    def member_loss(params, batch):
        x, y = batch
        return loss(model.apply(params, x), y)

    result = train(
        init=model.init, loss=member_loss, data=data, optimizer=spec, seeds=list(range(seeds)),
        grid={"learning_rate": np.asarray(lrs, np.float32)}, steps=[0, steps], lr_multipliers=model.lr_multipliers,
        batch_size=batch_size, layout="vmap", progress=progress,  # vmap: one compiled program per width
    )
    return np.asarray(result["loss"][..., -1], np.float64)  # (K, seeds); NaN after divergence
