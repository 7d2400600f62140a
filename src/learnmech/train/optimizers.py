"""Update rules as data: a named optimiser with numeric hyperparameters, or any optax transformation.

Contract. An update rule is one of

- :class:`OptimizerSpec`: a name of :data:`OPTIMIZERS` plus default hyperparameters. Every numeric
  hyperparameter may be a traced scalar, so the trainer can ``vmap`` over it (a learning-rate axis,
  a momentum axis, ...); ``learning_rate`` may also be an optax schedule (a function of the step);
- an ``optax.GradientTransformation``, used as it is by every member;
- a function ``hp -> optax.GradientTransformation`` of the member's hyperparameters (any optax
  chain, e.g. ``lambda hp: optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(hp["lr"]))``);
- :class:`OneOf`: one of several update rules per member, chosen by an integer hyperparameter, so
  that members with different optimisers (GD, heavy ball, Adam) share one compiled ensemble.

Per-parameter learning-rate multipliers (muP) scale the final update of each leaf, which multiplies
the effective learning rate of that leaf; for ``adamw`` this also multiplies the decoupled weight
decay, as optax scales it by the learning rate too.

:func:`preconditioner` gives the diagonal ``P`` of a member's update ``w <- w - eta P^{-1} m`` from its
optimiser state (ones for SGD and heavy ball; Adam's ``P`` of
:func:`learnmech.theory.stability.adam_preconditioner`; divided by the multipliers), the quantity that
preconditioned-sharpness probes need (Cohen et al. 2022, arXiv:2207.14484).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

import jax
import jax.numpy as jnp
import optax

from learnmech.nets.mup import scale_by_multipliers
from learnmech.theory.stability import adam_preconditioner

__all__ = ["OPTIMIZERS", "OneOf", "OptimizerSpec", "UpdateRule", "build_optimizer", "preconditioner",
           "scale_by_multipliers"]


def _sgd(learning_rate, weight_decay=None):
    sgd = optax.sgd(learning_rate)
    return sgd if weight_decay is None else optax.chain(optax.add_decayed_weights(weight_decay), sgd)


def _momentum(learning_rate, momentum=0.9, weight_decay=None):
    sgd = optax.sgd(learning_rate, momentum=momentum)  # heavy ball: v = g + beta v
    return sgd if weight_decay is None else optax.chain(optax.add_decayed_weights(weight_decay), sgd)


def _adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8):
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


def _adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4):
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)


# name -> (factory, hyperparameter names). Defaults follow optax; weight_decay of sgd / momentum is
# L2 (added to the gradient, so heavy ball accumulates it), of adamw decoupled (Loshchilov & Hutter 2019).
OPTIMIZERS: dict[str, tuple[Callable[..., optax.GradientTransformation], tuple[str, ...]]] = {
    "sgd": (_sgd, ("learning_rate", "weight_decay")),
    "momentum": (_momentum, ("learning_rate", "momentum", "weight_decay")),
    "adam": (_adam, ("learning_rate", "b1", "b2", "eps")),
    "adamw": (_adamw, ("learning_rate", "b1", "b2", "eps", "weight_decay")),
}
_ADAM_DEFAULTS = {"b1": 0.9, "b2": 0.999, "eps": 1e-8}  # optax's


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimiser by name with default hyperparameters (any may be swept by the trainer)."""

    name: str = "sgd"
    hyperparameters: Mapping[str, Any] = field(default_factory=lambda: {"learning_rate": 1e-2})

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer: must be one of {sorted(OPTIMIZERS)}, got {self.name!r}")
        unknown = set(self.hyperparameters) - set(self.names)
        if unknown:
            raise ValueError(
                f"optimizer: {self.name} has no hyperparameter {sorted(unknown)}; allowed {list(self.names)}"
            )

    @property
    def names(self) -> tuple[str, ...]:
        return OPTIMIZERS[self.name][1]

    def resolved(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The defaults with the entries of ``overrides`` that name a hyperparameter of this optimiser."""
        hp = dict(self.hyperparameters)
        hp.update({k: v for k, v in (overrides or {}).items() if k in self.names})
        return hp


@dataclass(frozen=True)
class OneOf:
    """Member ``m`` follows ``rules[hp[by][m]]``: an axis of update rules in one ensemble.

    Every member carries the states of all rules (the unchosen ones stay at their initial values) and,
    in a vmapped ensemble, computes every rule's update and keeps its own (``lax.switch`` on a batched
    index is a select); one after another (``lax.map``) it computes only its own. Each rule sees all of
    the member's hyperparameters (an :class:`OptimizerSpec` picks the ones it names).
    """

    rules: tuple
    by: str = "rule"

    def __post_init__(self):
        if len(self.rules) < 1 or any(isinstance(r, OneOf) for r in self.rules):
            raise ValueError("optimizer: OneOf needs one or more update rules (not themselves OneOf)")

    def index(self, hp: Mapping[str, Any]):
        if self.by not in hp:
            raise ValueError(f"optimizer: OneOf chooses by the hyperparameter {self.by!r}; put it in the grid")
        return jnp.clip(jnp.asarray(hp[self.by], jnp.int32), 0, len(self.rules) - 1)

    def transform(self, hp: Mapping[str, Any]) -> optax.GradientTransformation:
        txs = [build_optimizer(rule, hp) for rule in self.rules]

        def init(params):
            return tuple(tx.init(params) for tx in txs)

        def update(updates, state, params=None):
            def branch(i):
                def run(u, s, p):
                    out, new = txs[i].update(u, s[i], p)
                    return out, s[:i] + (new,) + s[i + 1:]
                return run

            return jax.lax.switch(self.index(hp), [branch(i) for i in range(len(txs))], updates, state, params)

        return optax.GradientTransformation(init, update)


UpdateRule = Union[OptimizerSpec, OneOf, optax.GradientTransformation,
                   Callable[[Mapping[str, Any]], optax.GradientTransformation]]


def build_optimizer(spec: UpdateRule, overrides: Mapping[str, Any] | None = None,
                    multipliers: Any = None) -> optax.GradientTransformation:
    """The optax transformation of an update rule for a member with hyperparameters ``overrides``.

    ``overrides`` may hold traced scalars; for an :class:`OptimizerSpec`, keys that are not its
    hyperparameters are ignored (they belong to the model or data); a function receives all of them.
    """
    if isinstance(spec, OptimizerSpec):
        hp = spec.resolved(overrides)
        if "learning_rate" not in hp:
            raise ValueError("optimizer: learning_rate must be given")
        tx = OPTIMIZERS[spec.name][0](**hp)
    elif isinstance(spec, OneOf):
        tx = spec.transform(overrides or {})
    elif isinstance(spec, optax.GradientTransformation):
        tx = spec
    elif callable(spec):
        tx = spec(dict(overrides or {}))
    else:
        raise ValueError(f"optimizer: must be an OptimizerSpec, an optax transformation or a function of hp, "
                         f"got {type(spec).__name__}")
    return tx if multipliers is None else optax.chain(tx, scale_by_multipliers(multipliers))


def _adam_states(opt_state) -> list:
    is_adam = lambda x: isinstance(x, optax.ScaleByAdamState)  # noqa: E731
    return [s for s in jax.tree_util.tree_leaves(opt_state, is_leaf=is_adam) if is_adam(s)]


def preconditioner(spec: UpdateRule, opt_state, params, overrides: Mapping[str, Any] | None = None,
                   multipliers: Any = None):
    """Diagonal ``P`` (a pytree like ``params``) of the member's update ``w <- w - eta P^{-1} m``.

    SGD and heavy ball: ``P = 1``. Adam / AdamW (:class:`OptimizerSpec`): ``P_t`` of
    :func:`~learnmech.theory.stability.adam_preconditioner` from the optimiser's ``nu`` and step count
    (found inside any wrapper, e.g. ``optax.MultiSteps``), NaN before the first update, where it is
    undefined. Learning-rate multipliers ``mu`` divide it (the update is ``-eta mu P_adam^{-1} m``). A
    custom optax transformation holding Adam's state raises: its ``b1, b2, eps`` are not known here.
    :class:`OneOf`: the chosen rule's ``P``.
    """
    if isinstance(spec, OneOf):
        branches = [lambda s, p, i=i: preconditioner(spec.rules[i], s[i], p, overrides) for i in range(len(spec.rules))]
        return _divided(jax.lax.switch(spec.index(overrides or {}), branches, opt_state, params), multipliers)
    adam = _adam_states(opt_state)
    if not adam:
        P = jax.tree.map(jnp.ones_like, params)
    elif not isinstance(spec, OptimizerSpec) or len(adam) > 1:
        raise ValueError("preconditioner: give Adam as OptimizerSpec('adam' | 'adamw', ...) (one Adam state), "
                         "so that its b1, b2 and eps are known")
    else:
        hp = {**_ADAM_DEFAULTS, **spec.resolved(overrides)}
        state = adam[0]
        P = adam_preconditioner(state.nu, jnp.maximum(state.count, 1), b1=hp["b1"], b2=hp["b2"], eps=hp["eps"])
        P = jax.tree.map(lambda p: jnp.where(state.count == 0, jnp.nan, p), P)  # undefined before an update
    return _divided(P, multipliers)


def _divided(P, multipliers):
    """``P / mu`` leaf by leaf (``multipliers`` a prefix pytree of ``P``)."""
    if multipliers is None:
        return P
    return jax.tree.map(lambda m, sub: jax.tree.map(lambda p: p / m, sub), multipliers, P)
