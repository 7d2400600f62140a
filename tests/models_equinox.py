"""The shared test MLP as an equinox Module: d_in -> width -> width -> d_out, ReLU, biases.

``equinox.nn.Linear``'s own initialisation (uniform in ``±1/sqrt(fan_in)``: a fan-in init) and
its ``(out, in)`` weights. The plain-pytree twin is learnmech's MLP layout, a list of
``{"w": (in, out), "b": (out,)}``; :func:`load_pytree` and :func:`to_pytree` copy between them so
tests can compare the same numbers across frameworks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

eqx = pytest.importorskip("equinox")  # collected for doctests too: skip cleanly without equinox

D_IN, D_OUT = 6, 3

__all__ = ["D_IN", "D_OUT", "MLP", "load_pytree", "make", "to_pytree"]


class MLP(eqx.Module):
    layers: tuple

    def __init__(self, width: int, *, key, d_in: int = D_IN, d_out: int = D_OUT):
        k1, k2, k3 = jax.random.split(key, 3)
        self.layers = (eqx.nn.Linear(d_in, width, key=k1), eqx.nn.Linear(width, width, key=k2),
                       eqx.nn.Linear(width, d_out, key=k3))

    def activations(self, x):
        """``[h1, h2, out]`` for a batch ``x`` of shape ``(n, d_in)``: the post-ReLU hiddens and the output."""
        outs, h = [], x
        for i, layer in enumerate(self.layers):
            h = h @ layer.weight.T + layer.bias  # (n, fan_out)
            h = jax.nn.relu(h) if i < len(self.layers) - 1 else h
            outs.append(h)
        return outs

    def __call__(self, x):
        return self.activations(x)[-1]


def make(width: int, key_or_seed=0, *, d_in: int = D_IN, d_out: int = D_OUT) -> MLP:
    """The MLP at ``width``, drawn from ``key_or_seed`` (an int seed or a key)."""
    key = jax.random.key(key_or_seed) if isinstance(key_or_seed, int) else key_or_seed
    return MLP(width, key=key, d_in=d_in, d_out=d_out)


def load_pytree(model: MLP, params) -> MLP:
    """A copy of ``model`` holding the plain twin's ``[{"w": (in, out), "b": (out,)}] * 3``."""
    weights = lambda m: [leaf for layer in m.layers for leaf in (layer.weight, layer.bias)]  # noqa: E731
    values = [v for layer in params for v in (jnp.asarray(layer["w"]).T, jnp.asarray(layer["b"]))]
    return eqx.tree_at(weights, model, values)


def to_pytree(model: MLP) -> list[dict]:
    """The plain twin's parameters: ``[{"w": (in, out), "b": (out,)}] * 3``."""
    return [{"w": layer.weight.T, "b": layer.bias} for layer in model.layers]
