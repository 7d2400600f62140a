"""The ensemble driver: one compiled program trains a whole ensemble, and probes it on a schedule.

Contract. ``train`` takes a model (``init``, or initial parameters ``params0``), a loss, data, an
update rule (:mod:`learnmech.train.optimizers`; minibatches and gradient accumulation as
:class:`~learnmech.train.member.MemberProgram` fields), a list of seeds and hyperparameter axes
(``grid``, :mod:`learnmech.train.ensemble`). The members are ``grid x seeds``; member ``(g, s)``
is initialised from ``jax.random.key(seeds[s])`` whatever else is in the ensemble, so a member's
trajectory does not depend on its neighbours. One jit-compiled function advances every member by
``n`` steps (``vmap`` over members of a ``fori_loop`` over steps, or ``lax.map``) and then evaluates
the cheap observables; it runs once per gap between stops. The trip count is a traced argument,
so all gaps share one compilation. (DESIGN.md asks for ``lax.scan``; a scan needs a static length
and would compile once per distinct gap of a log-spaced schedule, dozens of compiles at 1-4 s each
on a 2-core CPU, while the traced ``fori_loop`` lowers to the same XLA while loop.) Costly probes
(:class:`~learnmech.train.probes.Probe`) run at their own steps inside the same compiled program,
after the chunk, on the members they name, in their own layout (the measurement behind that choice
is in :mod:`learnmech.train.probes`).

Stops are the union of the observation steps and the probe steps; where a stop is not an
observation step the observables are skipped, and where it is not a step of a probe that probe is
(a ``lax.cond`` on an unbatched flag: a real branch, also in the vmapped layout).

Layouts: ``"vmap"`` batches members into every matmul (best for small networks); ``"map"``
runs members one after another inside the same compiled program (``lax.map``), which keeps
large matmuls at full size. ``"auto"`` picks by the parameters per member.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.train.ensemble import (TrainResult, ensemble_members, grid_axes, grid_shape,
                                      masked_after_divergence)
from learnmech.train.member import MemberProgram, MemberState, call_with_hp
from learnmech.train.optimizers import UpdateRule
from learnmech.train.probes import Probe, ProbeSeries, as_mapping, probe_members, probe_program, probe_schedule
from learnmech.train.schedule import log_schedule, validate_schedule

__all__ = ["TrainResult", "train", "ensemble_members"]

Observer = Callable[..., Mapping[str, jax.Array]]
LAYOUTS = ("vmap", "map", "auto")

# "auto" runs members sequentially ("map") once a member has this many parameters. Measured on
# the 2-core reference machine (64 tanh MLPs, float32, full-batch GD, n = 64 .. 1024): vmap was
# 1.3-2.7x faster below ~1e3 parameters (widths 8-16) and 1.1-1.5x slower above (widths >= 24),
# almost independently of n. What loses is XLA:CPU's batched matmul (64 batched 256x256
# products ran at 80 GFLOP/s against 108 one member at a time); the elementwise work is not
# slower batched. bench/ensemble.py measures both layouts: on a quiet machine (16 seeds, n = 1,024,
# December 2026) vmap was 1.24x faster for the small bench net (6,337 parameters, width 64), which the
# rule maps; it is kept, since moving it changes the layout, and so the rounding, of the nets of
# claims between 1e3 and 1e4 parameters. Probes use the same rule unless they carry their own
# threshold (Probe.map_from).
_AUTO_MAP_PARAMETERS = 2**10


def _pick(layout: str, params, map_from: int | None = None) -> str:
    """``layout``, or for ``"auto"``: ``"map"`` from ``map_from`` parameters per member on (default the trainer's).

    ``params``: arrays or shape structs with a leading member axis (only their shapes are read).
    """
    if layout != "auto":
        return layout
    per_member = sum(int(np.prod(x.shape[1:])) for x in jax.tree.leaves(params))
    threshold = _AUTO_MAP_PARAMETERS if map_from is None else map_from
    return "map" if per_member >= threshold else "vmap"


def _member_program(program: MemberProgram, observe, record_loss: bool, trace: int | None, skippable: bool):
    """``chunk(state, params0, hp, n, observe_now, data) -> (state, observations, losses)`` of one member."""

    def observations(state: MemberState, params0, hp, data):
        out = {"loss": program.loss_value(state.params, data, hp)} if record_loss else {}
        if observe is not None:
            out.update(call_with_hp(observe, state.params, params0, hp=hp))
        return out

    def chunk(state, params0, hp, n, observe_now, data):
        if trace is None:
            state, losses = program.advance(state, hp, data, n), None
        else:
            state, losses = program.advance(state, hp, data, n, trace=trace)
        if not skippable:
            return state, observations(state, params0, hp, data), losses
        shapes = jax.eval_shape(observations, state, params0, hp, data)
        skip = lambda: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)  # noqa: E731
        return state, jax.lax.cond(observe_now, lambda: observations(state, params0, hp, data), skip), losses

    return chunk


def _compile_chunk(chunk, layout: str, probes=()):
    """``(states, params0, hp, n, observe_now, data, probe_now, probe_data) -> (states, obs, losses, probe values)``.

    The probes (traceable programs over the gathered members, :func:`~learnmech.train.probes.probe_program`)
    run after the chunk behind a ``lax.cond`` on their unbatched flag; a skipped probe returns zeros.
    """
    if layout == "vmap":
        run = jax.vmap(chunk, in_axes=(0, 0, 0, None, None, None))
    else:
        run = lambda s, p0, h, n, o, d: jax.lax.map(lambda a: chunk(a[0], a[1], a[2], n, o, d), (s, p0, h))  # noqa

    def program(states, params0, hp, n, observe_now, data, probe_now, probe_data):
        states, obs, losses = run(states, params0, hp, n, observe_now, data)
        values = []
        for i, fn in enumerate(probes):
            shapes = jax.eval_shape(fn, states, hp, probe_data[i])
            zeros = lambda shapes=shapes: jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)  # noqa: E731
            values.append(jax.lax.cond(probe_now[i], lambda i=i: fn(states, hp, probe_data[i]), zeros))
        return states, obs, losses, values

    return jax.jit(program)


def _probe_member_fn(program: MemberProgram, probe: Probe):
    def member(state: MemberState, hp, data):
        try:
            P = program.preconditioner(state, hp)
        except ValueError:  # a custom optax chain holding Adam's state: its b1, b2, eps are not known here
            P = None
        return dict(as_mapping(probe.name, call_with_hp(probe.fn, state.params, P, data, hp=hp)))

    return member


def _take(tree, index):
    return jax.tree.map(lambda a: a[index], tree)


def _check(seeds, layout, probes):
    if layout not in LAYOUTS:
        raise ValueError(f"layout: must be 'vmap', 'map' or 'auto', got {layout!r}")
    if not seeds:
        raise ValueError("seeds: need at least one seed")
    names = [p.name for p in probes]
    if len(set(names)) != len(names) or any(not isinstance(p, Probe) for p in probes):
        raise ValueError(f"probes: need Probe objects with distinct names, got {names}")


def _check_member_steps(name: str | None, hp: Mapping[str, np.ndarray], last: int) -> None:
    """``hp[name]`` holds integers in ``[0, last]`` (one line per failure)."""
    if name is None:
        return
    if name not in hp:
        raise ValueError(f"member_steps: {name!r} must name a grid hyperparameter; the grid has {sorted(hp)}")
    values = np.asarray(hp[name])
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating) \
            or not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise ValueError(f"member_steps: grid values of {name!r} must be integers, got {values.tolist()}")
    if values.min() < 0 or values.max() > last:
        raise ValueError(f"member_steps: grid values of {name!r} must lie in [0, {last}] (the last scheduled "
                         f"step), got {values.tolist()}")


# Compiled programs of earlier calls, reused by a call that builds the same programs: the same model, loss,
# update rule and probe functions (the same Python objects), the same static settings, and arguments of the same
# shapes (jax.jit compiles once per shape). On a 2-core CPU a transformer's program takes seconds to compile,
# more than training it for a few hundred steps; a caller that trains one model in several calls (a scaling-law
# study: budgets before and after a preregistration) passes the same functions and pays once. Least recently
# used first out; a key with an unhashable part (arrays as learning-rate multipliers) is never cached.
_PROGRAMS: "OrderedDict[tuple, tuple]" = OrderedDict()
_PROGRAM_CACHE_SIZE = 16


def _frozen(tree):
    """A hashable stand-in for a pytree of Python numbers (``TypeError`` for anything else)."""
    leaves, treedef = jax.tree.flatten(tree)
    if not all(isinstance(x, (int, float)) for x in leaves):
        raise TypeError("not a pytree of Python numbers")
    return treedef, tuple(leaves)


def _program_key(program: MemberProgram, observe, record_loss: bool, trace, skippable: bool, layout: str, probes,
                 probed, n_members: int, params0_shapes):
    """The cache key of a call's compiled programs, or ``None`` when a part cannot be hashed.

    The layouts the programs are built with follow from the requested ones and the parameters' shapes, which
    ``init`` fixes (a function of the key alone) or the shapes of ``params0`` give (in the key).
    """
    try:
        key = (program.init, program.loss, program.optimizer,
               None if program.lr_multipliers is None else _frozen(program.lr_multipliers), program.batch_size,
               program.blowup, program.sampling, program.accumulate, program.member_steps, observe, record_loss,
               trace, skippable, layout, n_members, params0_shapes,
               tuple((p.name, p.fn, p.layout, p.map_from, tuple(m.tolist())) for p, m in zip(probes, probed)))
        hash(key)
    except TypeError:
        return None
    return key


def _cached(key, build):
    """``build()`` once per key (see :data:`_PROGRAMS`); a fresh ``build()`` for a key of ``None``."""
    if key is None:
        return build()
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    built = _PROGRAMS[key] = build()
    while len(_PROGRAMS) > _PROGRAM_CACHE_SIZE:
        _PROGRAMS.popitem(last=False)
    return built


def train(
    *,
    init: Callable | None = None,
    loss: Callable,
    data: Any,
    optimizer: UpdateRule,
    seeds: Sequence[int] = (0,),
    grid: Mapping[str, Any] | None = None,
    steps: int | Sequence[int] = 1000,
    observe: Observer | None = None,
    record_loss: bool = True,
    lr_multipliers: Any = None,
    batch_size: int | None = None,
    sampling: str = "without_replacement",
    accumulate: int | str | None = None,
    member_steps: str | None = None,
    probes: Sequence[Probe] = (),
    params0: Any = None,
    step_loss: bool = False,
    blowup: float | None = 1e6,
    layout: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train every member of ``grid x seeds``, record observables on a schedule and run probes on theirs.

    Args:
      init: ``init(key)`` or ``init(key, hp) -> params``. A function receives the member's
        hyperparameters exactly when it has a parameter named ``hp`` (:func:`call_with_hp`).
      loss: ``loss(params, batch)`` or ``loss(params, batch, hp)``; the trainer also records it
        on the full data at each observation point under the name ``"loss"``.
      data: a pytree of arrays shared by every member (leading axis = examples for minibatches).
      optimizer: the update rule: an :class:`OptimizerSpec`, an optax transformation, or a function
        ``hp -> optax transformation`` (:mod:`learnmech.train.optimizers`).
      seeds: integer seeds; member keys are ``jax.random.key(seed)``.
      grid: hyperparameter axes, e.g. ``{"learning_rate": [0.1, 0.2]}``, or linked hyperparameters on
        one axis, ``{"batch": {"k": [1, 2], "learning_rate": [0.1, 0.2]}}`` (:mod:`.ensemble`). Names of
        optimiser hyperparameters override the optimiser's; every value is passed to ``init``/``loss``/
        ``observe``/probes in the member's ``hp`` dict.
      steps: total steps (observed on a log schedule of 100 points) or explicit observation
        steps (strictly increasing; training runs to the last).
      observe: ``observe(params, params0)`` or ``observe(params, params0, hp) -> {name: array}``.
      record_loss: record the loss on the full ``data`` at every observation point (``"loss"``); turn
        it off when ``data`` is a large pool that minibatches or a stream draw from.
      lr_multipliers: per-leaf learning-rate multipliers (a pytree prefix of the parameters).
      batch_size: ``None`` (full batch) or examples per step.
      sampling: ``"without_replacement" | "with_replacement" | "stream" | "epochs"`` (:mod:`.sampling`).
      accumulate: gradient accumulation: ``None``, steps per update, or the name of a hyperparameter
        holding it (:class:`MemberProgram`); a step is then a micro-step.
      member_steps: ``None``, or the name of a grid hyperparameter holding each member's own number of
        (micro-)steps, integers in ``[0, last scheduled step]``. A member stops there (not diverged):
        its later observations repeat its final state and its ``step_loss`` past it is NaN.
      probes: costly measurements on their own schedules (:class:`~learnmech.train.probes.Probe`).
      params0: initial parameters instead of ``init``: leaves ``(n_seeds, ...)``; member ``(g, s)``
        starts from ``params0[s]`` (its batch key is still ``jax.random.key(seeds[s])``'s).
      step_loss: also record the loss of every step (``TrainResult.step_loss``).
      blowup: a loss above ``blowup`` times the initial loss counts as divergence (``None``: only
        non-finite values).
      layout: ``"vmap" | "map" | "auto"``.
      progress: called as ``progress(done_steps, total_steps)`` after every chunk.
    """
    probes = tuple(probes)
    _check(seeds, layout, probes)
    if (init is None) == (params0 is None):
        raise ValueError("init / params0: give exactly one of them")
    axes, n_seeds = grid_axes(grid), len(seeds)
    schedule = log_schedule(steps) if np.isscalar(steps) else validate_schedule(steps)
    last = int(schedule[-1])
    program = MemberProgram(init, loss, optimizer, lr_multipliers, batch_size, blowup, sampling, accumulate,
                            member_steps)

    hp_np, seed_index = ensemble_members(grid, seeds)
    _check_member_steps(member_steps, hp_np, last)
    hp = {k: jnp.asarray(v) for k, v in hp_np.items()}
    keys = jax.vmap(jax.random.key)(jnp.asarray(np.asarray(seeds)[seed_index]))
    data = jax.device_put(data)  # an argument of the compiled programs, never a baked-in constant
    probe_steps = [probe_schedule(p, last) for p in probes]
    probed = [probe_members(p, seed_index.size) for p in probes]
    stops = np.unique(np.concatenate([schedule, *probe_steps]))
    gaps = np.diff(np.concatenate([[0], stops]))

    # Members start one after another inside one program: a vmapped threefry draw compiles
    # several times slower than a single one, and initialisation is cheap to run.
    trace = int(max(gaps.max(), 1)) if step_loss else None
    skippable = stops.size > schedule.size
    shapes0 = None if params0 is None else tuple((np.shape(x), str(getattr(x, "dtype", np.asarray(x).dtype)))
                                                 for x in jax.tree.leaves(params0))
    key = _program_key(program, observe, record_loss, trace, skippable, layout, probes, probed, seed_index.size,
                       shapes0)
    entry = _cached(key, lambda: {})  # the start program, then the layout and the chunk program once known
    if "start" not in entry:
        if params0 is None:
            entry["start"] = jax.jit(lambda k, h, d: jax.lax.map(lambda a: program.start(a[0], a[1], d), (k, h)))
        else:
            entry["start"] = jax.jit(lambda k, h, p, d: jax.lax.map(lambda a: program.start(a[0], a[1], d, a[2]),
                                                                    (k, h, p)))
    if params0 is None:
        states = entry["start"](keys, hp, data)
    else:
        states = entry["start"](keys, hp, _take(jax.device_put(params0), jnp.asarray(seed_index)), data)
    params_start = states.params
    if "chunk" not in entry:
        programs = [probe_program(_probe_member_fn(program, p), _pick(p.layout, params_start, p.map_from), members,
                                  seed_index.size) for p, members in zip(probes, probed)]
        entry["chunk"] = _compile_chunk(_member_program(program, observe, record_loss, trace, skippable),
                                        _pick(layout, params_start), programs)
    chunk = entry["chunk"]
    probe_data = [data if p.data is None else jax.device_put(p.data) for p in probes]

    records, losses, values, done = [], [], [[] for _ in probes], 0
    observed, probe_at = set(schedule.tolist()), [set(s.tolist()) for s in probe_steps]
    for target in stops.tolist():
        now = [target in at for at in probe_at]
        states, obs, chunk_losses, probed_values = chunk(states, params_start, hp, jnp.int32(target - done),
                                                         jnp.asarray(target in observed), data,
                                                         jnp.asarray(now, bool), probe_data)
        if target in observed:
            records.append(jax.device_get(obs))
        if step_loss:
            losses.append(np.asarray(chunk_losses)[:, : target - done])
        for i in np.flatnonzero(now):
            values[i].append(jax.device_get(probed_values[i]))
        done = int(target)
        if progress is not None:
            progress(done, last)
    return _result(schedule, seeds, axes, records, losses, values, probe_steps, probed, states,
                   grid_shape(grid, n_seeds))


def _result(schedule, seeds, axes, records, losses, values, probe_steps, probed, states, shape):
    diverged_step = np.asarray(states.diverged_step)  # (M,)
    observations = {}
    for name in records[0]:
        stacked = np.stack([np.asarray(r[name]) for r in records], axis=1)  # (M, T, ...)
        stacked = masked_after_divergence(stacked, schedule, diverged_step)
        observations[name] = stacked.reshape(shape + stacked.shape[1:])
    step_loss = None
    if losses:
        trace = np.concatenate(losses, axis=1)  # (M, last)
        trace = masked_after_divergence(trace, np.arange(trace.shape[1]), diverged_step)
        step_loss = trace.reshape(shape + trace.shape[1:])
    series = {}
    for steps_i, members, rows in zip(probe_steps, probed, values):
        for name in rows[0]:
            if name in series:
                raise ValueError(f"probes: two probes return a value named {name!r}")
            stacked = np.stack([np.asarray(r[name]) for r in rows], axis=1)  # (K, T, ...)
            series[name] = ProbeSeries(steps_i, members, masked_after_divergence(stacked, steps_i,
                                                                                   diverged_step[members]))
    return TrainResult(
        steps=schedule,
        seeds=tuple(int(s) for s in seeds),
        grid={k: v for named in axes for k, v in named.items()},
        observations=observations,
        diverged=np.asarray(states.diverged).reshape(shape),
        diverged_step=diverged_step.reshape(shape),
        params=jax.tree.map(lambda a: np.asarray(a).reshape(shape + a.shape[1:]), states.params),
        step_loss=step_loss,
        probes=series,
    )
