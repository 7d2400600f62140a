"""Multilayer perceptron with its parameterisation given as data.

Contract (shared by every model in ``nets``): a frozen, hashable description object with
``init(key) -> params`` and ``apply(params, x) -> outputs`` over a plain pytree, plus
``activations(params, x)`` (per-layer post-activations, for observables) and
``lr_multipliers()`` (a pytree shaped like ``params`` for the trainer's per-parameter
learning rates). The MLP also offers ``forward_with_taps`` (the one forward pass that ``apply``
and ``activations`` use), which exposes each layer's input and accepts additive perturbations of
the pre-activations, for layer-structured observables such as the empirical NTK.
``x`` has shape ``(n, d_in)``; outputs ``(n, d_out)``. With ``init`` and ``apply`` it carries its
infinite-width kernels, ``kernels(x1, x2=None)``: the analytic NNGP and NTK of this network as it is
parameterised (neural-tangents' ``(init_fn, apply_fn, kernel_fn)`` triple; Novak et al. 2020,
arXiv:1912.02803), so no caller wires the kernel's variances by hand.

Layer ``l`` computes ``h_l = multiplier_l * (z_{l-1} @ w_l) + b_l`` and ``z_l = phi(h_l)``
(no ``phi`` after the last layer); see :mod:`learnmech.nets.parameterization` for how SP, NTK
and muP set ``init_std``, ``multiplier`` and ``lr_multiplier``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from learnmech.nets.parameterization import LayerScaling, layer_scalings
from learnmech.theory.dual import ACTIVATIONS, named_activation
from learnmech.theory.kernels import Kernels, nngp_ntk

__all__ = ["ACTIVATIONS", "MLP"]


@dataclass(frozen=True)
class MLP:
    """A fully connected network ``d_in -> width x (depth - 1) -> d_out``.

    Attributes:
      widths: ``(d_in, n_1, ..., d_out)``; ``depth = len(widths) - 1`` weight matrices.
      activation: a name of the activation table :data:`learnmech.theory.dual.ACTIVATIONS`
        (``relu, tanh, erf, gelu, linear, ...``, or ``leaky_relu:<slope>``).
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
        named_activation(self.activation)  # validates the name
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
        phi = named_activation(self.activation).fn
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

    def kernels(self, x1, x2=None, *, dtype=None) -> Kernels:
        """The analytic NNGP and NTK of this network, as it is parameterised, per output unit.

        The infinite-width limit of :func:`learnmech.theory.kernels.nngp_ntk` with every number read
        off :attr:`scalings` (so SP, NTK, muP and any ``sigma`` or ``base_width`` are handled alike):
        layer ``l`` with ``fan_in`` inputs, forward multiplier ``c``, init std ``s`` and learning-rate
        multipliers ``m_w``, ``m_b`` has

        - weight variance ``sigma_w,l^2 = fan_in (c s)^2`` (the variance of ``c w`` times ``fan_in``)
          and bias variance 0 (biases start at zero);
        - NTK weight term ``omega_l = fan_in c^2 m_w`` and bias term ``beta_l = m_b`` (0 without biases).

        Convention: the NTK is ``Theta(x, x') = sum_p m_p (df(x)/dp)(df(x')/dp)`` with ``m_p`` the
        model's own :meth:`lr_multipliers` (``empirical_ntk(model.apply, params, x,
        lr_multipliers=model.lr_multipliers())`` is its finite-width estimate), the kernel that
        gradient descent with per-parameter rates ``eta m_p`` follows in ``t = eta * steps`` on
        ``L = (1/2n) sum_i ||f(x_i) - y_i||^2``. For SP and NTK at ``base_width = None`` every
        ``m_p = 1``: the plain ``J J^T``. Each layer's numbers are those at this model's widths, so
        an SP kernel grows with the width as the finite network's does (Sohl-Dickstein et al. 2020,
        arXiv:2001.07301), and a muP readout's NNGP is ``O(1/width)``.

        Args:
          x1: inputs ``(n1, d_in)``. x2: inputs ``(n2, d_in)``, or ``None`` for ``x1`` against itself.
          dtype: ``float32`` or ``float64`` (default: that of ``x1``, float32 for non-float input).

        Returns:
          :class:`learnmech.theory.kernels.Kernels` ``(nngp, ntk)``, numpy arrays ``(n1, n2)``.
        """
        fan_ins = self.widths[:-1]
        scalings = self.scalings
        return nngp_ntk(
            x1, x2, depth=self.depth - 1, activation=named_activation(self.activation).dual,
            weight_var=[f * (sc.multiplier * sc.init_std) ** 2 for f, sc in zip(fan_ins, scalings)],
            bias_var=0.0, parameterization="ntk",
            weight_tangent=[f * sc.multiplier**2 * sc.lr_multiplier for f, sc in zip(fan_ins, scalings)],
            bias_tangent=[sc.bias_lr_multiplier if self.bias else 0.0 for sc in scalings], dtype=dtype,
        )
