"""``StepsHyperbola``: the steps-examples trade-off ``S = S_min (1 + B_noise / B)`` fitted to a sweep.

Contract (scikit-learn's): the constructor only stores ``n_train``; ``fit(batch, steps)`` fits the
form :func:`learnmech.theory.batch_tradeoff.steps_hyperbola` by least squares in ``log S``
(relative errors: the steps span decades and their scatter is multiplicative), profiled over
``log B_noise`` (McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162), and sets ``s_min_``,
``b_noise_``, ``e_min_ = B_noise S_min`` and ``rms_`` (residual in ``log S``); ``predict(batch)`` is
the form at the fitted parameters. With ``n_train`` the noise term carries ``(n - 1) / n``
(batches drawn with replacement from ``n`` examples; :mod:`learnmech.theory.batch_tradeoff`).

>>> import numpy as np
>>> from learnmech.theory.batch_tradeoff import steps_hyperbola
>>> batch = 2.0 ** np.arange(8)
>>> fit = StepsHyperbola().fit(batch, steps_hyperbola(batch, 10.0, 16.0))
>>> round(fit.s_min_, 6), round(fit.b_noise_, 6)
(10.0, 16.0)
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator

from learnmech.theory.batch_tradeoff import steps_hyperbola

__all__ = ["StepsHyperbola"]


class StepsHyperbola(BaseEstimator):
    """Fit ``S(B) = S_min (1 + B_noise / B)`` to steps-to-target ``steps`` at batch sizes ``batch``.

    Args:
      n_train: training-set size when batches are drawn with replacement from ``n`` examples
        (the noise term carries ``(n - 1) / n``); None for fresh examples.
    """

    def __init__(self, n_train: float | None = None):
        self.n_train = n_train

    def fit(self, batch, steps) -> "StepsHyperbola":
        """Fit to ``(K,)`` batch sizes and steps to the target, ``K >= 2``, finite and ``> 0`` (ValueError otherwise).

        For a given ``B_noise`` the best ``log S_min`` is the mean residual, so the fit is a 1-D
        minimisation over ``log B_noise`` (grid, then bounded Brent) within ``[B_min / 1e3, 1e3 B_max]``.
        """
        b, s = np.asarray(batch, np.float64), np.asarray(steps, np.float64)
        if b.ndim != 1 or b.size < 2:
            raise ValueError(f"batch: need a 1-D array of at least 2 batch sizes (S_min and B_noise), got shape {b.shape}")
        if s.shape != b.shape:
            raise ValueError(f"steps: must have one value per batch size {b.shape}, got shape {s.shape}")
        for name, v in (("batch", b), ("steps", s)):
            if not np.all(np.isfinite(v)) or np.any(v <= 0):
                raise ValueError(f"{name}: must be finite and > 0")
        x = steps_hyperbola(b, 1.0, 1.0, self.n_train) - 1.0  # (K,): S / S_min - 1 per unit B_noise
        log_s = np.log(s)

        def sse(u):  # u: scalar or (G, 1) log B_noise
            r = log_s - np.log1p(np.exp(u) * x)  # (K,) or (G, K)
            return np.sum((r - r.mean(axis=-1, keepdims=True)) ** 2, axis=-1)

        grid = np.linspace(math.log(b.min() / 1e3), math.log(b.max() * 1e3), 400)
        i = int(np.argmin(sse(grid[:, None])))
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        b_noise = math.exp(minimize_scalar(sse, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10}).x)
        residual = log_s - np.log1p(b_noise * x)
        self.s_min_, self.b_noise_, self.rms_ = float(math.exp(residual.mean())), b_noise, float(np.std(residual))
        self.e_min_ = self.b_noise_ * self.s_min_
        return self

    def predict(self, batch) -> np.ndarray:
        """Steps to the target at batch sizes ``batch`` on the fitted hyperbola."""
        if not hasattr(self, "s_min_"):
            raise RuntimeError("StepsHyperbola: call fit(...) first")
        return steps_hyperbola(batch, self.s_min_, self.b_noise_, self.n_train)
