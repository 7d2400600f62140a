"""One ensemble member: its state and the jit-able step that advances it.

Contract. A member is one (seed, hyperparameter point) pair. Its state is a small immutable
pytree; ``member_step`` is a pure function of ``(state, hp, data)`` and is the single piece of
numerics that both the vectorised trainer and a plain per-seed loop run, so the two agree
member for member.

Divergence: after each step the member checks that the loss it just evaluated is finite and at
most ``blowup`` times its initial loss, and that the updated parameters are finite. The first
failure marks it diverged at that step and freezes parameters and optimiser state there; a
frozen member keeps computing (it shares the vectorised program) but never changes again, and
it cannot affect any other member.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from learnmech.train.optimizers import OptimizerSpec, build_optimizer

__all__ = ["SAMPLINGS", "MemberState", "MemberProgram", "call_with_hp"]

SAMPLINGS = ("without_replacement", "with_replacement")


class MemberState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array  # int32 scalar: steps taken
    key: jax.Array  # PRNG key for minibatches
    loss0: jax.Array  # loss at initialisation (for the blow-up test)
    diverged: jax.Array  # bool scalar
    diverged_step: jax.Array  # int32 scalar, -1 while finite


def call_with_hp(fn: Callable, *args, hp):
    """Call ``fn(*args, hp=hp)`` when ``fn`` has a parameter named ``hp``, else ``fn(*args)``.

    The hyperparameter channel is the name ``hp``, never a count of arguments: a loss
    ``def loss(params, batch, scale=1.0)`` keeps its default, and a wrapper ``def f(*args,
    **kwargs)`` receives exactly the arguments it wraps. A positional-only ``hp`` gets it in place.
    A callable whose signature cannot be read is called with ``args`` alone.
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(*args)
    channel = params.get("hp")
    if channel is None or channel.kind in (channel.VAR_POSITIONAL, channel.VAR_KEYWORD):
        return fn(*args)
    if channel.kind == channel.POSITIONAL_ONLY:
        return fn(*args, hp)
    return fn(*args, hp=hp)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _select(flag, if_true, if_false):
    return jax.tree.map(lambda a, b: jnp.where(flag, a, b), if_true, if_false)


@dataclass(frozen=True)
class MemberProgram:
    """Everything a member needs to start and to take a step.

    Attributes:
      init: ``init(key)`` or ``init(key, hp) -> params``.
      loss: ``loss(params, batch)`` or ``loss(params, batch, hp) -> scalar``.
      optimizer: name and default hyperparameters; ``hp`` entries with matching names override.
      lr_multipliers: pytree prefix of ``params`` (per-parameter learning-rate multipliers).
      batch_size: ``None`` for full batch, else examples per step, drawn along the leading axis
        of every leaf of the data.
      sampling: how a step draws its ``batch_size`` examples: ``"without_replacement"`` (a
        random subset; the draw sorts all ``n`` examples, ``O(n log n)`` per step) or
        ``"with_replacement"`` (i.i.d. indices, ``O(batch_size)`` per step: the choice for small
        batches from a large set, where the sort would dominate the step).
      blowup: a loss above ``blowup * loss0`` counts as divergence (``None``: only non-finite).
    """

    init: Callable
    loss: Callable
    optimizer: OptimizerSpec
    lr_multipliers: Any = None
    batch_size: int | None = None
    blowup: float | None = 1e6
    sampling: str = "without_replacement"

    def __post_init__(self):
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling: must be one of {list(SAMPLINGS)}, got {self.sampling!r}")

    def tx(self, hp) -> optax.GradientTransformation:
        return build_optimizer(self.optimizer, hp, self.lr_multipliers)

    def loss_value(self, params, batch, hp):
        return call_with_hp(self.loss, params, batch, hp=hp)

    def start(self, seed_key: jax.Array, hp, data) -> MemberState:
        """Initial state of a member from its seed's key (init key and batch key split from it)."""
        k_init, k_batch = jax.random.split(seed_key)
        params = call_with_hp(self.init, k_init, hp=hp)
        loss0 = self.loss_value(params, data, hp)
        return MemberState(
            params=params,
            opt_state=self.tx(hp).init(params),
            step=jnp.zeros((), jnp.int32),
            key=k_batch,
            loss0=loss0,
            diverged=~jnp.isfinite(loss0),
            diverged_step=jnp.where(jnp.isfinite(loss0), -1, 0).astype(jnp.int32),
        )

    def batch(self, state: MemberState, data):
        if self.batch_size is None:
            return data
        n = jax.tree.leaves(data)[0].shape[0]
        key = jax.random.fold_in(state.key, state.step)
        if self.sampling == "with_replacement":
            idx = jax.random.randint(key, (self.batch_size,), 0, n)
        else:
            idx = jax.random.choice(key, n, (self.batch_size,), replace=False)
        return jax.tree.map(lambda a: jnp.asarray(a)[idx], data)  # numpy leaves cannot take a traced index

    def step(self, state: MemberState, hp, data) -> MemberState:
        """One optimiser step with per-member divergence detection and freezing."""
        loss, grads = jax.value_and_grad(self.loss_value)(state.params, self.batch(state, data), hp)
        updates, opt_state = self.tx(hp).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & _all_finite(params)
        if self.blowup is not None:
            ok = ok & (loss <= self.blowup * jnp.maximum(state.loss0, jnp.finfo(loss.dtype).tiny))
        newly = ~ok & ~state.diverged
        diverged = state.diverged | ~ok
        return MemberState(
            params=_select(diverged, state.params, params),
            opt_state=_select(diverged, state.opt_state, opt_state),
            step=state.step + 1,
            key=state.key,
            loss0=state.loss0,
            diverged=diverged,
            diverged_step=jnp.where(newly, state.step, state.diverged_step),
        )

    def advance(self, state: MemberState, hp, data, n_steps) -> MemberState:
        """``n_steps`` steps (``n_steps`` may be traced: one compiled loop serves every chunk)."""
        return jax.lax.fori_loop(0, n_steps, lambda _, s: self.step(s, hp, data), state)
