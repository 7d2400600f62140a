"""A shared stream of examples read in micro-batches, and an ensemble driver that observes along it.

:class:`StreamProgram` is a :class:`~learnmech.train.member.MemberProgram` whose step reads a
fixed, seed-keyed stream of training examples ``B0`` at a time and applies an update every ``k``
micro-batches (``optax.MultiSteps``): one SGD (or Adam) step at batch ``k B0``. Members with
different ``k`` but the same seed read the same examples in the same order, so batch sizes are
compared on common random numbers, and all of them share one compiled program. This is the
experimental device of the linear-scaling rule (Goyal et al. 2017, arXiv:1706.02677; Malladi,
Lyu, Panigrahi & Arora 2022, arXiv:2205.10287 for Adam): ``(eta, B) -> (k eta, k B)`` compared at
equal examples seen.

:func:`advance_ensemble` advances a vectorised ensemble of members of any
:class:`~learnmech.train.member.MemberProgram` to a list of step counts and records observables
there, marking a member's observations after its divergence NaN (the convention of
:func:`learnmech.train.train`).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from learnmech.train.member import MemberProgram
from learnmech.train.optimizers import build_optimizer

__all__ = ["StreamProgram", "advance_ensemble"]


@dataclass(frozen=True)
class StreamProgram(MemberProgram):
    """A member reading a shared stream of examples in micro-batches, stepping every ``k`` of them.

    ``batch_size`` is the micro-batch ``B0``; micro-step ``s`` reads stream positions
    ``s B0 .. s B0 + B0 - 1``, position ``p`` being training example ``randint(fold_in(key, p), n)``
    (``key`` the member's batch key, the same for every ``k`` of a seed). The optimiser is wrapped
    in ``optax.MultiSteps`` with ``every_k = hp["k"]``: ``k`` micro-gradients are averaged and then
    applied, which is one SGD (or Adam) step at batch ``k B0`` on stream positions
    ``[t k B0, (t + 1) k B0)``.
    """

    accumulator_dtype: str = "float32"  # of the averaged micro-gradients: the parameters' dtype

    def tx(self, hp) -> optax.GradientTransformation:
        inner = build_optimizer(self.optimizer, hp, self.lr_multipliers)
        return optax.MultiSteps(inner, every_k_schedule=lambda _: hp["k"],
                                accumulator_dtype=jnp.dtype(self.accumulator_dtype))

    def batch(self, state, data):
        n = jax.tree.leaves(data)[0].shape[0]
        positions = state.step * self.batch_size + jnp.arange(self.batch_size)  # (B0,)
        index = jax.vmap(lambda p: jax.random.randint(jax.random.fold_in(state.key, p), (), 0, n))(positions)
        return jax.tree.map(lambda a: jnp.asarray(a)[index], data)


def advance_ensemble(program: MemberProgram, hp: dict, seeds: np.ndarray, train_set, test, micro_steps, observe,
                     probe=None) -> dict[str, np.ndarray]:
    """Advance every member (``hp`` and ``seeds``: one entry per member) and observe at ``micro_steps``.

    ``observe(params, test)`` runs on every member; ``probe = (members, fn, data)`` runs
    ``fn(params, data)`` on the listed members only (an expensive observable of a few runs).
    Returns ``(members, T)`` arrays (``(len(members), T)`` for the probe's); a member's
    observations after it diverged are NaN (the convention of :func:`learnmech.train.train`, whose
    member step this reuses).
    """
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    start = jax.jit(lambda k, h, d: jax.lax.map(lambda a: program.start(a[0], a[1], d), (k, h)))
    states = start(keys, hp, train_set)

    def member(state, h, n, d, t):
        state = program.advance(state, h, d, n)
        return state, observe(state.params, t)

    chunk = jax.jit(jax.vmap(member, in_axes=(0, 0, None, None, None)))
    probed, probe_fn, probe_data = probe if probe is not None else (np.zeros(0, np.int64), None, None)
    if probe_fn is not None:
        probe_fn = jax.jit(jax.vmap(probe_fn, in_axes=(0, None)))
    records, probes, done = [], [], 0
    for target in micro_steps:
        states, obs = chunk(states, hp, jnp.int32(target - done), train_set, test)
        records.append(jax.device_get(obs))
        if probe_fn is not None:
            probes.append(jax.device_get(probe_fn(jax.tree.map(lambda a: a[probed], states.params), probe_data)))
        done = int(target)
    diverged_step = np.asarray(states.diverged_step)  # (members,), -1 while finite
    after = (diverged_step[:, None] >= 0) & (np.asarray(micro_steps)[None, :] > diverged_step[:, None])  # (M, T)
    out = {}
    for rows, mask in ((records, after), (probes, after[probed])):
        for name in (rows[0] if rows else ()):
            values = np.stack([np.asarray(r[name], np.float64) for r in rows], axis=1)  # (members, T)
            values[mask] = np.nan
            out[name] = values
    return out
