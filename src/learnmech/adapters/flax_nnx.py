"""flax nnx Modules and States: the ``nnx.Param`` values without their Variable wrappers.

``nnx.Optimizer`` hands optax the pure values (``nnx.as_pure`` of the ``wrt`` state), whose
paths read ``['layers'][0]['kernel']``; this adapter names leaves the same way. Kernels are
``(in, out)`` and ``nnx.Embed`` tables ``(num_embeddings, features)``: fan-out last throughout.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

__all__ = ["handles", "split", "weight_layouts"]


def handles(model: Any) -> bool:
    """True for an ``nnx.Module`` or an ``nnx.State``."""
    from flax import nnx

    return isinstance(model, (nnx.Module, nnx.State))


def split(model: Any) -> tuple[Any, Callable[[Any], Any]]:
    """``(pure Param values, rebuild)``.

    A Module: its ``nnx.Param`` state; ``rebuild`` merges the values into a new Module (the
    argument is left as it was). A State: all of its values; ``rebuild`` returns a new State of
    the same Variables.
    """
    from flax import nnx

    if isinstance(model, nnx.State):
        treedef = jax.tree.structure(model)
        return nnx.as_pure(model), lambda new: jax.tree.unflatten(treedef, jax.tree.leaves(new))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return nnx.as_pure(params), lambda new: nnx.merge(graphdef, new, rest)


def weight_layouts(model: Any) -> list[str]:
    """``"in_out"`` for every leaf (flax's convention)."""
    params, _ = split(model)
    return ["in_out"] * len(jax.tree.leaves(params))
