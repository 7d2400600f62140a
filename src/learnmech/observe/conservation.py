"""Conserved quantities of gradient flow: the symmetries of a network's parameters and what they conserve.

Contract. Functions over explicit weight arrays (take them out of any pytree model), pure, ``jax.numpy``;
they work on gradients as well as on weights, which is how the per-step GD change is written
(:mod:`learnmech.theory.conservation`). Conventions, stated once:

- **linear chain** ``h_l = W_l h_{l-1}``: ``W_l`` is ``(out, in)`` (a project :class:`~learnmech.nets.MLP`
  stores ``w`` as ``(in, out)``: pass ``w.T``). The per-layer balancedness is
  ``B_l = W_l W_l^T - W_{l+1}^T W_{l+1}``, ``(n_l, n_l)`` for hidden layer ``l`` of width ``n_l``
  (Arora, Cohen & Hazan 2018, arXiv:1802.06509; Du, Hu & Lee 2018, arXiv:1806.00900);
- **positively homogeneous hidden neuron** (ReLU, leaky ReLU, linear) ``j``:
  ``c_j = ||w_in_j||^2 + b_j^2 - ||w_out_j||^2``, with ``w_in`` ``(width, in)`` (row ``j`` = the neuron's
  incoming weights, as ``W_l`` above), ``b`` ``(width,)`` its biases and ``w_out`` ``(out, width)``
  (column ``j`` = its outgoing weights) (Du, Hu & Lee 2018; Kunin et al. 2021, arXiv:2012.04728);
- **scale symmetry**: a weight ``w`` whose loss is invariant under ``w -> alpha w`` for ``alpha > 0``
  (the weight feeding a LayerNorm / BatchNorm-like normalisation) has the observable ``||w||^2``.

Why they are conserved (Kunin et al. 2021, sec. 3-4). A one-parameter symmetry ``L(psi_alpha(w)) = L(w)``
differentiated at ``alpha = 1`` gives a gradient identity (Euler's identity of the symmetry), linear in
the gradient ``g = dL/dw``:

- rescaling ``(w_in_j, b_j, w_out_j) -> (alpha w_in_j, alpha b_j, w_out_j / alpha)``:
  ``<w_in_j, g_in_j> + b_j g_b_j - <w_out_j, g_out_j> = 0`` (:func:`neuron_euler_residual`);
- the linear chain's ``W_l -> A W_l``, ``W_{l+1} -> W_{l+1} A^{-1}`` (any invertible ``A``):
  ``G_l W_l^T - W_{l+1}^T G_{l+1} = 0`` (:func:`chain_euler_residual`);
- scaling ``w -> alpha w``: ``<w, g> = 0`` (:func:`scale_euler_residual`).

Under gradient flow ``dw/dt = -g`` each quantity's time derivative is ``-2`` times its identity, hence zero.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

__all__ = ["chain_balance", "chain_euler_residual", "chain_grams", "neuron_balance", "neuron_euler_residual",
           "neuron_norms", "scale_euler_residual", "scale_norm"]


def _matrices(weights: Sequence) -> list:
    mats = [jnp.asarray(w) for w in weights]
    if len(mats) < 2 or any(m.ndim != 2 for m in mats):
        raise ValueError("weights: need at least two 2-D matrices W_l of shape (out, in)")
    for l, (a, b) in enumerate(zip(mats[:-1], mats[1:])):
        if a.shape[0] != b.shape[1]:
            raise ValueError(f"weights: W_{l + 1} must take W_{l}'s {a.shape[0]} outputs as inputs, got shape "
                             f"{b.shape} (the convention is (out, in))")
    return mats


def chain_grams(weights: Sequence) -> list[tuple]:
    """``[(W_l W_l^T, W_{l+1}^T W_{l+1}) for every adjacent pair]``, each ``(n_l, n_l)``; ``W_l`` is ``(out, in)``.

    The two Gram matrices of hidden layer ``l`` whose difference is :func:`chain_balance` (their sizes set the
    scale of that difference before it cancels).
    """
    mats = _matrices(weights)
    return [(a @ a.T, b.T @ b) for a, b in zip(mats[:-1], mats[1:])]  # (n_l, n_l) each


def chain_balance(weights: Sequence) -> list:
    """``B_l = W_l W_l^T - W_{l+1}^T W_{l+1}`` for every adjacent pair (module docstring; ``W_l`` is ``(out, in)``).

    Conserved under gradient flow on any loss of the product ``W_L ... W_1`` (Arora, Cohen & Hazan 2018,
    arXiv:1802.06509, Theorem 1). Applied to the gradients ``G_l`` it gives the exact per-step GD change
    (:func:`learnmech.theory.conservation.chain_step_change`).

    >>> import numpy as np
    >>> [float(b[0, 0]) for b in chain_balance([np.array([[2.0]]), np.array([[3.0]])])]
    [-5.0]
    """
    return [a - b for a, b in chain_grams(weights)]


def chain_euler_residual(weights: Sequence, grads: Sequence) -> list:
    """``G_l W_l^T - W_{l+1}^T G_{l+1}`` per adjacent pair: zero for the gradient of a loss of ``W_L ... W_1``.

    The identity behind :func:`chain_balance`: ``dB_l/dt = -(G_l W_l^T + W_l G_l^T) + G_{l+1}^T W_{l+1} +
    W_{l+1}^T G_{l+1}`` vanishes when it does. ``grads`` are shaped as ``weights``.
    """
    mats, gs = _matrices(weights), _matrices(grads)
    if [m.shape for m in mats] != [g.shape for g in gs]:
        raise ValueError("grads: must have the shapes of weights")
    return [g @ w.T - w_next.T @ g_next for w, g, w_next, g_next in zip(mats[:-1], gs[:-1], mats[1:], gs[1:])]


def _neuron_arrays(w_in, w_out, b):
    w_in, w_out = jnp.asarray(w_in), jnp.asarray(w_out)
    if w_in.ndim != 2 or w_out.ndim != 2 or w_in.shape[0] != w_out.shape[1]:
        raise ValueError(f"w_in, w_out: need w_in (width, in) and w_out (out, width) of one width, got "
                         f"{w_in.shape} and {w_out.shape}")
    b = jnp.zeros(w_in.shape[0], w_in.dtype) if b is None else jnp.asarray(b)
    if b.shape != (w_in.shape[0],):
        raise ValueError(f"b: must be (width,) = ({w_in.shape[0]},), got {b.shape}")
    return w_in, w_out, b


def neuron_norms(w_in, w_out, b=None) -> tuple:
    """``(||w_in_j||^2 + b_j^2, ||w_out_j||^2)`` per hidden neuron, each ``(width,)``.

    ``w_in`` ``(width, in)`` (rows), ``b`` ``(width,)`` or ``None`` (no bias), ``w_out`` ``(out, width)``
    (columns). The two terms of :func:`neuron_balance`.
    """
    w_in, w_out, b = _neuron_arrays(w_in, w_out, b)
    return jnp.sum(w_in**2, axis=1) + b**2, jnp.sum(w_out**2, axis=0)  # (width,), (width,)


def neuron_balance(w_in, w_out, b=None):
    """``c_j = ||w_in_j||^2 + b_j^2 - ||w_out_j||^2`` per hidden neuron of a positively homogeneous layer, ``(width,)``.

    Conserved under gradient flow (Du, Hu & Lee 2018, arXiv:1806.00900, Theorem 2.1; Kunin et al. 2021,
    arXiv:2012.04728, rescale symmetry). Shapes as :func:`neuron_norms`. Applied to the gradients it gives the
    exact per-step GD change (:func:`learnmech.theory.conservation.neuron_step_change`).

    >>> import numpy as np
    >>> float(neuron_balance(np.array([[3.0, 4.0]]), np.array([[2.0]]), np.array([1.0]))[0])
    22.0
    """
    incoming, outgoing = neuron_norms(w_in, w_out, b)
    return incoming - outgoing


def neuron_euler_residual(w_in, w_out, g_in, g_out, b=None, g_b=None):
    """``<w_in_j, g_in_j> + b_j g_b_j - <w_out_j, g_out_j>`` per neuron, ``(width,)``: zero for a homogeneous layer.

    Euler's identity of the rescaling symmetry (module docstring); gradients shaped as their weights.
    """
    w_in, w_out, b = _neuron_arrays(w_in, w_out, b)
    g_in, g_out, g_b = _neuron_arrays(g_in, g_out, g_b)
    return jnp.sum(w_in * g_in, axis=1) + b * g_b - jnp.sum(w_out * g_out, axis=0)


def scale_norm(w):
    """``||w||^2`` of a scale-invariant weight (all entries), conserved by gradient flow.

    For ``L(alpha w) = L(w)`` (a weight feeding a normalisation), ``<w, g> = 0`` (:func:`scale_euler_residual`),
    so ``d||w||^2/dt = -2 <w, g> = 0``; GD adds exactly ``eta^2 ||g||^2`` per step
    (:func:`learnmech.theory.conservation.scale_step_change`; Kunin et al. 2021, arXiv:2012.04728, sec. 5).
    """
    return jnp.sum(jnp.asarray(w) ** 2)


def scale_euler_residual(w, g):
    """``<w, g>``: zero for the gradient ``g`` of a loss invariant under ``w -> alpha w``."""
    w, g = jnp.asarray(w), jnp.asarray(g)
    if w.shape != g.shape:
        raise ValueError(f"g: must have the shape of w {w.shape}, got {g.shape}")
    return jnp.sum(w * g)
