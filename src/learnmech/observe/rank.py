"""Numerical rank of a matrix."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["numerical_rank", "singular_values"]


def singular_values(M: jax.Array) -> jax.Array:
    """Singular values in decreasing order."""
    return jnp.linalg.svd(M, compute_uv=False)


def numerical_rank(M: jax.Array, tol: float | None = None, *, rtol: float | None = None) -> jax.Array:
    """Number of singular values above a threshold.

    ``tol`` is an absolute threshold; ``rtol`` a fraction of the largest singular value; with
    neither, the LAPACK convention ``max(shape) * eps * sigma_max`` (as ``numpy.linalg.matrix_rank``).
    """
    sv = singular_values(M)
    if tol is None:
        frac = rtol if rtol is not None else max(M.shape) * jnp.finfo(M.dtype).eps
        tol = frac * sv[0]
    return jnp.sum(sv > tol)
