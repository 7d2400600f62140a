"""The empirical neural tangent kernel of a PyTorch model, with the conventions of :func:`learnmech.observe.empirical_ntk`.

Contract: ``model(x) -> (n, O)``, examples independent (row ``i`` depends on ``x[i]`` only). With
per-parameter learning-rate multipliers ``m_p`` (default 1),

    Theta(x, x')_{o o'} = sum_p m_p (d f_o(x) / d p) (d f_o'(x') / d p)

over every trainable scalar parameter (Jacot, Gabriel & Hongler 2018, arXiv:1806.07572): the
kernel that gradient descent with rates ``eta m_p`` follows in function space. ``outputs="mean"``
gives ``(1/O) sum_o Theta_oo`` ``(n1, n2)``; ``"full"`` gives ``(n1, n2, O, O)``.

Computed from per-example Jacobians, one parameter tensor at a time (``torch.func.vmap`` of
``torch.func.jacrev`` over examples), each tensor's block contracted by one matmul; the
parameter vector is never raveled. Examples are taken in blocks so that at most
``JACOBIAN_BUDGET_BYTES`` of Jacobians are held at once.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from learnmech.torch._functional import parameters

__all__ = ["JACOBIAN_BUDGET_BYTES", "empirical_ntk"]

JACOBIAN_BUDGET_BYTES = 2**30
OUTPUT_MODES = ("mean", "full")


def _jacobians(model: nn.Module, params: dict, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``d f_o(x_i) / d p`` per tensor, each ``(n, O, size)``."""

    def single(p, xi):
        return torch.func.functional_call(model, p, (xi.unsqueeze(0),))[0]  # (O,)

    jac = torch.func.vmap(torch.func.jacrev(single), in_dims=(None, 0))(params, x)
    return {k: j.reshape(j.shape[0], j.shape[1], -1) for k, j in jac.items()}


def _contract(jac1: dict, jac2: dict, mults: dict, outputs: str) -> torch.Tensor:
    """``sum_p m_p J1 J2^T``: ``(n1, n2)`` summed over outputs, or ``(n1 O, n2 O)``."""
    total = 0.0
    for name, a in jac1.items():
        b = jac2[name]
        if outputs == "mean":  # (n1, O size) @ (O size, n2) sums Theta_oo over o
            term = a.reshape(a.shape[0], -1) @ b.reshape(b.shape[0], -1).T
        else:  # (n1 O, size) @ (size, n2 O)
            term = a.reshape(-1, a.shape[2]) @ b.reshape(-1, b.shape[2]).T
        total = total + mults.get(name, 1.0) * term
    return total


def _multipliers(lr_multipliers, params: dict) -> dict[str, float]:
    if lr_multipliers is None:
        return {}
    if hasattr(lr_multipliers, "lr_multipliers"):  # a TorchMuP
        lr_multipliers = lr_multipliers.lr_multipliers()
    if not isinstance(lr_multipliers, Mapping):
        raise ValueError("lr_multipliers: must be None, a TorchMuP or {parameter name: float}")
    unknown = sorted(set(lr_multipliers) - set(params))
    if unknown:
        raise ValueError(f"lr_multipliers: no trainable parameter named {unknown}; names are {list(params)}")
    return {k: float(v) for k, v in lr_multipliers.items()}


def _output_dim(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        out = model(x[:1])
    if out.dim() != 2 or out.shape[0] != 1:
        raise ValueError(f"model: must return outputs of shape (n, O), got {tuple(out.shape)} for n = 1")
    return int(out.shape[1])


def _block(n_params: int, n_out: int, itemsize: int) -> int:
    """Examples per block: two blocks of Jacobians fit in ``JACOBIAN_BUDGET_BYTES``."""
    return max(1, JACOBIAN_BUDGET_BYTES // (2 * max(1, n_params * n_out * itemsize)))


def _symmetrize(kernel: torch.Tensor) -> torch.Tensor:
    """Exactly symmetric: the upper triangle mirrored (a selection, not an average)."""
    upper = torch.triu(torch.ones_like(kernel, dtype=torch.bool))
    return torch.where(upper, kernel, kernel.T)


def empirical_ntk(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None, *, outputs: str = "mean",
                  lr_multipliers=None, block_size: int | None = None) -> torch.Tensor:
    """The empirical NTK ``Theta(x1, x2)`` of ``model`` (module docstring for the definition).

    Args:
      model: ``model(x) -> (n, O)``; its parameters are not modified.
      x1: inputs ``(n1, ...)``. x2: inputs ``(n2, ...)``, or ``None`` for ``x1`` against itself
        (Jacobians computed once, the result exactly symmetric).
      outputs: ``"mean"`` -> ``(n1, n2)``; ``"full"`` -> ``(n1, n2, O, O)``.
      lr_multipliers: the ``m_p``: ``None`` (all 1), a :class:`learnmech.torch.TorchMuP` (its
        learning-rate multipliers: the kernel muP's per-group rates follow) or ``{name: float}``.
      block_size: examples per Jacobian block (default: two blocks fill ``JACOBIAN_BUDGET_BYTES``).

    Returns:
      a tensor in the parameters' dtype.
    """
    if outputs not in OUTPUT_MODES:
        raise ValueError(f"outputs: must be one of {list(OUTPUT_MODES)}, got {outputs!r}")
    if x1.dim() < 1:
        raise ValueError(f"x1: must have a leading example axis, got shape {tuple(x1.shape)}")
    if x2 is not None and x2.shape[1:] != x1.shape[1:]:
        raise ValueError(f"x2: must have the per-example shape of x1 {tuple(x1.shape[1:])}, got {tuple(x2.shape[1:])}")
    if block_size is not None and int(block_size) < 1:
        raise ValueError(f"block_size: must be >= 1, got {block_size}")
    params = parameters(model)
    mults = _multipliers(lr_multipliers, params)
    n_out = _output_dim(model, x1)
    n_params = sum(p.numel() for p in params.values())
    itemsize = max(p.element_size() for p in params.values())
    block = int(block_size) if block_size else _block(n_params, n_out, itemsize)
    symmetric = x2 is None
    x2 = x1 if symmetric else x2
    rows = []
    for i in range(0, x1.shape[0], block):
        jac_a = _jacobians(model, params, x1[i:i + block])
        cols = []
        for j in range(0, x2.shape[0], block):
            same = symmetric and j == i
            cols.append(_contract(jac_a, jac_a if same else _jacobians(model, params, x2[j:j + block]), mults, outputs))
        rows.append(torch.cat(cols, dim=1))
    kernel = torch.cat(rows, dim=0)
    n1, n2 = x1.shape[0], x2.shape[0]
    if outputs == "mean":
        kernel = kernel / n_out
        return _symmetrize(kernel) if symmetric else kernel
    if symmetric:
        kernel = _symmetrize(kernel)  # rows (i, o), columns (j, o'): symmetric as a matrix
    return kernel.reshape(n1, n_out, n2, n_out).permute(0, 2, 1, 3)
