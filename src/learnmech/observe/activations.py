"""Per-layer activation sizes on a probe batch, for any model that exposes its layers."""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

__all__ = ["activation_rms", "activation_change_rms"]

Layers = Callable[[object, jax.Array], Sequence[jax.Array]]


def activation_rms(layers: Layers, params, probe: jax.Array) -> jax.Array:
    """Root-mean-square entry of each layer's activations, ``(n_layers,)``.

    ``layers(params, x)`` returns the list of per-layer activations (our models' ``activations``
    method; any model that can return its intermediates works).
    """
    return jnp.stack([jnp.sqrt(jnp.mean(a**2)) for a in layers(params, probe)])


def activation_change_rms(layers: Layers, params, params0, probe: jax.Array) -> jax.Array:
    """RMS entry of ``h_t - h_0`` for each layer: the size of the update to the features."""
    now, before = layers(params, probe), layers(params0, probe)
    return jnp.stack([jnp.sqrt(jnp.mean((a - b) ** 2)) for a, b in zip(now, before)])
