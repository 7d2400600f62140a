"""The abc-parameterisation of a multilayer perceptron, as data.

Contract. A layer ``l`` with ``fan_in`` inputs computes ``h_l = multiplier * (x @ w) + b`` where
the trained weight ``w`` is initialised ``N(0, init_std^2)`` and trained with learning rate
``eta * lr_multiplier``. Following Yang & Hu 2021 (TP-IV, arXiv:2011.14522) each of the three
numbers is a power of the width, and SP, NTK and muP are three rows of one table:

    init_std      = sigma * fan_in^{-p} * m^{-q}      (sigma = 1 here when it is in the multiplier)
    multiplier    = fan_in^{-r}                      (times sigma for rows that carry it, i.e. ntk)
    lr_multiplier = m^{-c}

where ``m = width / base_width`` is the width multiplier relative to a base model (muP's "base
shapes"), and the layer *kind* (input, hidden, output) selects the row.

- ``sp``  (standard): ``w ~ N(0, sigma^2/fan_in)``, multiplier 1, one learning rate.
- ``ntk`` (Jacot et al. 2018, arXiv:1806.07572): ``w ~ N(0, 1)``, multiplier
  ``sigma/sqrt(fan_in)``, one learning rate. ``sigma`` sits in the multiplier, as in Jacot et al.,
  so that the tangent kernel of the network is the analytic NTK of
  :mod:`learnmech.theory.kernels` with ``sigma_w^2 = sigma^2`` (with ``sigma`` in the
  initialisation instead, the same function would have the weight terms of its NTK divided by
  ``sigma^2``).
- ``mup-adam`` (Yang et al. 2022, TP-V, arXiv:2203.03466, Table 3, Adam column): input and
  hidden weights ``N(0, sigma^2/fan_in)``; output weights variance ``sigma^2/(fan_in m)``, i.e.
  ``1/fan_in^2`` scaling; learning rates ``eta`` (input), ``eta/m`` (hidden, output).
- ``mup-sgd`` (same table, SGD column): same initialisation; learning rates ``eta m`` (input),
  ``eta`` (hidden), ``eta/m`` (output).

Biases start at zero with multiplier 1; their learning-rate multiplier is that of a vector-like
("input-like") parameter: ``m`` for SGD-muP biases whose fan-out is the width, else 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["LayerScaling", "ScalingRule", "PARAMETERIZATIONS", "layer_scalings"]

LayerKind = Literal["input", "hidden", "output"]


@dataclass(frozen=True)
class ScalingRule:
    """Exponents ``(p, q, r, c)`` of one row of the table (see module docstring)."""

    p: float  # init_std ~ fan_in^{-p}
    q: float  # init_std ~ m^{-q}
    r: float  # multiplier ~ fan_in^{-r}
    c: float  # lr_multiplier ~ m^{-c}
    bias_c: float = 0.0  # bias lr_multiplier ~ m^{-bias_c} (when the bias width scales)
    sigma_in_multiplier: bool = False  # sigma scales the forward multiplier instead of the init


@dataclass(frozen=True)
class LayerScaling:
    """The three numbers that define one layer's parameterisation."""

    init_std: float
    multiplier: float
    lr_multiplier: float
    bias_lr_multiplier: float = 1.0


def _rows(inp: ScalingRule, hid: ScalingRule, out: ScalingRule) -> dict[str, ScalingRule]:
    return {"input": inp, "hidden": hid, "output": out}


PARAMETERIZATIONS: dict[str, dict[str, ScalingRule]] = {
    "sp": _rows(*(ScalingRule(0.5, 0.0, 0.0, 0.0),) * 3),
    "ntk": _rows(*(ScalingRule(0.0, 0.0, 0.5, 0.0, sigma_in_multiplier=True),) * 3),
    "mup-adam": _rows(
        ScalingRule(0.5, 0.0, 0.0, 0.0),
        ScalingRule(0.5, 0.0, 0.0, 1.0),
        ScalingRule(0.5, 0.5, 0.0, 1.0),
    ),
    "mup-sgd": _rows(
        ScalingRule(0.5, 0.0, 0.0, -1.0, bias_c=-1.0),
        ScalingRule(0.5, 0.0, 0.0, 0.0, bias_c=-1.0),
        ScalingRule(0.5, 0.5, 0.0, 1.0),
    ),
}


def _kind(index: int, n_layers: int) -> LayerKind:
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
      base_width: width at which muP equals SP (defaults to the model's own hidden width,
        i.e. ``m = 1``).
      sigma: weight scale (``sigma^2`` is the weight variance times ``fan_in`` in SP).
    """
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization: must be one of {sorted(PARAMETERIZATIONS)}, got {parameterization!r}"
        )
    if len(widths) < 2 or any(int(w) < 1 for w in widths):
        raise ValueError("widths: need at least (d_in, d_out), all positive")
    rows = PARAMETERIZATIONS[parameterization]
    n_layers = len(widths) - 1
    width = max(widths[1:-1]) if n_layers > 1 else widths[0]
    m = width / (base_width or width)
    out = []
    for i in range(n_layers):
        kind = _kind(i, n_layers)
        rule = rows[kind]
        fan_in = widths[i]
        bias_scales = kind != "output"  # the output bias has d_out entries, not width
        init_scale, forward_scale = (1.0, sigma) if rule.sigma_in_multiplier else (sigma, 1.0)
        out.append(
            LayerScaling(
                init_std=init_scale * fan_in ** (-rule.p) * m ** (-rule.q),
                multiplier=forward_scale * fan_in ** (-rule.r),
                lr_multiplier=m ** (-rule.c),
                bias_lr_multiplier=m ** (-rule.bias_c) if bias_scales else 1.0,
            )
        )
    return tuple(out)
