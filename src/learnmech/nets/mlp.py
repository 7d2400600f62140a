"""Multilayer perceptron with its parameterisation given as data.

Contract (shared by every model in ``nets``): a frozen, hashable description object with
``init(key) -> params`` and ``apply(params, x) -> outputs`` over a plain pytree, plus
``activations(params, x)`` (per-layer post-activations, for observables) and
``lr_multipliers()`` (a pytree shaped like ``params`` for the trainer's per-parameter
learning rates). The MLP also offers ``forward_with_taps`` (the one forward pass that ``apply``
and ``activations`` use), which exposes each layer's input and accepts additive perturbations of
the pre-activations, for layer-structured observables such as the empirical NTK.
``x`` has shape ``(n, d_in)``; outputs ``(n, d_out)``.

Layer ``l`` computes ``h_l = multiplier_l * (z_{l-1} @ w_l) + b_l`` and ``z_l = phi(h_l)``
(no ``phi`` after the last layer); see :mod:`learnmech.nets.parameterization` for how SP, NTK
and muP set ``init_std``, ``multiplier`` and ``lr_multiplier``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from learnmech.nets.parameterization import LayerScaling, layer_scalings

__all__ = ["ACTIVATIONS", "MLP"]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "erf": jax.scipy.special.erf,
    "gelu": jax.nn.gelu,
    "linear": lambda h: h,
}


@dataclass(frozen=True)
class MLP:
    """A fully connected network ``d_in -> width x (depth - 1) -> d_out``.

    Attributes:
      widths: ``(d_in, n_1, ..., d_out)``; ``depth = len(widths) - 1`` weight matrices.
      activation: a key of ``ACTIVATIONS``.
      parameterization: ``"sp" | "ntk" | "mup-adam" | "mup-sgd"``.
      base_width: muP base width (``None``: this model is its own base).
      sigma: weight scale.
      bias: whether layers carry (zero-initialised) biases.
      dtype: parameter dtype.
    """

    widths: tuple[int, ...]
    activation: str = "tanh"
    parameterization: str = "sp"
    base_width: int | None = None
    sigma: float = 1.0
    bias: bool = True
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        self.scalings  # validates the parameterisation

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    @property
    def scalings(self) -> tuple[LayerScaling, ...]:
        return layer_scalings(
            self.widths, self.parameterization, base_width=self.base_width, sigma=self.sigma
        )

    def init(self, key: jax.Array) -> list[dict[str, jax.Array]]:
        """Parameters ``[{"w": (fan_in, fan_out), "b": (fan_out,)}, ...]``."""
        keys = jax.random.split(key, self.depth)
        params = []
        for k, sc, fan_in, fan_out in zip(keys, self.scalings, self.widths[:-1], self.widths[1:]):
            layer = {"w": sc.init_std * jax.random.normal(k, (fan_in, fan_out), self.dtype)}
            if self.bias:
                layer["b"] = jnp.zeros((fan_out,), self.dtype)
            params.append(layer)
        return params

    def forward_with_taps(self, params, x: jax.Array, taps=None) -> tuple[jax.Array, list[jax.Array]]:
        """The forward pass, with additive perturbations of the pre-activations.

        Layer ``l`` computes ``h_l = multiplier_l * (z_{l-1} @ w_l) + b_l + taps[l]``. With zero
        taps the outputs equal :meth:`apply`; the gradient with respect to ``taps[l]`` is the
        backpropagated signal ``d f / d h_l`` (used by the layer-structured empirical NTK).

        Args:
          params: as returned by :meth:`init`.
          x: inputs ``(n, d_in)``.
          taps: ``None`` or one array per layer, ``taps[l]`` of shape ``(n, widths[l + 1])``.

        Returns:
          ``(outputs, layer_inputs)``: outputs ``(n, d_out)`` and the input ``z_{l-1}`` of every
          layer, ``layer_inputs[0] = x``.
        """
        phi = ACTIVATIONS[self.activation]
        z = x  # (n, d_in)
        layer_inputs = []
        for i, (layer, sc) in enumerate(zip(params, self.scalings)):
            layer_inputs.append(z)
            h = sc.multiplier * (z @ layer["w"])  # (n, fan_out)
            if self.bias:
                h = h + layer["b"]
            if taps is not None:
                h = h + taps[i]
            z = h if i == self.depth - 1 else phi(h)
        return z, layer_inputs

    def activations(self, params, x: jax.Array) -> list[jax.Array]:
        """Pre-activations of the output layer last; post-activations of hidden layers before."""
        outputs, layer_inputs = self.forward_with_taps(params, x)
        return layer_inputs[1:] + [outputs]

    def apply(self, params, x: jax.Array) -> jax.Array:
        """Network outputs, ``(n, d_out)``."""
        return self.forward_with_taps(params, x)[0]

    def lr_multipliers(self) -> list[dict[str, float]]:
        """Per-parameter learning-rate multipliers, a pytree shaped like ``params``."""
        mults = []
        for sc in self.scalings:
            layer = {"w": sc.lr_multiplier}
            if self.bias:
                layer["b"] = sc.bias_lr_multiplier
            mults.append(layer)
        return mults
