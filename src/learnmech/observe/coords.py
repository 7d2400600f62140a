"""The coordinate check: how the size of each layer's activations and of their updates scales with width.

What it measures. Build the same architecture at several widths ``n``, initialise, take ``k``
optimiser steps, and record for every layer ``l`` on a fixed probe batch

    rms_l(n)       = sqrt(mean(h_l(x; w_0)^2))                 (the activation at initialisation)
    change_l(n, t) = sqrt(mean((h_l(x; w_t) - h_l(x; w_0))^2))   (its update after t steps)

the means running over every entry of the activation on the probe (all examples, all units).
Plotted against width on log-log axes, each layer gives a line; its slope is the exponent with
which that layer's coordinates scale.

Why Theta(1) is the muP prediction. The maximal-update parameterisation (muP) is defined by the
requirement that, as the width grows, every layer's activations have Theta(1) coordinates and
every layer's activations *change* by Theta(1) per coordinate in the first steps of training:
larger updates blow up, smaller ones freeze that layer in the infinite-width limit (Yang & Hu
2021, TP-IV, arXiv:2011.14522). Equivalently, in the spectral form of Yang, Simon & Bernstein
2023 (arXiv:2310.17813), ``||W_l||_* = Theta(sqrt(fan_out / fan_in))`` and
``||Delta W_l||_* = Theta(sqrt(fan_out / fan_in))`` for every weight matrix, which together with
the alignment of gradient updates to the incoming features gives
``||Delta h_l||_2 = Theta(sqrt(fan_out))``, i.e. RMS ``Theta(1)``. A flat line (slope 0) for every
layer is therefore the muP prediction, and a sloped line locates a parameterisation error: this
is the "coordinate check" of Yang et al. 2022 (TP-V, arXiv:2203.03466, Appendix "coordinate
check"). (muP's output layer at *initialisation* is O(1), not Theta(1): with init variance
``1/fan_in^2`` its RMS decays like ``n^{-1/2}``; only the change is Theta(1).)

Contract. Any JAX model written over a plain pytree takes part through a :class:`CoordModel`:
``init(key) -> params``, ``layers(params, x) -> [h_1, ..., h_L]`` (last = output), ``loss(params,
batch) -> scalar`` and the full ``optax`` update rule (learning rate and per-leaf multipliers
included). :func:`coord_check` calls ``build(width)`` for each width, trains one member per seed
(``vmap`` over seeds, one compiled program per width) on the same data and probe, and returns a
:class:`CoordCheck` with the RMS at init ``(W, L)`` and the change after each of ``k`` steps
``(W, K, L)``, averaged over seeds, plus the per-seed arrays.

A layer's activation may change shape with width only along its width axes: every axis must be
either the same at every width or strictly increasing with width; the number of layers must be
the same at every width. Anything else raises ``ValueError`` before training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from learnmech.increasing import increasing

__all__ = ["CoordCheck", "CoordModel", "coord_check", "layer_coordinates", "minibatch_indices"]


class CoordModel(NamedTuple):
    """A model at one width, as the coordinate check needs it."""

    init: Callable[[jax.Array], Any]  # key -> params (pytree)
    layers: Callable[[Any, jax.Array], Sequence[jax.Array]]  # (params, x) -> per-layer activations, last = output
    loss: Callable[[Any, Any], jax.Array]  # (params, batch) -> scalar
    optimizer: optax.GradientTransformation  # the full update rule (lr and muP multipliers included)


def _log_slope(widths: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Least-squares slope of ``log values`` against ``log widths``, per column: ``(W, L) -> (L,)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log(np.asarray(widths, np.float64))  # (W,)
        y = np.log(np.asarray(values, np.float64))  # (W, L)
        xc = x - x.mean()
        return (xc @ (y - y.mean(axis=0))) / (xc @ xc)  # (L,)


def _ratio(values: np.ndarray) -> np.ndarray:
    """Widest over narrowest, per column: ``(W, L) -> (L,)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(values[-1] / values[0], np.float64)


