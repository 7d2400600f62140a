"""The empirical neural tangent kernel of a PyTorch model, with the conventions of :func:`learnmech.observe.empirical_ntk`.

Contract: ``model(x) -> (n, ..., O)``, examples independent (slice ``i`` of the output depends on
``x[i]`` only: no batch statistics). With per-parameter learning-rate multipliers ``m_p``
(default 1),

    Theta(x, x')_{o o'} = sum_p m_p (d f_o(x) / d p) (d f_o'(x') / d p)

over every trainable scalar parameter (Jacot, Gabriel & Hongler 2018, arXiv:1806.07572): the
kernel that gradient descent with rates ``eta m_p`` follows in function space. ``outputs="mean"``
gives ``(1/O) sum_o Theta_oo`` ``(n1, n2)``; ``"full"`` gives ``(n1, n2, O, O)``.

Outputs with middle axes ``S`` (``(n, *S, O)``, e.g. a sequence model's ``(n, T, vocab)``), with
``G = prod(S)``, follow the JAX function's ``extra_axes`` rule exactly (same shapes, same order):

- ``"outputs"`` (default): ``S`` folded into the output axis, ``K = G O`` outputs in C order
  (output ``k = s O + o``, ``s`` the flat index of ``S``): ``(n1, n2)`` averaging ``Theta_kk`` over
  all ``K``, or ``(n1, n2, K, K)``;
- ``"examples"``: each position its own row, ``(n1 G, n2 G)`` (row ``i G + s``, averaged over
  ``o``) or ``(n1 G, n2 G, O, O)``;
- ``"mean"``: outputs averaged over ``S`` first, ``fbar_o = (1/G) sum_s f_{s o}``, then as an
  ``(n, O)`` model.

Engine. Per-example Jacobian rows (``torch.func.vmap`` of ``torch.func.jacrev`` over examples),
one parameter tensor at a time, each tensor's block contracted by one matmul; the parameter vector
is never raveled. Memory: at most ``jacobian_bytes`` (default ``JACOBIAN_BUDGET_BYTES``, 1 GiB) of
Jacobian rows (a row = one flat output of one example, ``P`` numbers) are held at once, walked by
the plan of :func:`learnmech.observe.ntk_strategies.jacobian_plan` (the JAX engine's): for an
average over outputs, chunks of outputs whose Grams add up (each row computed once while one
output of every example fits); otherwise blocks of examples x chunks of whole output units, every
row block meeting every column block (column rows recomputed). Activations of the forward pass
that ``jacrev`` keeps are on top of that budget. Only this exact "jacobian" strategy exists here
(the JAX side adds "ntvp" and "structured").
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from learnmech.observe.ntk_strategies import JacobianPlan, jacobian_plan
from learnmech.torch._functional import parameters

__all__ = ["EXTRA_AXES", "JACOBIAN_BUDGET_BYTES", "empirical_ntk"]

JACOBIAN_BUDGET_BYTES = 2**30  # Jacobian rows held at once (bytes), unless jacobian_bytes says otherwise
OUTPUT_MODES = ("mean", "full")
EXTRA_AXES = ("outputs", "examples", "mean")  # what the middle axes of (n, ..., O) outputs become


# ----------------------------------------------------------------------------------------- checks


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}: must be one of {list(choices)}, got {value!r}")


def _check_bytes(jacobian_bytes) -> int:
    if jacobian_bytes is None:
        return JACOBIAN_BUDGET_BYTES
    if isinstance(jacobian_bytes, bool) or not isinstance(jacobian_bytes, (int, float)) or not jacobian_bytes >= 1:
        raise ValueError(f"jacobian_bytes: must be a number of bytes >= 1 or None, got {jacobian_bytes!r}")
    return int(jacobian_bytes)


def _check_block(block_size) -> int | None:
    if block_size is None:
        return None
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size: must be an integer >= 1 or None, got {block_size!r}")
    return block_size


def _multipliers(lr_multipliers, params: dict) -> dict[str, torch.Tensor]:
    """``{name: m}``: a 0-d tensor, or a flat ``(size,)`` one for a tensor broadcast to its parameter."""
    if lr_multipliers is None:
        return {}
    if hasattr(lr_multipliers, "lr_multipliers"):  # a TorchMuP
        lr_multipliers = lr_multipliers.lr_multipliers()
    if not isinstance(lr_multipliers, Mapping):
        raise ValueError("lr_multipliers: must be None, a TorchMuP or {parameter name: float or tensor}")
    unknown = sorted(set(lr_multipliers) - set(params))
    if unknown:
        raise ValueError(f"lr_multipliers: no trainable parameter named {unknown}; names are {list(params)}")
    out = {}
    for name, value in lr_multipliers.items():
        p = params[name]
        m = torch.as_tensor(value, dtype=p.dtype, device=p.device)
        if m.dim():
            try:
                m = torch.broadcast_to(m, p.shape).reshape(-1)
            except RuntimeError:
                raise ValueError(f"lr_multipliers: {name!r} has shape {tuple(m.shape)}, which does not broadcast "
                                 f"to the parameter's {tuple(p.shape)}") from None
        out[name] = m
    return out


def _output_shape(model: nn.Module, x1: torch.Tensor) -> tuple[int, ...]:
    """``(n1, *S, O)``, checked on one and two examples (the examples axis must come first)."""
    shape: tuple[int, ...] = ()
    for n in sorted({1, min(2, x1.shape[0])} - {0}):
        with torch.no_grad():
            shape = tuple(model(x1[:n]).shape)
        if len(shape) < 2 or shape[0] != n or 0 in shape:
            raise ValueError(f"model: must return outputs of shape (n, O) or (n, ..., O), the n examples first and "
                             f"at least one output, got {shape} for n = {n}")
    return (x1.shape[0],) + shape[1:]


# ----------------------------------------------------------------------------------------- layout


def _layout(shape: tuple[int, ...], extra_axes: str, outputs: str) -> tuple[bool, int, int, int]:
    """``(average, units, width, rows)``: the unit-Gram view of ``(n, *S, O)`` outputs.

    The kernel is the Gram of ``units`` (``G'``) units of ``width`` (``Q``) flat outputs each,
    ``Theta[(i, g), (j, h)] = (1/Q) sum_q sum_p m_p J_{g Q + q}(x_i)_p J_{h Q + q}(x_j)_p``;
    ``average`` says whether ``S`` is averaged away first, ``rows`` is the kernel rows per example.
    """
    n_out, extra = shape[-1], math.prod(shape[1:-1])
    rows = extra if extra_axes == "examples" else 1
    width = n_out if extra_axes != "outputs" else extra * n_out
    if outputs == "full":  # every output its own unit
        return extra_axes == "mean", rows * width, 1, rows
    return extra_axes == "mean", rows, width, rows


def _flat_outputs(out: torch.Tensor, average: bool) -> torch.Tensor:
    """One example's outputs ``(*S, O)`` -> ``(K,)`` in C order, or ``(O,)`` averaged over ``S``."""
    if average:
        return out.reshape(-1, out.shape[-1]).mean(dim=0)
    return out.reshape(-1)


# ----------------------------------------------------------------------------------------- engine


def _rows(model: nn.Module, params: dict, x: torch.Tensor, lo: int, hi: int, average: bool,
          width: int) -> dict[str, torch.Tensor]:
    """Jacobian rows of flat outputs ``[lo, hi)`` of each example: per tensor ``(n u, Q', size)``,
    with ``Q' = width`` (chunks of whole units) or ``hi - lo`` (a chunk of one unit's outputs)."""

    def single(p, xi):
        out = torch.func.functional_call(model, p, (xi.unsqueeze(0),))[0]  # (*S, O)
        return _flat_outputs(out, average)[lo:hi]

    jac = torch.func.vmap(torch.func.jacrev(single), in_dims=(None, 0))(params, x)  # (n, C, *shape)
    return {k: j.reshape(-1, width, j[0, 0].numel()) for k, j in jac.items()}


def _contract(jac1: dict, jac2: dict, mults: dict) -> torch.Tensor:
    """``sum_p sum_q m_p J1_q J2_q^T``, ``(rows1, rows2)``: one 2-d matmul per parameter tensor."""
    total = 0.0
    for name, a in jac1.items():
        b, m = jac2[name], mults.get(name)
        if m is not None and m.dim():
            a = a * m  # elementwise multipliers over the tensor's entries
        term = a.reshape(a.shape[0], -1) @ b.reshape(b.shape[0], -1).T
        total = total + (term if m is None or m.dim() else m * term)
    return total


def _unit_gram(model, params, x1, x2, mults, plan: JacobianPlan, average: bool, symmetric: bool) -> torch.Tensor:
    """The unit Gram ``(n1 G', n2 G')`` walked by ``plan`` (module docstring: memory). With ``x2`` = ``x1``,
    blocks wholly below the diagonal are skipped (left zero) for :func:`_symmetrize` to mirror."""
    n1, n2, units, flat = x1.shape[0], x2.shape[0], plan.units, plan.units * plan.width
    chunks = [(lo, min(lo + plan.chunk, flat)) for lo in range(0, flat, plan.chunk)]
    step1 = plan.block or n1
    step2 = plan.block or n2
    like = next(iter(params.values()))
    gram = torch.zeros(n1, units, n2, units, dtype=like.dtype, device=like.device)
    for c1, (lo1, hi1) in enumerate(chunks):
        width1 = plan.width if units > 1 else hi1 - lo1
        g1 = slice(lo1 // plan.width, hi1 // plan.width) if units > 1 else slice(0, 1)
        for a in range(0, n1, step1):
            jac_a = _rows(model, params, x1[a:a + step1], lo1, hi1, average, width1)
            for c2, (lo2, hi2) in enumerate(chunks):
                if units == 1 and c2 != c1:  # one unit: only equal outputs pair up
                    continue
                width2 = plan.width if units > 1 else hi2 - lo2
                g2 = slice(lo2 // plan.width, hi2 // plan.width) if units > 1 else slice(0, 1)
                for b in range(0, n2, step2):
                    if symmetric and b + step2 <= a:  # strictly below the diagonal: mirrored afterwards
                        continue
                    same = symmetric and c2 == c1 and b == a
                    jac_b = jac_a if same else _rows(model, params, x2[b:b + step2], lo2, hi2, average, width2)
                    term = _contract(jac_a, jac_b, mults)
                    na, nb = min(step1, n1 - a), min(step2, n2 - b)
                    gram[a:a + na, g1, b:b + nb, g2] += term.reshape(na, -1, nb, term.shape[1] // nb)
    return gram.reshape(n1 * units, n2 * units) / plan.width


def _symmetrize(kernel: torch.Tensor) -> torch.Tensor:
    """Exactly symmetric: the upper triangle mirrored (a selection, not an average)."""
    upper = torch.triu(torch.ones_like(kernel, dtype=torch.bool))
    return torch.where(upper, kernel, kernel.T)


# ------------------------------------------------------------------------------------------ public


def empirical_ntk(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None, *, outputs: str = "mean",
                  extra_axes: str = "outputs", lr_multipliers=None, block_size: int | None = None,
                  jacobian_bytes: int | None = None) -> torch.Tensor:
    """The empirical NTK ``Theta(x1, x2)`` of ``model`` (module docstring for the definition and rules).

    The same kernel, shape and ordering as :func:`learnmech.observe.empirical_ntk` on the same
    weights (Jacot, Gabriel & Hongler 2018, arXiv:1806.07572).

    Args:
      model: ``model(x) -> (n, ..., O)``, examples independent; its parameters are not modified.
      x1: inputs ``(n1, ...)`` (token ids are fine). x2: inputs ``(n2, ...)``, or ``None`` for ``x1``
        against itself (rows reused, the result exactly symmetric).
      outputs: ``"mean"`` -> ``(n1, n2)``, the average of ``Theta_oo``; ``"full"`` -> ``(n1, n2, O, O)``.
      extra_axes: for outputs ``(n, *S, O)``, ``G = prod(S)`` (ignored for ``(n, O)``): ``"outputs"``
        folds ``S`` into the outputs (``O -> G O``, C order); ``"examples"`` makes each position a
        row, ``(n1 G, n2 G[, O, O])``; ``"mean"`` averages the outputs over ``S`` first.
      lr_multipliers: the ``m_p``: ``None`` (all 1), a :class:`learnmech.torch.TorchMuP` (its
        learning-rate multipliers: the kernel muP's per-group rates follow) or ``{name: m}`` with
        ``m`` a float or a tensor broadcastable to that parameter.
      block_size: examples per block of Jacobian rows (two blocks held at once, outputs chunked to
        fit the budget); default: the plan of ``jacobian_plan``.
      jacobian_bytes: the Jacobian rows held at once, in bytes (default ``JACOBIAN_BUDGET_BYTES``).

    Returns:
      a tensor in the parameters' dtype.
    """
    _check_choice("outputs", outputs, OUTPUT_MODES)
    _check_choice("extra_axes", extra_axes, EXTRA_AXES)
    if not isinstance(x1, torch.Tensor) or x1.dim() < 1:
        raise ValueError(f"x1: must be a tensor with a leading example axis, got {getattr(x1, 'shape', type(x1))}")
    if x2 is not None and (not isinstance(x2, torch.Tensor) or x2.shape[1:] != x1.shape[1:]):
        raise ValueError(f"x2: must be a tensor with the per-example shape of x1 {tuple(x1.shape[1:])}, got "
                         f"{tuple(getattr(x2, 'shape', ())) if isinstance(x2, torch.Tensor) else type(x2).__name__}")
    block = _check_block(block_size)
    budget = _check_bytes(jacobian_bytes)
    shape = _output_shape(model, x1)
    params = parameters(model)
    if not params:
        raise ValueError("model: has no trainable parameters")
    mults = _multipliers(lr_multipliers, params)
    average, units, width, rows = _layout(shape, extra_axes, outputs)
    n_params = sum(p.numel() for p in params.values())
    itemsize = max(p.element_size() for p in params.values())
    symmetric = x2 is None
    second = x1 if symmetric else x2
    n1, n2 = x1.shape[0], second.shape[0]
    plan = jacobian_plan(n1, n2, symmetric, units, width, n_params, itemsize, block, budget)
    gram = _unit_gram(model, params, x1, second, mults, plan, average, symmetric)
    gram = _symmetrize(gram) if symmetric else gram  # (n1 G', n2 G')
    if outputs == "mean":
        return gram  # (n1 rows, n2 rows)
    n_out = units // rows  # every output its own unit: (n1 rows O, n2 rows O) -> (n1 rows, n2 rows, O, O)
    return gram.reshape(n1 * rows, n_out, n2 * rows, n_out).permute(0, 2, 1, 3)
