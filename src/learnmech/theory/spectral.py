"""Learning-curve exponent of ridgeless kernel regression from power-law spectra.

Setting (Spigler, Geiger & Wyart 2020, arXiv:1905.10843; Bordelon, Canatar & Pehlevan 2020,
arXiv:2002.02561; Cui, Loureiro, Krzakala & Zdeborova 2021, arXiv:2105.15004). A kernel has
integral-operator eigenvalues ``lambda_k ~ k^{-a}`` (``a > 1`` for a trace-class kernel) and the
target has power ``v_k^2 ~ k^{-b}`` in its eigenbasis (``b > 1`` for a square-integrable target).
With ``n`` noiseless samples and no ridge, the eigenlearning equations
(:mod:`learnmech.theory.eigenlearning`) give the effective regularisation
``kappa ~ n^{-a}`` (the modes with ``k < n`` are learned, ``L_k = lambda_k / (lambda_k + kappa)``)
and a test error ``E0 sum_k (1 - L_k)^2 v_k^2`` with ``E0 = O(1)``. It splits into

- the unlearned tail ``sum_{k > n} v_k^2 ~ n^{1 - b}``;
- the residual of the learned modes ``sum_{k < n} (kappa / lambda_k)^2 v_k^2 ~
  kappa^2 sum_{k < n} k^{2a - b}``, which is ``~ n^{-2a}`` when ``b > 2a + 1`` (the sum converges)
  and ``~ n^{1 - b}`` otherwise.

Hence the test error decays as ``n^{-beta}`` with ``beta = min(b - 1, 2a)``.
"""

from __future__ import annotations

import math

__all__ = ["predicted_learning_curve_exponent"]


def predicted_learning_curve_exponent(a: float, b: float) -> float:
    """``beta = min(b - 1, 2 a)``: the exponent of ``test error ~ n^{-beta}`` (module docstring).

    Args:
      a: decay of the kernel eigenvalues, ``lambda_k ~ k^{-a}``, ``a > 0``.
      b: decay of the target power, ``v_k^2 ~ k^{-b}``, ``b > 1``.

    >>> predicted_learning_curve_exponent(1.5, 2.0)  # target-limited: b - 1
    1.0
    >>> predicted_learning_curve_exponent(0.5, 4.0)  # kernel-limited: 2a
    1.0
    """
    a, b = float(a), float(b)
    if not (math.isfinite(a) and a > 0):
        raise ValueError(f"a: must be finite and > 0, got {a}")
    if not (math.isfinite(b) and b > 1):
        raise ValueError(f"b: must be finite and > 1 (a square-integrable target), got {b}")
    return min(b - 1.0, 2.0 * a)
