"""The shared test MLP as a flax nnx Module: d_in -> width -> width -> d_out, ReLU, biases.

``nnx.Linear``'s own initialisation (LeCun normal kernels: a fan-in init; zero biases) and its
``(in, out)`` kernels. The plain-pytree twin is learnmech's MLP layout, a list of
``{"w": (in, out), "b": (out,)}``; :func:`load_pytree` and :func:`to_pytree` copy between them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

nnx = pytest.importorskip("flax.nnx")  # collected for doctests too: skip cleanly without flax

D_IN, D_OUT = 6, 3

__all__ = ["D_IN", "D_OUT", "MLP", "load_pytree", "make", "to_pytree"]


class MLP(nnx.Module):
    def __init__(self, width: int, *, rngs: nnx.Rngs, d_in: int = D_IN, d_out: int = D_OUT):
        self.layers = nnx.List([nnx.Linear(d_in, width, rngs=rngs), nnx.Linear(width, width, rngs=rngs),
                                nnx.Linear(width, d_out, rngs=rngs)])

    def activations(self, x):
        """``[h1, h2, out]`` for a batch ``x`` of shape ``(n, d_in)``: the post-ReLU hiddens and the output."""
        outs, h = [], x
        for i, layer in enumerate(self.layers):
            h = layer(h)  # (n, fan_out)
            h = jax.nn.relu(h) if i < len(self.layers) - 1 else h
            outs.append(h)
        return outs

    def __call__(self, x):
        return self.activations(x)[-1]


def make(width: int, seed: int = 0, *, d_in: int = D_IN, d_out: int = D_OUT) -> MLP:
    """The MLP at ``width``, drawn from ``nnx.Rngs(seed)``."""
    return MLP(width, rngs=nnx.Rngs(seed), d_in=d_in, d_out=d_out)


def load_pytree(model: MLP, params) -> MLP:
    """Write the plain twin's ``[{"w": (in, out), "b": (out,)}] * 3`` into ``model`` (in place) and return it."""
    nnx.update(model, nnx.State({"layers": {i: {"kernel": jnp.asarray(p["w"]), "bias": jnp.asarray(p["b"])}
                                            for i, p in enumerate(params)}}))
    return model


def to_pytree(model: MLP) -> list[dict]:
    """The plain twin's parameters: ``[{"w": (in, out), "b": (out,)}] * 3``."""
    return [{"w": layer.kernel[...], "b": layer.bias[...]} for layer in model.layers]
