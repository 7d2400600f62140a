"""equinox Modules: the array leaves, named by attribute paths; widths stay in the static part.

Two widths of one equinox model differ in their static fields (``in_features``, ``width_size``),
so their whole treedefs never match; the array leaves, named by ``.layers[0].weight``-style
paths, do. ``equinox.nn.Linear`` and ``Conv`` store weights ``(out, in, ...)`` (fan-out first);
``equinox.nn.Embedding`` stores ``(num_embeddings, embedding_size)`` (fan-out last).
"""

from __future__ import annotations

from typing import Any, Callable

import jax

__all__ = ["handles", "split", "weight_layouts"]


def handles(model: Any) -> bool:
    """True for an ``equinox.Module``."""
    import equinox as eqx

    return isinstance(model, eqx.Module)


def _is_array(leaf: Any) -> bool:
    """An array, or its shape struct (``eqx.filter_eval_shape`` builds a model of those)."""
    import equinox as eqx

    return eqx.is_array(leaf) or isinstance(leaf, jax.ShapeDtypeStruct)


def split(model: Any) -> tuple[Any, Callable[[Any], Any]]:
    """``(eqx.filter(model, eqx.is_array), rebuild)``; ``rebuild`` combines with the static part.

    Shape structs count as arrays, so ``eqx.filter_eval_shape(Model, ...)`` describes a model
    without drawing it.
    """
    import equinox as eqx

    params, static = eqx.partition(model, _is_array)
    return params, lambda new: eqx.combine(new, static)


def _parent(root: Any, path: tuple) -> Any:
    """The object holding the leaf at ``path`` (its key path without the last key), or ``None``."""
    node = root
    for key in path[:-1]:
        if isinstance(key, jax.tree_util.GetAttrKey):
            node = getattr(node, key.name, None)
        elif isinstance(key, jax.tree_util.SequenceKey):
            node = node[key.idx] if isinstance(node, (list, tuple)) else None
        elif isinstance(key, jax.tree_util.DictKey):
            node = node.get(key.key) if isinstance(node, dict) else None
        else:
            return None
        if node is None:
            return None
    return node


def weight_layouts(model: Any) -> list[str]:
    """``"in_out"`` for the weight of an ``eqx.nn.Embedding``, ``"out_in"`` for every other leaf."""
    import equinox as eqx

    params, _ = split(model)
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return ["in_out" if isinstance(_parent(model, path), eqx.nn.Embedding) else "out_in" for path, _ in flat]
