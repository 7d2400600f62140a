"""Mode strengths of a linear (or linearised-at-zero) model, from its ``apply`` function."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["input_output_map", "mode_strengths"]


def input_output_map(apply: Callable, params, d_in: int, dtype=None) -> jax.Array:
    """The Jacobian ``df/dx`` at ``x = 0``, ``(d_out, d_in)``: the end-to-end matrix of a linear model.

    Works for any model whose ``apply(params, x)`` maps ``(n, d_in)`` to ``(n, d_out)``; for a
    deep linear network it equals ``W_L ... W_1`` exactly.
    """
    leaf = jax.tree.leaves(params)[0]
    x0 = jnp.zeros((1, d_in), dtype or leaf.dtype)
    jac = jax.jacfwd(lambda x: apply(params, x))(x0)  # (1, d_out, 1, d_in)
    return jac[0, :, 0, :]


def mode_strengths(W: jax.Array, U: jax.Array, V: jax.Array) -> jax.Array:
    """``diag(U^T W V)``: the strength of each teacher mode in the map ``W`` (Saxe et al. 2014).

    Args:
      W: ``(d_out, d_in)``; U: ``(d_out, r)``; V: ``(d_in, r)``. Returns ``(r,)``.
    """
    return jnp.einsum("oa,oi,ia->a", U, W, V)
