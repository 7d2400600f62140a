"""The MLP students of the learning-rate transfer experiments, as functions of their width.

A :class:`Student` is one parameterisation's family of ReLU MLPs ``(d_in, n, ..., n, 1)`` without
biases, muP's base width ``n_0`` the narrowest width, in the form
:func:`learnmech.transfer` takes a model: ``init(key, width)``, ``apply(params, x, width)`` and
``lr_multipliers(width)``. :data:`MUP_VS_SP` names the two compared: muP for Adam
(``"mup-adam"``) and the standard parameterisation (``"sp"``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.nets.mlp import MLP

__all__ = ["MUP_VS_SP", "Student", "one_draw_init"]

MUP_VS_SP = {"mup": "mup-adam", "sp": "sp"}  # short name -> the learnmech.nets.MLP parameterisation
DTYPE = "float32"


def _network(width: int, parameterization: str, base_width: int, d_in: int, hidden_layers: int) -> MLP:
    return MLP((d_in,) + (width,) * hidden_layers + (1,), "relu", parameterization, base_width=base_width,
               bias=False, dtype=DTYPE)


def one_draw_init(net: MLP) -> Callable[[jax.Array], list]:
    """``init(key)`` with the distribution of ``net.init``, drawing every weight from one normal vector.

    Layer ``l`` gets ``w_l = init_std_l z_l`` (``z_l`` a ``(fan_in, fan_out)`` slice of one
    ``N(0, I)`` draw) and zero biases: the same law as :meth:`learnmech.nets.MLP.init`, which draws
    each layer from its own split key. One threefry draw compiles in about a third of the time of
    ``depth`` draws and a split, and this claim compiles one ensemble per width and
    parameterisation. Different seeds than ``net.init``, same distribution.
    """
    shapes = list(zip(net.widths[:-1], net.widths[1:]))  # [(fan_in, fan_out), ...]
    cuts = np.cumsum([0] + [a * b for a, b in shapes])  # (depth + 1,)

    def init(key):
        z = jax.random.normal(key, (int(cuts[-1]),), net.dtype)  # (n_params,)
        params = []
        for (fan_in, fan_out), sc, lo, hi in zip(shapes, net.scalings, cuts[:-1], cuts[1:]):
            layer = {"w": sc.init_std * z[lo:hi].reshape(fan_in, fan_out)}  # (fan_in, fan_out)
            if net.bias:
                layer["b"] = jnp.zeros((fan_out,), net.dtype)
            params.append(layer)
        return params

    return init


@dataclass(frozen=True)
class Student:
    """The students of one parameterisation (a key of :data:`MUP_VS_SP`) as :func:`learnmech.width_transfer.transfer`
    takes them: ``init``, ``apply`` and ``lr_multipliers`` are functions of the width."""

    parameterization: str
    base_width: int
    d_in: int = 16
    hidden_layers: int = 2

    def __post_init__(self):
        if self.parameterization not in MUP_VS_SP:
            raise ValueError(f"parameterization: must be one of {sorted(MUP_VS_SP)}, got {self.parameterization!r}")

    def network(self, width: int) -> MLP:
        return _network(width, MUP_VS_SP[self.parameterization], self.base_width, self.d_in, self.hidden_layers)

    def init(self, key: jax.Array, width: int) -> list:
        return one_draw_init(self.network(width))(key)

    def apply(self, params, x: jax.Array, width: int) -> jax.Array:
        return self.network(width).apply(params, x)  # (N, 1)

    def lr_multipliers(self, width: int) -> list:
        return self.network(width).lr_multipliers()

    def known(self, done: Mapping) -> dict[int, np.ndarray] | None:
        """The base-width losses of a parameterisation in ``done`` whose network there is this one (the same
        layer scalings: muP at its base width is SP), so it is trained once; ``None`` if there is none."""
        base = self.network(self.base_width)
        for p, result in done.items():
            other = replace(self, parameterization=p).network(self.base_width)
            if self.base_width in result.widths and (other.widths, other.scalings) == (base.widths, base.scalings):
                return {self.base_width: result.losses[list(result.widths).index(self.base_width)]}
        return None
