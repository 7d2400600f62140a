"""Batch-size scaling rules: how an optimiser's hyperparameters change when the batch grows ``k``-fold.

Contract: pure numpy functions of the base run's hyperparameters and ``k``; the rules are data
(:data:`SCALING_RULES`), not branches.

SGD, linear rule (Goyal et al. 2017, arXiv:1706.02677; Mandt, Hoffman & Blei 2017,
arXiv:1704.04289; Jastrzebski et al. 2017, arXiv:1711.04623; Li, Malladi & Arora 2021,
arXiv:2102.12470): below the critical batch size, ``(eta, B) -> (k eta, k B)`` leaves the
loss-versus-examples-seen curve unchanged. Adam, square-root rule (Malladi, Lyu, Panigrahi &
Arora 2022, arXiv:2205.10287): ``eta -> sqrt(k) eta``, ``1 - beta_i -> k (1 - beta_i)``,
``eps -> eps / sqrt(k)``.

Why (the SDE view). An SGD step is ``w' = w - eta G - eta xi_B`` with ``E xi_B = 0``,
``Cov xi_B = Sigma / B`` (``G`` the full gradient, ``Sigma`` the covariance of one example's
gradient). ``k`` steps at ``(eta, B)`` and one step at ``(k eta, k B)`` read the same ``k B``
examples with the same drift ``k eta G`` and the same noise covariance ``k eta^2 Sigma / B``. They
differ at second order: of the expected loss change of a step,
``-eta |G|^2 + (eta^2 / 2) (G^T H G + tr(H Sigma) / B)``, the noise term is invariant per example
under the rule and the term ``eta^2 G^T H G / 2`` grows ``k``-fold, so the rule holds while
``B < B_noise = tr(H Sigma) / G^T H G``, estimated by the simple noise scale
``B_simple = tr(Sigma) / |G|^2`` (McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162). The
relative size of the breaking term is ``eta_k h / 2`` (``h`` a curvature): it grows linearly in
``k`` and the runs part for good at the stability edge ``eta_k ~ 2 / lambda_max``.
:func:`learnmech.theory.sgd_linear.sgd_second_moments` is the exact version of this for linear
regression.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SCALING_RULES", "scaled_hyperparameters"]

# Scaling rules as data: optimizer -> how each hyperparameter of the base run changes with k.
SCALING_RULES = {
    "sgd": {"learning_rate": "linear"},  # Goyal et al. 2017
    "adam": {"learning_rate": "sqrt", "b1": "one_minus_linear", "b2": "one_minus_linear",
             "eps": "inverse_sqrt"},  # Malladi et al. 2022, square-root scaling rule
}
_SCALINGS = {
    "linear": lambda v, k: v * k,
    "sqrt": lambda v, k: v * np.sqrt(k),
    "inverse_sqrt": lambda v, k: v / np.sqrt(k),
    "one_minus_linear": lambda v, k: 1.0 - k * (1.0 - v),
}


def scaled_hyperparameters(optimizer: str, base: dict[str, float], k) -> dict[str, np.ndarray]:
    """The hyperparameters of the run at batch ``k B0`` from those of the base run, by ``SCALING_RULES``.

    SGD: ``eta -> k eta`` (Goyal et al. 2017, arXiv:1706.02677). Adam: ``eta -> sqrt(k) eta``,
    ``1 - beta_i -> k (1 - beta_i)``, ``eps -> eps / sqrt(k)`` (Malladi et al. 2022, arXiv:2205.10287).
    ``k`` may be an array (one entry per member).

    >>> {n: float(v) for n, v in scaled_hyperparameters("adam", {"learning_rate": 1e-3, "b1": 0.99}, 4).items()}
    {'learning_rate': 0.002, 'b1': 0.96}
    """
    rule = SCALING_RULES[optimizer]
    k = np.asarray(k, np.float64)
    return {name: _SCALINGS[rule[name]](float(value), k) for name, value in base.items()}
