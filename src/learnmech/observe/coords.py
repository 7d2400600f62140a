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
``init(key) -> params``, ``layers(params, x) -> [h_1, ..., h_L]`` (last = output; or a dict
``{name: h_l}`` in that order, which names the layers), ``loss(params,
batch) -> scalar`` and the full ``optax`` update rule (learning rate and per-leaf multipliers
included). :func:`coord_check` calls ``build(width)`` for each width, trains one member per seed
(``vmap`` over seeds, one compiled program per width) on the same data and probe, and returns a
:class:`CoordCheck` with the RMS at init ``(W, L)`` and the change after each of ``k`` steps
``(W, K, L)``, averaged over seeds, plus the per-seed arrays. The result's summary judges every
step (the worst step per layer), reports the init-RMS slope, warns about layers that drift with
width and prints as a table (:mod:`learnmech.observe.coords_summary`);
:func:`learnmech.report.plot_coord_check` draws it.

A layer's activation may change shape with width only along its width axes: every axis must be
either the same at every width or strictly increasing with width; the number of layers must be
the same at every width. Anything else raises ``ValueError`` before training.

Speed. One program per width, traced once and compiled once (``jit(...).lower(...).compile()``, so
no argument can trigger a second compilation), runs every seed (``vmap``) and every step
(``scan``); the keys are made inside the program from the integer seeds, so nothing else is
compiled. Each width compiles in a thread pool while the next width is traced (XLA releases
Python's lock while it compiles; up to 4 at once, at most one per core). For the small models of a
coordinate check, compiling costs far more than running, and most of the compile time goes to
XLA:CPU's fusion emitters and LLVM's optimisation passes (of what remains, about half is the
init's random draws: threefry hashing and normal sampling). With ``compiler_options="auto"`` (the
default) a CPU program whose members hold at most ``FAST_COMPILE_PARAMETERS`` parameters in all
(2^22, about 4M: an MLP 16 -> 1024 -> 1024 -> 10 with 3 seeds) is compiled with ``FAST_COMPILE``
(backend optimisation level 0 and XLA's classic elemental emitters instead of the fusion
emitters). Measured on an MLP 16 -> 512 -> 512 -> 1, 3 seeds, 3 Adam steps (2 shared CPU cores,
process CPU seconds): compile 2.7 s -> 0.35 s, run 0.05 s -> 0.36 s; at width 2048 the run would
cost 1.5 s -> 5.6 s, hence the size limit.
Larger programs, and every GPU or TPU program, keep XLA's defaults. The two
compilations round float32 differently (summation order), which moves a change by up to ~1e-4
relative where Adam's first step normalises near-zero gradient entries; far below the
seed-to-seed spread a coordinate check reads.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from learnmech.increasing import increasing
from learnmech.observe.coords_summary import CoordCheck

__all__ = ["CoordCheck", "CoordModel", "coord_check", "FAST_COMPILE", "FAST_COMPILE_PARAMETERS", "layer_coordinates",
           "minibatch_indices"]

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}  # module docstring
FAST_COMPILE_PARAMETERS = 2**22  # parameters of all members of one width, at most, for FAST_COMPILE on CPU


class CoordModel(NamedTuple):
    """A model at one width, as the coordinate check needs it."""

    init: Callable[[jax.Array], Any]  # key -> params (pytree)
    layers: Callable[[Any, jax.Array], Any]  # (params, x) -> [h_1, ..., h_L] or {name: h_l}; last = output
    loss: Callable[[Any, Any], jax.Array]  # (params, batch) -> scalar
    optimizer: optax.GradientTransformation  # the full update rule (lr and muP multipliers included)
    names: Sequence[str] | None = None  # optional layer names (when ``layers`` returns a list)


def _activations(out) -> tuple[tuple[str, ...] | None, list[jax.Array]]:
    """``layers``' output as ``(names or None, [h_1, ..., h_L])``: a dict names them, in its order."""
    if isinstance(out, Mapping):
        return tuple(str(k) for k in out), list(out.values())
    return None, list(out)


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
    ``params = params0`` this is the RMS at initialisation and a zero change. ``layers`` may
    return a list or a dict of activations.
    """
    now, before = _activations(layers(params, probe))[1], _activations(layers(params0, probe))[1]
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


def _check_names(widths: Sequence[int], names: Sequence[tuple[str, ...] | None]) -> tuple[str, ...] | None:
    """The layer names, which must be the same at every width (``None`` when no width gives any)."""
    given = {n for n in names if n is not None}
    if len(given) > 1:
        raise ValueError(f"coord_check: the layer names differ between widths {list(widths)}: {sorted(given)}")
    return given.pop() if given else None


class _Trace:
    """What tracing one width's program reveals: layer shapes and names, parameters per member."""

    def __init__(self):
        self.shapes: list[tuple[int, ...]] = []
        self.names: tuple[str, ...] | None = None
        self.parameters = 0


def _layer_names(model: CoordModel, traced: tuple[str, ...] | None, count: int) -> tuple[str, ...] | None:
    if model.names is None:
        return traced
    names = tuple(str(n) for n in model.names)
    if traced is not None and traced != names:
        raise ValueError(f"names: {list(names)} differ from the keys {list(traced)} that layers returns")
    if len(names) != count:
        raise ValueError(f"names: {len(names)} names for {count} layers")
    return names


