"""A torch model's parameters as a dict of tensors, and a loss as a pure function of them (``torch.func``).

Contract shared by the probes. ``loss_fn(model, batch) -> scalar tensor`` is the user's own loss:
it calls ``model`` however the model is called and averages over the examples of ``batch``.
``batch`` is a tensor or a tuple / list / dict of tensors sharing a leading example axis. The
loss is made a function of a parameter dict by wrapping the model in a module whose ``forward``
calls ``loss_fn``, so that ``torch.func.functional_call`` swaps the parameters for every call
the loss makes. Buffers stay the model's own.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

__all__ = ["LossFn", "batch_size", "flatten", "loss_of", "parameters", "tree_map", "unflatten"]

LossFn = Callable[[nn.Module, Any], torch.Tensor]


class _LossModule(nn.Module):
    """``forward(batch) = loss_fn(model, batch)``; its parameters are ``model.*``'s."""

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


def parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters, detached: ``{name: tensor}`` in ``named_parameters`` order."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def loss_of(model: nn.Module, loss_fn: LossFn) -> Callable[[dict, Any], torch.Tensor]:
    """``f(params, batch) = loss_fn(model with params, batch)``, differentiable by ``torch.func``."""
    wrapper = _LossModule(model, loss_fn)

    def f(params: dict, batch) -> torch.Tensor:
        return torch.func.functional_call(wrapper, {f"model.{k}": v for k, v in params.items()}, (batch,))

    return f


def flatten(tree: dict[str, torch.Tensor]) -> torch.Tensor:
    """All leaves raveled into one vector ``(P,)``."""
    return torch.cat([t.reshape(-1) for t in tree.values()])


def unflatten(flat: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`flatten` for the shapes of ``like``."""
    out, start = {}, 0
    for name, t in like.items():
        out[name] = flat[start:start + t.numel()].view(t.shape)
        start += t.numel()
    return out


def tree_map(fn: Callable[[torch.Tensor], Any], tree):
    """``fn`` on every tensor of a tensor / tuple / list / dict nest."""
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_map(fn, v) for v in tree)
    raise ValueError(f"batch: leaves must be tensors (in tuples, lists or dicts), got {type(tree).__name__}")


def batch_size(batch, field: str = "batch") -> int:
    """The common leading (example) axis of every tensor in ``batch``; ``ValueError`` if there is none."""
    sizes: set = set()
    tree_map(lambda t: sizes.add(int(t.shape[0]) if t.dim() > 0 else None), batch)
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"{field}: every tensor needs the same leading example axis, got sizes "
                         f"{sorted(sizes, key=str)}")
    return sizes.pop()
