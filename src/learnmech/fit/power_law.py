"""``PowerLaw``: a spectrum's decay ``values_k ~ C k^{-a}`` fitted over a range of ranks.

Contract (scikit-learn's): the constructor only stores the rank range ``k_min..k_max`` (1-based,
inclusive; ``k_max=None``: the last rank); ``fit(values)``, with ``values[k - 1]`` the value at
rank ``k`` (e.g. a covariance spectrum, descending, from
:func:`learnmech.observe.spectra.covariance_spectrum`), fits ``log values_k = log C - a log k`` by
least squares and sets ``exponent_`` (``a``; ``> 0`` for a decaying spectrum), ``log_prefactor_``
(``log C``, natural log), ``r2_`` (of the straight line in ``(log k, log values)``; NaN for a flat
segment) and ``n_points_`` (``k_max - k_min + 1``). ``predict(k)`` is the fitted law.

>>> import numpy as np
>>> fit = PowerLaw(k_min=2, k_max=9).fit(3.0 * np.arange(1.0, 11.0) ** -2.0)
>>> round(fit.exponent_, 12), round(float(np.exp(fit.log_prefactor_)), 12), fit.n_points_
(2.0, 3.0, 8)
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

__all__ = ["PowerLaw"]


class PowerLaw(BaseEstimator):
    """Fit ``values_k ~ exp(log_prefactor) k^{-exponent}`` over ranks ``k_min..k_max``."""

    def __init__(self, k_min: int = 1, k_max: int | None = None):
        self.k_min = k_min
        self.k_max = k_max

    def fit(self, values) -> "PowerLaw":
        """Fit to the ``(M,)`` values by rank; ``1 <= k_min < k_max <= M``, values in range finite and ``> 0``."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 1:
            raise ValueError(f"values: must be a 1-D array (one value per rank), got shape {v.shape}")
        if v.size < 2:
            raise ValueError(f"values: need at least 2 ranks for a power law, got {v.size}")
        k_min, k_max = int(self.k_min), int(v.size if self.k_max is None else self.k_max)
        if not (1 <= k_min < k_max <= v.size):
            raise ValueError(f"k_min, k_max: need 1 <= k_min < k_max <= {v.size} (ranks of values), "
                             f"got {k_min}..{k_max}")
        seg = v[k_min - 1:k_max]  # (k_max - k_min + 1,)
        if not np.all(np.isfinite(seg)) or np.any(seg <= 0):
            raise ValueError(f"values: must be finite and > 0 over ranks {k_min}..{k_max}")
        logk = np.log(np.arange(k_min, k_max + 1, dtype=np.float64))
        logv = np.log(seg)
        slope, intercept = np.polyfit(logk, logv, 1)
        resid = logv - (intercept + slope * logk)
        ss_tot = np.sum((logv - logv.mean()) ** 2)
        r2 = 1.0 - np.sum(resid**2) / ss_tot if ss_tot > 0 else float("nan")  # nan: a flat segment
        self.exponent_, self.log_prefactor_ = float(-slope), float(intercept)
        self.r2_, self.n_points_ = float(r2), int(seg.size)
        return self

    def predict(self, k) -> np.ndarray:
        """The fitted law ``C k^{-a}`` at ranks ``k``."""
        if not hasattr(self, "exponent_"):
            raise RuntimeError("PowerLaw: call fit(...) first")
        return np.exp(self.log_prefactor_) * np.asarray(k, np.float64) ** (-self.exponent_)
