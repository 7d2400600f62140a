"""The compute-optimal frontier of a Chinchilla-form law, ``L = E + A/N^alpha + B/D^beta``.

Contract: pure functions of the law's natural parameters and a compute budget (``C = 6 N D``);
``frontier_problem`` says why a law has none (a loss flat or rising in ``N`` or ``D``), and
``compute_optimal`` raises ``ValueError`` for such a law.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

__all__ = ["compute_optimal", "frontier_problem", "tokens_per_parameter"]


def compute_optimal(params: Mapping[str, float], flops) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal ``(N_opt, D_opt)`` of ``L = E + A/N^alpha + B/D^beta`` under ``C = 6 N D``.

    ``N_opt = G (C/6)^a``, ``D_opt = G^-1 (C/6)^b``, ``G = (alpha A / (beta B))^(1/(alpha+beta))``,
    ``a = beta/(alpha+beta)``, ``b = alpha/(alpha+beta)`` (Hoffmann et al. 2022, arXiv:2203.15556, eq. 4).

    The frontier exists only when ``A, B, alpha, beta`` are all finite and ``> 0``
    (:func:`frontier_problem`); otherwise ``ValueError``.

    >>> n, d = compute_optimal({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}, 5.76e23)
    >>> round(float(n) / 1e9, 1), round(float(d) / 1e12, 2)
    (32.2, 2.98)
    """
    problem = frontier_problem(params)
    if problem:
        raise ValueError(f"params: {problem}")
    c = np.asarray(flops, dtype=np.float64)
    if np.any(~np.isfinite(c)) or np.any(c <= 0):
        raise ValueError("flops: must be finite and > 0")
    alpha, beta, a_, b_ = params["alpha"], params["beta"], params["A"], params["B"]
    g = (alpha * a_ / (beta * b_)) ** (1.0 / (alpha + beta))
    return g * (c / 6) ** (beta / (alpha + beta)), (c / 6) ** (alpha / (alpha + beta)) / g


def frontier_problem(params: Mapping[str, float]) -> str:
    """Why ``L = E + A/N^alpha + B/D^beta`` has no compute-optimal frontier, or ``""`` when it has one.

    The minimum of ``L`` along ``C = 6 N D`` exists when both terms fall with size, i.e. ``A, B,
    alpha, beta`` finite and ``> 0``; a law that is flat or rising in ``N`` or ``D`` has none.

    >>> frontier_problem({"A": 400.0, "B": 1500.0, "alpha": -0.1, "beta": 0.3})
    'alpha = -0.1 is not > 0; the compute-optimal frontier needs A, B, alpha, beta finite and > 0'
    """
    for key in ("A", "B", "alpha", "beta"):
        if key not in params:
            return f"{key} is not a parameter of this law; the compute-optimal frontier needs A, B, alpha, beta"
        value = float(params[key])
        if not (math.isfinite(value) and value > 0):
            return (f"{key} = {value:.6g} is not > 0; the compute-optimal frontier needs A, B, alpha, beta "
                    "finite and > 0")
    return ""


def tokens_per_parameter(params: Mapping[str, float], flops) -> np.ndarray:
    """``D_opt / N_opt`` along the compute-optimal frontier (see :func:`compute_optimal`)."""
    n, d = compute_optimal(params, flops)
    return d / n
