"""Models from other libraries as pytrees of trainable arrays with readable paths.

Contract. :func:`split` turns any supported model object into ``(params, rebuild)``: ``params``
is a pytree whose leaves are exactly the model's trainable arrays, named by paths a person can
read (``jax.tree_util.keystr``), and ``rebuild(params)`` returns a model of the same kind with
those arrays in place. Supported objects, by the library that made them:

- plain pytrees and haiku dicts (:mod:`learnmech.adapters.pytree`): the tree itself;
- equinox Modules (:mod:`learnmech.adapters.equinox`): the array leaves
  (``eqx.filter(model, eqx.is_array)``), named by attribute paths such as ``.layers[0].weight``;
- flax nnx Modules and ``nnx.State`` (:mod:`learnmech.adapters.flax_nnx`): the ``nnx.Param``
  values without their Variable wrappers, named like ``['layers'][0]['kernel']``.

PyTorch modules live in :mod:`learnmech.torch`. The libraries are optional: a model's library is
recognised only when that library is already imported (a model of it cannot exist otherwise), so
importing this package imports neither equinox nor flax.

:func:`weight_layouts` says, per leaf, which axis of a weight is its fan-out: ``"in_out"`` (fan-out
last: flax kernels, haiku, learnmech, and embedding tables ``(vocabulary, features)`` everywhere)
or ``"out_in"`` (fan-out first: ``equinox.nn.Linear`` and ``Conv`` weights, as in PyTorch).
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from learnmech.adapters import pytree as _pytree

__all__ = ["framework", "leaf_paths", "split", "weight_layouts"]


def framework(model: Any) -> str:
    """``"equinox"``, ``"flax_nnx"`` or ``"pytree"``: which adapter handles ``model``."""
    if sys.modules.get("equinox") is not None:
        from learnmech.adapters import equinox as _eqx

        if _eqx.handles(model):
            return "equinox"
    if sys.modules.get("flax.nnx") is not None:
        from learnmech.adapters import flax_nnx as _nnx

        if _nnx.handles(model):
            return "flax_nnx"
    if sys.modules.get("torch") is not None and _is_torch_module(model):
        raise ValueError("model: a torch.nn.Module; use learnmech.torch for PyTorch models")
    return "pytree"


def _is_torch_module(model: Any) -> bool:
    import torch

    return isinstance(model, torch.nn.Module)


def _adapter(model: Any):
    name = framework(model)
    if name == "equinox":
        from learnmech.adapters import equinox as module
    elif name == "flax_nnx":
        from learnmech.adapters import flax_nnx as module
    else:
        module = _pytree
    return module


def split(model: Any) -> tuple[Any, Callable[[Any], Any]]:
    """``(params, rebuild)``: the trainable array leaves of ``model`` and the inverse map.

    ``rebuild`` never mutates ``model``: for an nnx Module it returns a new Module.
    """
    return _adapter(model).split(model)


def leaf_paths(params: Any) -> list[str]:
    """The path of every leaf of ``params`` (as returned by :func:`split`), in flattening order.

    A trailing ``.value`` (the inside of an nnx Variable) is dropped, so an ``nnx.State`` and
    its pure values give the same names.
    """
    return _pytree.leaf_paths(params)


def weight_layouts(model: Any) -> list[str]:
    """Per leaf of ``split(model)[0]``, in the same order: ``"in_out"`` or ``"out_in"``."""
    return _adapter(model).weight_layouts(model)
