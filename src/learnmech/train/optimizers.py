"""Optimisers as data: a name plus numeric hyperparameters, built into optax transformations.

Every numeric hyperparameter may be a traced scalar, so the trainer can ``vmap`` over it (a
learning-rate axis, a momentum axis, ...). Per-parameter learning-rate multipliers (muP) are
applied to the final update, which multiplies the effective learning rate of that leaf; for
``adamw`` this also multiplies the decoupled weight decay, as optax scales it by the learning
rate too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import optax

from learnmech.nets.mup import scale_by_multipliers

__all__ = ["OPTIMIZERS", "OptimizerSpec", "build_optimizer", "scale_by_multipliers"]


def _sgd(learning_rate):
    return optax.sgd(learning_rate)


def _momentum(learning_rate, momentum=0.9):
    return optax.sgd(learning_rate, momentum=momentum)  # heavy ball: v = g + beta v


def _adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8):
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


def _adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4):
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)


# name -> (factory, hyperparameter names). Defaults follow optax.
OPTIMIZERS: dict[str, tuple[Callable[..., optax.GradientTransformation], tuple[str, ...]]] = {
    "sgd": (_sgd, ("learning_rate",)),
    "momentum": (_momentum, ("learning_rate", "momentum")),
    "adam": (_adam, ("learning_rate", "b1", "b2", "eps")),
    "adamw": (_adamw, ("learning_rate", "b1", "b2", "eps", "weight_decay")),
}


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimiser by name with default hyperparameters (any may be swept by the trainer)."""

    name: str = "sgd"
    hyperparameters: Mapping[str, float] = field(default_factory=lambda: {"learning_rate": 1e-2})

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


def build_optimizer(
    spec: OptimizerSpec, overrides: Mapping[str, Any] | None = None, multipliers: Any = None
) -> optax.GradientTransformation:
    """The optax transformation for ``spec`` with some hyperparameters replaced by ``overrides``.

    ``overrides`` may hold traced scalars; keys that are not hyperparameters of this optimiser
    are ignored (they belong to the model or data).
    """
    factory, names = OPTIMIZERS[spec.name]
    hp = dict(spec.hyperparameters)
    hp.update({k: v for k, v in (overrides or {}).items() if k in names})
    if "learning_rate" not in hp:
        raise ValueError("optimizer: learning_rate must be given")
    tx = factory(**hp)
    if multipliers is None:
        return tx
    return optax.chain(tx, scale_by_multipliers(multipliers))