@dataclass(frozen=True)
class CoordCheck:
    """Result of :func:`coord_check`.

    Attributes:
      widths: ``(W,)`` increasing.
      steps: ``(K,)`` the steps ``1..k`` after which the change is recorded.
      rms: ``(W, L)`` activation RMS at initialisation, mean over seeds.
      change: ``(W, K, L)`` RMS of ``h_t - h_0`` on the probe after ``t`` steps, mean over seeds.
      rms_per_seed: ``(W, S, L)`` the same before averaging (``None`` when built from means).
      change_per_seed: ``(W, S, K, L)`` the same before averaging (``None`` when built from means).

    A diverged member shows as NaN (or inf) in its per-seed entries and in the means.
    """

    widths: np.ndarray
    steps: np.ndarray
    rms: np.ndarray
    change: np.ndarray
    rms_per_seed: np.ndarray | None = None
    change_per_seed: np.ndarray | None = None

    @property
    def ratio(self) -> np.ndarray:
        """``(L,)`` change at step ``k``, widest over narrowest: 1 when updates are width-independent."""
        return _ratio(self.change[:, -1])

    @property
    def slope(self) -> np.ndarray:
        """``(L,)`` log-log slope of the change at step ``k`` against width (0 under muP)."""
        return _log_slope(self.widths, self.change[:, -1])

    @property
    def rms_ratio(self) -> np.ndarray:
        """``(L,)`` activation RMS at init, widest over narrowest."""
        return _ratio(self.rms)

    @property
    def rms_slope(self) -> np.ndarray:
        """``(L,)`` log-log slope of the activation RMS at init against width."""
        return _log_slope(self.widths, self.rms)


def _rms(a: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.mean(jnp.square(a)))


def _coordinates(now: Sequence[jax.Array], before: Sequence[jax.Array]) -> tuple[jax.Array, jax.Array]:
    rms = jnp.stack([_rms(a) for a in now])  # (L,)
    change = jnp.stack([_rms(a - b) for a, b in zip(now, before)])  # (L,)
    return rms, change


def layer_coordinates(layers, params, params0, probe) -> tuple[jax.Array, jax.Array]:
    """Per-layer ``(rms, change)`` on ``probe``, each ``(L,)``.

    ``rms_l = sqrt(mean(h_l(probe; params)^2))`` and ``change_l = sqrt(mean((h_l(probe; params)
    - h_l(probe; params0))^2))``, the means over all entries of layer ``l``'s activation
    (Yang et al. 2022, TP-V, arXiv:2203.03466, Appendix "coordinate check"). With
    ``params = params0`` this is the RMS at initialisation and a zero change.
    """
    now, before = layers(params, probe), layers(params0, probe)
    if len(now) != len(before):
        raise ValueError(f"layers returned {len(now)} activations for params and {len(before)} for params0")
    return _coordinates(now, before)


def minibatch_indices(seed: int, n: int, batch_size: int, steps: int) -> np.ndarray:
    """The fixed minibatch sequence of member ``seed``: ``(steps, batch_size)`` example indices.

    Step ``t`` uses the first ``batch_size`` entries of an independent random permutation of
    ``range(n)`` (sampling without replacement within a step). The sequence depends on the seed
    only, so every width sees the same data in the same order.
    """
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size: must be in [1, {n}], got {batch_size}")
    rng = np.random.default_rng([int(seed), 0x636F6F7264])  # a stream separate from the init key's
    return np.stack([rng.permutation(n)[:batch_size] for _ in range(steps)])  # (steps, batch_size)


def _data_size(data) -> int:
    sizes = {int(np.shape(leaf)[0]) for leaf in jax.tree.leaves(data)}
    if len(sizes) != 1:
        raise ValueError(f"data: every leaf needs the same leading (example) axis to take minibatches, got {sizes}")
    return sizes.pop()


def _layer_shapes(model: CoordModel, probe) -> list[tuple[int, ...]]:
    params = jax.eval_shape(model.init, jax.random.key(0))
    return [tuple(a.shape) for a in jax.eval_shape(model.layers, params, probe)]


def _check_shapes(widths: Sequence[int], shapes: Sequence[list[tuple[int, ...]]]) -> None:
    """Same layer count everywhere; per layer, each axis constant or strictly increasing with width."""
    counts = [len(s) for s in shapes]
    if len(set(counts)) != 1:
        raise ValueError(f"coord_check: the number of layers differs between widths {list(widths)}: {counts}")
    for l in range(counts[0]):
        per_width = [s[l] for s in shapes]
        if len({len(p) for p in per_width}) != 1:
            raise ValueError(f"coord_check: layer {l} has activations of different rank across widths "
                             f"{list(widths)}: {per_width}")
        for axis, sizes in enumerate(zip(*per_width)):
            constant = len(set(sizes)) == 1
            increasing = all(a < b for a, b in zip(sizes, sizes[1:]))
            if not (constant or increasing):
                raise ValueError(f"coord_check: layer {l}, axis {axis} has sizes {list(sizes)} at widths "
                                 f"{list(widths)}; an axis must be fixed or grow with width")


