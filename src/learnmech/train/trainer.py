"""The vectorised trainer: one compiled program trains a whole ensemble.

Contract. ``train`` takes a model (``init``), a loss, data, an optimiser, a list of seeds and
hyperparameter axes (``grid``). The members are the Cartesian product ``grid x seeds``; member
``(g, s)`` is initialised from ``jax.random.key(seeds[s])`` whatever else is in the ensemble,
so a member's trajectory does not depend on its neighbours. One jit-compiled function advances
every member by ``n`` steps (``vmap`` over members of a ``fori_loop`` over steps) and then
evaluates the observables; it runs once per gap of the observation schedule. The trip count is
a traced argument, so all gaps share one compilation. (DESIGN.md asks for ``lax.scan``; a scan
needs a static length and would compile once per distinct gap of a log-spaced schedule, dozens
of compiles at 1-4 s each on a 2-core CPU, while the traced ``fori_loop`` lowers to the same
XLA while loop and no per-step outputs are needed.)

Layouts: ``"vmap"`` batches members into every matmul (best for small networks); ``"map"``
runs members one after another inside the same compiled program (``lax.map``), which keeps
large matmuls at full size. ``"auto"`` picks by the work per member.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.train.member import MemberProgram, MemberState, call_with_hp
from learnmech.train.optimizers import OptimizerSpec
from learnmech.train.schedule import log_schedule, validate_schedule

__all__ = ["TrainResult", "train", "ensemble_members"]

Observer = Callable[..., Mapping[str, jax.Array]]

# "auto" runs members sequentially ("map") once a member has this many parameters. Measured on
# the 2-core reference machine (64 tanh MLPs, float32, full-batch GD, n = 64 .. 1024): vmap was
# 1.3-2.7x faster below ~1e3 parameters (widths 8-16) and 1.1-1.5x slower above (widths >= 24),
# almost independently of n. What loses is XLA:CPU's batched matmul (64 batched 256x256
# products ran at 80 GFLOP/s against 108 one member at a time); the elementwise work is not
# slower batched. bench/ensemble.py measures both layouts.
_AUTO_MAP_PARAMETERS = 2**10


@dataclass(frozen=True)
class TrainResult:
    """Observations of an ensemble, shaped ``(*grid_shape, n_seeds, n_steps, ...)``.

    ``diverged``/``diverged_step`` are ``(*grid_shape, n_seeds)``; observations of a member
    after the step at which it diverged are NaN. ``params`` holds the final parameters with the
    same leading axes.
    """

    steps: np.ndarray
    seeds: tuple[int, ...]
    grid: dict[str, np.ndarray]
    observations: dict[str, np.ndarray]
    diverged: np.ndarray
    diverged_step: np.ndarray
    params: Any

    @property
    def shape(self) -> tuple[int, ...]:
        return self.diverged.shape

    def __getitem__(self, name: str) -> np.ndarray:
        return self.observations[name]


def ensemble_members(grid: Mapping[str, Sequence[float]], seeds: Sequence[int]):
    """Flattened members: per-member hyperparameter arrays and seed indices, grid-major."""
    names = list(grid)
    values = [np.asarray(grid[k]) for k in names]
    points = list(itertools.product(*[range(len(v)) for v in values]))
    hp = {k: np.array([v[p[i]] for p in points for _ in seeds]) for i, (k, v) in enumerate(zip(names, values))}
    seed_index = np.tile(np.arange(len(seeds)), len(points))
    return hp, seed_index


def _parameters_per_member(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def _masked(obs: np.ndarray, steps: np.ndarray, diverged_step: np.ndarray) -> np.ndarray:
    """NaN the observations recorded after each member's divergence step."""
    if not np.issubdtype(obs.dtype, np.floating):
        return obs
    after = (diverged_step[:, None] >= 0) & (steps[None, :] > diverged_step[:, None])  # (M, T)
    out = obs.copy()
    out[after] = np.nan
    return out


