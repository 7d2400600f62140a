"""``PowerLaw``: a spectrum's decay ``values_k ~ C k^{-a}`` fitted over a range of ranks.

Contract (scikit-learn's): the constructor only stores the rank range ``k_min..k_max`` (1-based,
inclusive; ``k_max=None``: the last rank); ``fit(values)``, with ``values[k - 1]`` the value at
rank ``k`` (e.g. a covariance spectrum, descending), fits ``log values_k = log C - a log k`` by
least squares (:func:`learnmech.observe.spectra.fit_power_law`, the same numbers) and sets
``exponent_`` (``a``), ``log_prefactor_`` (``log C``, natural log), ``r2_`` (of the straight line
in log-log), ``n_points_`` and ``result_`` (the ``PowerLawFit``).

>>> import numpy as np
>>> fit = PowerLaw(k_min=2, k_max=9).fit(3.0 * np.arange(1.0, 11.0) ** -2.0)
>>> round(fit.exponent_, 12), round(float(np.exp(fit.log_prefactor_)), 12), fit.n_points_
(2.0, 3.0, 8)
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from learnmech.observe.spectra import fit_power_law

__all__ = ["PowerLaw"]


class PowerLaw(BaseEstimator):
    """Fit ``values_k ~ exp(log_prefactor) k^{-exponent}`` over ranks ``k_min..k_max``."""

    def __init__(self, k_min: int = 1, k_max: int | None = None):
        self.k_min = k_min
        self.k_max = k_max

    def fit(self, values) -> "PowerLaw":
        """Fit to the ``(M,)`` values by rank; ``1 <= k_min < k_max <= M``, values in range finite and ``> 0``."""
        shape = np.shape(values)
        if len(shape) != 1:
            raise ValueError(f"values: must be a 1-D array (one value per rank), got shape {shape}")
        if shape[0] < 2:
            raise ValueError(f"values: need at least 2 ranks for a power law, got {shape[0]}")
        self.result_ = fit_power_law(values, self.k_min, shape[0] if self.k_max is None else self.k_max)
        self.exponent_, self.log_prefactor_ = self.result_.exponent, self.result_.log_prefactor
        self.r2_, self.n_points_ = self.result_.r2, self.result_.n_points
        return self

    def predict(self, k) -> np.ndarray:
        """The fitted law ``C k^{-a}`` at ranks ``k``."""
        if not hasattr(self, "exponent_"):
            raise RuntimeError("PowerLaw: call fit(...) first")
        return np.exp(self.log_prefactor_) * np.asarray(k, np.float64) ** (-self.exponent_)