def _member_program(model: CoordModel, steps: int, batched: bool, compiler_options=None):
    """``(keys (S,), indices, data, probe) -> (rms0 (S, L), change (S, K, L))``, vectorised over members.

    ``indices`` is ``(S, K, B)`` (unused for full batch); data and probe are shared by the members.
    """

    def run(key, indices, data, probe):
        params0 = model.init(key)
        h0 = model.layers(params0, probe)
        rms0, _ = _coordinates(h0, h0)

        def step(carry, idx):
            params, state = carry
            batch = jax.tree.map(lambda a: a[idx], data) if batched else data
            grads = jax.grad(model.loss)(params, batch)
            updates, state = model.optimizer.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            _, change = _coordinates(model.layers(params, probe), h0)
            return (params, state), change  # change: (L,)

        xs = indices if batched else None
        _, changes = jax.lax.scan(step, (params0, model.optimizer.init(params0)), xs, length=steps)
        return rms0, changes  # (L,), (K, L)

    return jax.jit(jax.vmap(run, in_axes=(0, 0, None, None)), compiler_options=compiler_options)


def coord_check(build: Callable[[int], CoordModel], widths: Sequence[int], *, data, probe,
                steps: int = 3, seeds: Sequence[int] = (0, 1, 2), batch_size: int | None = None,
                compiler_options: Mapping[str, Any] | None = None) -> CoordCheck:
    """Measure per-layer activation RMS at init and its change over ``steps`` steps, across widths.

    Args:
      build: ``width -> CoordModel``, the same architecture and update rule at each width.
      widths: at least two, strictly increasing.
      data: the batch passed to ``loss`` (full batch); with ``batch_size``, a pytree whose leaves
        share a leading example axis, cut into the sequence of :func:`minibatch_indices`.
      probe: inputs on which the layers are evaluated, passed to ``layers``.
      steps: optimiser steps ``k``; the change is recorded after each of them.
      seeds: one member per seed, initialised with ``jax.random.key(seed)``.
      batch_size: ``None`` for full batch.
      compiler_options: XLA options for the per-width programs, e.g.
        ``{"xla_backend_optimization_level": 0}`` for small models, where compiling (random draws
        above all) costs more than running.

    Returns:
      A :class:`CoordCheck`; ``rms`` is ``(W, L)``, ``change`` is ``(W, K, L)`` (mean over seeds).

    The muP prediction is a slope of 0 in width for every layer's change (module docstring;
    Yang et al. 2022, arXiv:2203.03466; Yang, Simon & Bernstein 2023, arXiv:2310.17813).
    """
    widths = list(increasing([int(w) for w in widths], at_least=2, name="widths", what="widths"))
    seeds = [int(s) for s in seeds]
    if int(steps) < 1:
        raise ValueError(f"steps: must be >= 1, got {steps}")
    if not seeds:
        raise ValueError("seeds: need at least one seed")
    steps = int(steps)
    batched = batch_size is not None
    if batched:
        n = _data_size(data)
        indices = jnp.asarray(np.stack([minibatch_indices(s, n, int(batch_size), steps) for s in seeds]))  # (S, K, B)
    else:
        indices = jnp.zeros((len(seeds), steps, 0), jnp.int32)  # unused
    models = [build(w) for w in widths]
    _check_shapes(widths, [_layer_shapes(m, probe) for m in models])
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))  # (S,)
    rms, change = [], []
    for model in models:
        r, c = _member_program(model, steps, batched, compiler_options)(keys, indices, data, probe)  # (S, L), (S, K, L)
        rms.append(np.asarray(r, np.float64))
        change.append(np.asarray(c, np.float64))
    rms_s, change_s = np.stack(rms), np.stack(change)  # (W, S, L), (W, S, K, L)
    return CoordCheck(widths=np.asarray(widths), steps=np.arange(1, steps + 1), rms=rms_s.mean(axis=1),
                      change=change_s.mean(axis=1), rms_per_seed=rms_s, change_per_seed=change_s)
