"""Comparisons of kernels: the drift of a tangent kernel during training, and kernel-target alignment."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["kernel_alignment", "ntk_drift"]


def ntk_drift(theta_t: jax.Array, theta_0: jax.Array) -> jax.Array:
    """Relative kernel movement ``||Theta_t - Theta_0||_F / ||Theta_0||_F`` (a scalar).

    Near zero in the lazy / NTK regime (Jacot et al. 2018, arXiv:1806.07572; Chizat, Oyallon &
    Bach 2019, arXiv:1812.07956), order one when features are learned.
    """
    if jnp.shape(theta_t) != jnp.shape(theta_0):
        raise ValueError(f"theta_t: must have the shape of theta_0 {jnp.shape(theta_0)}, got {jnp.shape(theta_t)}")
    return _drift(theta_t, theta_0)


@jax.jit
def _drift(theta_t, theta_0):
    return jnp.linalg.norm(jnp.ravel(theta_t - theta_0)) / jnp.linalg.norm(jnp.ravel(theta_0))


def kernel_alignment(kernel: jax.Array, y: jax.Array, centered: bool = False) -> jax.Array:
    """Kernel-target alignment ``<K, Y Y^T>_F / (||K||_F ||Y Y^T||_F)`` (a scalar in [-1, 1]).

    Cristianini, Shawe-Taylor, Elisseeff & Kandola 2002 (NeurIPS 14). ``centered=True`` gives the
    centred alignment of Cortes, Mohri & Rostamizadeh 2012 (JMLR 13, arXiv:1203.0550): ``K`` is
    replaced by ``H K H`` and ``Y`` by ``H Y`` with ``H = I - 1 1^T / n``.

    Args:
      kernel: ``K``, ``(n, n)``.
      y: targets ``(n,)`` or ``(n, k)``; ``Y Y^T`` sums over the ``k`` columns.
    """
    shape, y_shape = jnp.shape(kernel), jnp.shape(y)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"kernel: must be a square (n, n) matrix, got shape {shape}")
    if len(y_shape) not in (1, 2) or y_shape[0] != shape[0]:
        raise ValueError(f"y: must have shape (n,) or (n, k) with n = {shape[0]}, got {y_shape}")
    return _alignment(kernel, y, bool(centered))


@functools.partial(jax.jit, static_argnames=("centered",))
def _alignment(k, y, centered):
    y = y[:, None] if y.ndim == 1 else y  # (n, k)
    if centered:
        k = k - k.mean(0, keepdims=True) - k.mean(1, keepdims=True) + k.mean()  # H K H
        y = y - y.mean(0, keepdims=True)  # H Y
    inner = jnp.sum(y * (k @ y))  # <K, Y Y^T>_F = tr(Y^T K Y)
    return inner / (jnp.linalg.norm(k) * jnp.linalg.norm(y.T @ y))  # ||Y Y^T||_F = ||Y^T Y||_F