def _member_program(model: CoordModel, steps: int, batched: bool, trace: _Trace):
    """``(seeds (S,), indices, data, probe) -> (rms0 (S, L), change (S, K, L))``, vectorised over members.

    ``indices`` is ``(S, K, B)`` (unused for full batch); data and probe are shared by the members.
    Member ``s`` is initialised with ``jax.random.key(seeds[s])``. Tracing fills ``trace``.
    """

    def run(seed, indices, data, probe):
        params0 = model.init(jax.random.key(seed))
        traced, h0 = _activations(model.layers(params0, probe))
        trace.shapes = [tuple(h.shape) for h in h0]
        trace.names = _layer_names(model, traced, len(h0))
        trace.parameters = sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree.leaves(params0))
        rms0, _ = _coordinates(h0, h0)

        def step(carry, idx):
            params, state = carry
            batch = jax.tree.map(lambda a: a[idx], data) if batched else data
            grads = jax.grad(model.loss)(params, batch)
            updates, state = model.optimizer.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            _, change = _coordinates(_activations(model.layers(params, probe))[1], h0)
            return (params, state), change  # change: (L,)

        xs = indices if batched else None
        _, changes = jax.lax.scan(step, (params0, model.optimizer.init(params0)), xs, length=steps)
        return rms0, changes  # (L,), (K, L)

    return jax.jit(jax.vmap(run, in_axes=(0, 0, None, None)))


def _compiler_options(options, parameters: int):
    """``"auto"``: ``FAST_COMPILE`` for a CPU program of at most ``FAST_COMPILE_PARAMETERS``
    parameters (all members), XLA's defaults otherwise; anything else is passed on as given."""
    if isinstance(options, str):
        if options != "auto":
            raise ValueError(f"compiler_options: must be 'auto', None or a mapping of XLA options, got {options!r}")
        small = parameters <= FAST_COMPILE_PARAMETERS and jax.default_backend() == "cpu"
        return dict(FAST_COMPILE) if small else None
    return None if options is None else dict(options)


def _timed_compile(lowered, options):
    start = time.perf_counter()
    return lowered.compile(options), time.perf_counter() - start


def coord_check(build: Callable[[int], CoordModel], widths: Sequence[int], *, data, probe,
                steps: int = 3, seeds: Sequence[int] = (0, 1, 2), batch_size: int | None = None,
                compiler_options: Mapping[str, Any] | str | None = "auto") -> CoordCheck:
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
      compiler_options: XLA options for the per-width programs: ``"auto"`` (``FAST_COMPILE`` for
        small CPU programs, see the module docstring), ``None`` for XLA's defaults, or a mapping,
        e.g. ``{"xla_backend_optimization_level": 0}``.

    Returns:
      A :class:`CoordCheck`; ``rms`` is ``(W, L)``, ``change`` is ``(W, K, L)`` (mean over seeds),
      ``layer_names`` from the model, ``timings`` the seconds spent per width.

    The muP prediction is a slope of 0 in width for every layer's change at every step (module
    docstring; Yang et al. 2022, arXiv:2203.03466; Yang, Simon & Bernstein 2023, arXiv:2310.17813).
    """
    widths = list(increasing([int(w) for w in widths], at_least=2, name="widths", what="widths"))
    seeds = [int(s) for s in seeds]
    if int(steps) < 1:
        raise ValueError(f"steps: must be >= 1, got {steps}")
    if not seeds:
        raise ValueError("seeds: need at least one seed")
    _compiler_options(compiler_options, 0)  # a bad value fails before any tracing
    steps = int(steps)
    batched = batch_size is not None
    if batched:
        n = _data_size(data)
        indices = np.stack([minibatch_indices(s, n, int(batch_size), steps) for s in seeds])  # (S, K, B)
    else:
        indices = np.zeros((len(seeds), steps, 0), np.int32)  # unused
    args = (np.asarray(seeds), indices, data, probe)
    traces, timings, compiling = [], {}, []
    with ThreadPoolExecutor(max_workers=min(len(widths), os.cpu_count() or 1, 4)) as pool:
        for w in widths:  # trace here while the widths before compile in the pool
            start, trace = time.perf_counter(), _Trace()
            lowered = _member_program(build(w), steps, batched, trace).lower(*args)
            traces.append(trace)
            timings[w] = {"trace": time.perf_counter() - start}
            options = _compiler_options(compiler_options, trace.parameters * len(seeds))
            compiling.append(pool.submit(_timed_compile, lowered, options))
        try:
            _check_shapes(widths, [t.shapes for t in traces])
            names = _check_names(widths, [t.names for t in traces])
        except ValueError:
            for future in compiling:
                future.cancel()
            raise
        rms, change = [], []
        for w, future in zip(widths, compiling):
            program, timings[w]["compile"] = future.result()
            start = time.perf_counter()
            r, c = jax.block_until_ready(program(*args))  # (S, L), (S, K, L)
            rms.append(np.asarray(r, np.float64))
            change.append(np.asarray(c, np.float64))
            timings[w]["run"] = time.perf_counter() - start
    rms_s, change_s = np.stack(rms), np.stack(change)  # (W, S, L), (W, S, K, L)
    return CoordCheck(widths=np.asarray(widths), steps=np.arange(1, steps + 1), rms=rms_s.mean(axis=1),
                      change=change_s.mean(axis=1), rms_per_seed=rms_s, change_per_seed=change_s,
                      layer_names=names, timings=timings)
