"""Losses as observables of any model given its ``apply`` function."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["mse_loss", "mse"]


def mse(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """``L = (1/2n) sum_i ||f(x_i) - y_i||^2`` for outputs and targets of shape ``(n, d_out)``.

    This is the regression loss normalisation of CLAIMS.md (a half, summed over output
    dimensions, averaged over examples).
    """
    return 0.5 * jnp.sum((outputs - targets) ** 2) / outputs.shape[0]


def mse_loss(apply: Callable[[object, jax.Array], jax.Array]) -> Callable:
    """``loss(params, (x, y))`` = :func:`mse` of ``apply(params, x)`` against ``y``."""

    def loss(params, batch):
        x, y = batch
        return mse(apply(params, x), y)

    return loss
