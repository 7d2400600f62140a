"""Plain pytrees (dicts, lists, haiku parameter dicts): the tree is its own parameters."""

from __future__ import annotations

from typing import Any, Callable

import jax

__all__ = ["handles", "leaf_paths", "split", "weight_layouts"]

_VARIABLE_SUFFIX = ".value"  # how keystr prints the inside of a flax nnx Variable


def handles(model: Any) -> bool:
    """Every object is a pytree (an array is a tree of one leaf)."""
    return True


def split(model: Any) -> tuple[Any, Callable[[Any], Any]]:
    """``(model, identity)``."""
    return model, lambda params: params


def leaf_paths(params: Any) -> list[str]:
    """``jax.tree_util.keystr`` of every leaf (``None`` leaves are empty subtrees, as in jax)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    names = [jax.tree_util.keystr(path) for path, _ in flat]
    return [n[: -len(_VARIABLE_SUFFIX)] if n.endswith(_VARIABLE_SUFFIX) else n for n in names]


def weight_layouts(model: Any) -> list[str]:
    """Fan-out last for every leaf (flax, haiku and learnmech's convention)."""
    return ["in_out"] * len(jax.tree.leaves(model))
