"""Per-layer scalings of a multilayer perceptron, read off the abc table of :mod:`learnmech.theory.parameterization`.

Contract. A layer ``l`` with ``fan_in`` inputs computes ``h_l = multiplier * (x @ w) + b`` where
the trained weight ``w`` is initialised ``N(0, init_std^2)`` and trained with learning rate
``eta * lr_multiplier``. The base model (width multiplier ``m = width / base_width = 1``) is

- ``sigma`` in the initialisation (every row but ``ntk``): ``w ~ N(0, sigma^2 / fan_in)``,
  multiplier 1;
- ``sigma`` in the multiplier (``ntk``, as in Jacot et al. 2018, arXiv:1806.07572):
  ``w ~ N(0, 1)``, multiplier ``sigma / sqrt(fan_in)``, so that the tangent kernel of the network
  is the analytic NTK of :mod:`learnmech.theory.kernels` with ``sigma_w^2 = sigma^2`` (with
  ``sigma`` in the initialisation instead, the same function would have the weight terms of its
  NTK divided by ``sigma^2``);

and at ``m != 1`` each of the three numbers is multiplied by ``m^{-a}``, ``m^{-b}``, ``m^{-c}``
from the row of the layer's kind: the first layer is ``input``, the last ``output``, the others
``hidden``; biases of width-sized layers are ``vector`` (their learning rate scales like an input
weight's), the output bias scales with nothing. Biases start at zero with multiplier 1.

With ``m = 1`` every parameterisation is its base model, so muP at its base width is SP.
"""

from __future__ import annotations

from dataclasses import dataclass

from learnmech.theory.parameterization import PARAMETERIZATIONS, get_parameterization

__all__ = ["LayerScaling", "PARAMETERIZATIONS", "layer_kind", "layer_scalings"]


@dataclass(frozen=True)
class LayerScaling:
    """The three numbers that define one layer's parameterisation."""

    init_std: float
    multiplier: float
    lr_multiplier: float
    bias_lr_multiplier: float = 1.0


def layer_kind(index: int, n_layers: int) -> str:
    """``"input"`` for the first layer, ``"output"`` for the last, ``"hidden"`` in between."""
    if index == n_layers - 1:
        return "output"
    return "input" if index == 0 else "hidden"


def layer_scalings(
    widths: tuple[int, ...],
    parameterization: str = "sp",
    *,
    base_width: int | None = None,
    sigma: float = 1.0,
) -> tuple[LayerScaling, ...]:
    """Per-layer init std, forward multiplier and learning-rate multiplier.

    Args:
      widths: ``(d_in, n_1, ..., n_{L-1}, d_out)``; hidden widths scale with the model.
      parameterization: a key of ``PARAMETERIZATIONS``.
      base_width: width at which every parameterisation is its base model (defaults to the
        model's own hidden width, i.e. ``m = 1``).
      sigma: weight scale (``sigma^2`` is the weight variance times ``fan_in`` in SP).
    """
    table = get_parameterization(parameterization)
    if len(widths) < 2 or any(int(w) < 1 for w in widths):
        raise ValueError("widths: need at least (d_in, d_out), all positive")
    if base_width is not None and int(base_width) < 1:
        raise ValueError(f"base_width: must be a positive integer, got {base_width}")
    n_layers = len(widths) - 1
    width = max(widths[1:-1]) if n_layers > 1 else widths[0]
    m = width / (base_width or width)
    out = []
    for i in range(n_layers):
        kind = layer_kind(i, n_layers)
        mult, std, lr = table.scales(kind, m)
        base_fan_in = widths[i] / m if kind in ("hidden", "output") else widths[i]
        base_init, base_mult = (1.0, sigma * base_fan_in**-0.5) if table.sigma_in_multiplier else (
            sigma * base_fan_in**-0.5, 1.0)
        bias_lr = table.scales("vector", m)[2] if kind != "output" else 1.0  # the output bias has d_out entries
        out.append(LayerScaling(init_std=base_init * std, multiplier=base_mult * mult, lr_multiplier=lr,
                                bias_lr_multiplier=bias_lr))
    return tuple(out)