def train(
    *,
    init: Callable,
    loss: Callable,
    data: Any,
    optimizer: OptimizerSpec,
    seeds: Sequence[int] = (0,),
    grid: Mapping[str, Sequence[float]] | None = None,
    steps: int | Sequence[int] = 1000,
    observe: Observer | None = None,
    lr_multipliers: Any = None,
    batch_size: int | None = None,
    sampling: str = "without_replacement",
    blowup: float | None = 1e6,
    layout: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train every member of ``grid x seeds`` and record observables on a schedule.

    Args:
      init: ``init(key)`` or ``init(key, hp) -> params``. A function receives the member's
        hyperparameters exactly when it has a parameter named ``hp`` (:func:`call_with_hp`).
      loss: ``loss(params, batch)`` or ``loss(params, batch, hp)``; the trainer also records it
        on the full data at each observation point under the name ``"loss"``.
      data: a pytree of arrays shared by every member (leading axis = examples for minibatches).
      optimizer: name and default hyperparameters.
      seeds: integer seeds; member keys are ``jax.random.key(seed)``.
      grid: hyperparameter axes, e.g. ``{"learning_rate": [0.1, 0.2]}``. Names of optimiser
        hyperparameters override the optimiser's; every value is passed to ``init``/``loss``/
        ``observe`` in the member's ``hp`` dict.
      steps: total steps (observed on a log schedule of 100 points) or explicit observation
        steps (strictly increasing; training runs to the last).
      observe: ``observe(params, params0)`` or ``observe(params, params0, hp) -> {name: array}``.
      batch_size: ``None`` (full batch) or examples per step.
      sampling: ``"without_replacement"`` or ``"with_replacement"`` (see :class:`MemberProgram`).
      layout: ``"vmap" | "map" | "auto"``.
      progress: called as ``progress(done_steps, total_steps)`` after every chunk.
    """
    grid = dict(grid or {})
    if layout not in ("vmap", "map", "auto"):
        raise ValueError(f"layout: must be 'vmap', 'map' or 'auto', got {layout!r}")
    if not seeds:
        raise ValueError("seeds: need at least one seed")
    for k, v in grid.items():
        if np.ndim(v) != 1 or len(v) == 0:
            raise ValueError(f"grid: axis {k!r} must be a non-empty 1-D sequence")
    schedule = log_schedule(steps) if np.isscalar(steps) else validate_schedule(steps)
    program = MemberProgram(init, loss, optimizer, lr_multipliers, batch_size, blowup, sampling)

    hp_np, seed_index = ensemble_members(grid, seeds)
    hp = {k: jnp.asarray(v) for k, v in hp_np.items()}
    keys = jax.vmap(jax.random.key)(jnp.asarray(np.asarray(seeds)[seed_index]))

    data = jax.device_put(data)  # an argument of the compiled programs, never a baked-in constant

    def observe_member(state: MemberState, params0, hp_m, data):
        out = {"loss": program.loss_value(state.params, data, hp_m)}
        if observe is not None:
            out.update(call_with_hp(observe, state.params, params0, hp=hp_m))
        return out

    def member_chunk(state, params0, hp_m, n, data):
        state = program.advance(state, hp_m, data, n)
        return state, observe_member(state, params0, hp_m, data)

    # Members start one after another inside one program: a vmapped threefry draw compiles
    # several times slower than a single one, and initialisation is cheap to run.
    start = jax.jit(lambda k, h, d: jax.lax.map(lambda a: program.start(a[0], a[1], d), (k, h)))
    states = start(keys, hp, data)
    params0 = states.params
    if layout == "auto":
        size = _parameters_per_member(jax.tree.map(lambda a: a[0], params0))
        layout = "map" if size >= _AUTO_MAP_PARAMETERS else "vmap"
    if layout == "vmap":
        chunk = jax.jit(jax.vmap(member_chunk, in_axes=(0, 0, 0, None, None)))
    else:
        chunk = jax.jit(
            lambda s, p0, h, n, d: jax.lax.map(lambda a: member_chunk(a[0], a[1], a[2], n, d), (s, p0, h))
        )

    records, done = [], 0
    for target in schedule:
        states, obs = chunk(states, params0, hp, jnp.int32(target - done), data)
        records.append(jax.device_get(obs))
        done = int(target)
        if progress is not None:
            progress(done, int(schedule[-1]))

    diverged = np.asarray(states.diverged)
    diverged_step = np.asarray(states.diverged_step)
    grid_shape = tuple(len(v) for v in grid.values()) + (len(seeds),)
    observations = {}
    for name in records[0]:
        stacked = np.stack([np.asarray(r[name]) for r in records], axis=1)  # (M, T, ...)
        stacked = _masked(stacked, schedule, diverged_step)
        observations[name] = stacked.reshape(grid_shape + stacked.shape[1:])
    return TrainResult(
        steps=schedule,
        seeds=tuple(int(s) for s in seeds),
        grid={k: np.asarray(v) for k, v in grid.items()},
        observations=observations,
        diverged=diverged.reshape(grid_shape),
        diverged_step=diverged_step.reshape(grid_shape),
        params=jax.tree.map(lambda a: np.asarray(a).reshape(grid_shape + a.shape[1:]), states.params),
    )
