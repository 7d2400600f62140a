"""One ensemble member: its state and the jit-able step that advances it.

Contract. A member is one (seed, hyperparameter point) pair. Its state is a small immutable
pytree; ``MemberProgram.step`` is a pure function of ``(state, hp, data)`` and is the single piece
of numerics that both the vectorised trainer and a plain per-seed loop run, so the two agree
member for member. The program is the update rule as data: the model (``init``, ``loss``), the
optimiser (:mod:`learnmech.train.optimizers`), learning-rate multipliers, how a step draws its
batch (:mod:`learnmech.train.sampling`) and gradient accumulation.

Divergence: after each step the member checks that the loss it just evaluated is finite and at
most ``blowup`` times its initial loss, and that the updated parameters are finite. The first
failure marks it diverged at that step and freezes parameters and optimiser state there; a
frozen member keeps computing (it shares the vectorised program) but never changes again, and
it cannot affect any other member.

Own step counts: with ``member_steps`` (the name of a hyperparameter holding each member's number of
steps) a member whose ``state.step`` reached it takes no further step: its parameters, optimiser
state, key and step count stay as they are, and it is not marked diverged. The step is behind a
``lax.cond`` on the member's flag: one after another (``lax.map``) a finished member skips the work;
vmapped, the cond is a select and the member computes and discards its step. The loss of a step not
taken is NaN.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from learnmech.train.optimizers import UpdateRule, build_optimizer, preconditioner
from learnmech.train.sampling import SAMPLINGS, STREAMS, draw_batch

__all__ = ["SAMPLINGS", "MemberState", "MemberProgram", "call_with_hp"]


class MemberState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array  # int32 scalar: steps taken (micro-steps under gradient accumulation)
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
      init: ``init(key)`` or ``init(key, hp) -> params`` (unused when the trainer is given ``params0``).
      loss: ``loss(params, batch)`` or ``loss(params, batch, hp) -> scalar``.
      optimizer: the update rule (:data:`~learnmech.train.optimizers.UpdateRule`); ``hp`` entries
        with matching names override an :class:`OptimizerSpec`'s defaults.
      lr_multipliers: pytree prefix of ``params`` (per-parameter learning-rate multipliers).
      batch_size: ``None`` for full batch, else examples per step, drawn along the leading axis
        of every leaf of the data as ``sampling`` says (:func:`~learnmech.train.sampling.draw_batch`).
      blowup: a loss above ``blowup * loss0`` counts as divergence (``None``: only non-finite); ``loss0`` is the
        loss at initialisation on the whole data, or on the first batch with ``sampling="epochs"`` (not computed,
        and recorded as 0, when ``blowup`` is None).
      sampling: ``"without_replacement" | "with_replacement" | "stream"``.
      accumulate: gradient accumulation (``optax.MultiSteps``): ``None``, a number of steps, or the
        name of the hyperparameter holding it per member. ``k`` micro-batch gradients are averaged,
        then applied: one update at batch ``k batch_size``. A "step" of the trainer is a micro-step.
      member_steps: ``None``, or the name of the hyperparameter holding each member's own number of
        (micro-)steps; the member stops there (see the module docstring).
    """

    init: Callable | None
    loss: Callable
    optimizer: UpdateRule
    lr_multipliers: Any = None
    batch_size: int | None = None
    blowup: float | None = 1e6
    sampling: str = "without_replacement"
    accumulate: int | str | None = None
    member_steps: str | None = None

    def __post_init__(self):
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling: must be one of {list(SAMPLINGS)}, got {self.sampling!r}")
        if self.sampling in STREAMS and self.batch_size is None:
            raise ValueError(f"batch_size: sampling {self.sampling!r} reads batch_size examples at a time; give it")
        if not (self.member_steps is None or isinstance(self.member_steps, str)):
            raise ValueError(f"member_steps: must be None or a hyperparameter name, got {self.member_steps!r}")
        if isinstance(self.accumulate, bool) or not (self.accumulate is None or isinstance(self.accumulate, str)
                                                     or (isinstance(self.accumulate, int) and self.accumulate >= 1)):
            raise ValueError(f"accumulate: must be None, an int >= 1 or a hyperparameter name, got {self.accumulate!r}")

    def tx(self, hp) -> optax.GradientTransformation:
        inner = build_optimizer(self.optimizer, hp, self.lr_multipliers)
        if self.accumulate is None:
            return inner
        every = hp[self.accumulate] if isinstance(self.accumulate, str) else self.accumulate

        def multi(tree):  # the accumulator in the parameters' dtype (optax's default is float32)
            dtype = jnp.result_type(*jax.tree.leaves(tree))
            return optax.MultiSteps(inner, every_k_schedule=lambda _: every, accumulator_dtype=dtype)

        def update(updates, state, params=None):
            return multi(updates).update(updates, state, params)

        return optax.GradientTransformation(lambda params: multi(params).init(params), update)

    def loss_value(self, params, batch, hp):
        return call_with_hp(self.loss, params, batch, hp=hp)

    def preconditioner(self, state: MemberState, hp):
        """Diagonal ``P`` of the member's update (:func:`learnmech.train.optimizers.preconditioner`)."""
        return preconditioner(self.optimizer, state.opt_state, state.params, hp, self.lr_multipliers)

    def start(self, seed_key: jax.Array, hp, data, params=None) -> MemberState:
        """Initial state of a member from its seed's key (init key and batch key split from it).

        ``params``: start from these parameters instead of ``init`` (the batch key is the same).
        """
        k_init, k_batch = jax.random.split(seed_key)
        params = call_with_hp(self.init, k_init, hp=hp) if params is None else params
        # A pool read in epochs (a text corpus) can be far larger than one pass of the model holds in memory:
        # its reference loss for the blow-up test is that of the member's first batch, not of the whole pool.
        first = draw_batch(self.sampling, self.batch_size, k_batch, jnp.zeros((), jnp.int32), data) \
            if self.sampling == "epochs" else data
        if self.blowup is None:  # no reference loss needed: skip its forward pass (and its compilation)
            shape = jax.eval_shape(lambda: self.loss_value(params, first, hp))
            loss0 = jnp.zeros(shape.shape, shape.dtype)
        else:
            loss0 = self.loss_value(params, first, hp)
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
        return draw_batch(self.sampling, self.batch_size, state.key, state.step, data)

    def step(self, state: MemberState, hp, data) -> tuple[MemberState, jax.Array]:
        """One step (:meth:`update`), or none once the member took its own ``member_steps`` (loss NaN)."""
        if self.member_steps is None:
            return self.update(state, hp, data)
        active = state.step < jnp.asarray(hp[self.member_steps]).astype(state.step.dtype)

        def stay(state):
            return state, jnp.full((), jnp.nan, jnp.result_type(state.loss0))

        return jax.lax.cond(active, lambda s: self.update(s, hp, data), stay, state)

    def update(self, state: MemberState, hp, data) -> tuple[MemberState, jax.Array]:
        """One optimiser step with divergence detection and freezing; also returns the step's loss."""
        loss, grads = jax.value_and_grad(self.loss_value)(state.params, self.batch(state, data), hp)
        updates, opt_state = self.tx(hp).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & _all_finite(params)
        if self.blowup is not None:
            ok = ok & (loss <= self.blowup * jnp.maximum(state.loss0, jnp.finfo(loss.dtype).tiny))
        newly = ~ok & ~state.diverged
        diverged = state.diverged | ~ok
        state = MemberState(
            params=_select(diverged, state.params, params),
            opt_state=_select(diverged, state.opt_state, opt_state),
            step=state.step + 1,
            key=state.key,
            loss0=state.loss0,
            diverged=diverged,
            diverged_step=jnp.where(newly, state.step, state.diverged_step),
        )
        return state, loss

    def advance(self, state: MemberState, hp, data, n_steps, trace: int | None = None):
        """``n_steps`` steps (``n_steps`` may be traced: one compiled loop serves every chunk).

        ``trace = L`` (static, ``>= n_steps``) also returns the loss of each step, ``(L,)`` (entries past
        ``n_steps`` are zero): ``(state, losses)``. ``trace = None`` returns the state alone.
        """
        if trace is None:
            return jax.lax.fori_loop(0, n_steps, lambda _, s: self.step(s, hp, data)[0], state)

        def body(i, carry):
            state, losses = carry
            state, loss = self.step(state, hp, data)
            return state, losses.at[i].set(loss)

        losses = jnp.zeros(trace, jnp.result_type(state.loss0))
        return jax.lax.fori_loop(0, n_steps, body, (state, losses))
