"""``StepsHyperbola``: the steps-examples trade-off ``S = S_min (1 + B_noise / B)`` fitted to a sweep.

Contract (scikit-learn's): the constructor only stores ``n_train``; ``fit(batch, steps)`` fits
:func:`learnmech.theory.batch_tradeoff.fit_steps` (least squares in ``log S``, profiled over
``log B_noise``; McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162) and sets ``s_min_``,
``b_noise_``, ``e_min_ = B_noise S_min`` and ``rms_`` (residual in ``log S``); ``predict(batch)`` is
:func:`~learnmech.theory.batch_tradeoff.steps_hyperbola` at the fitted parameters.

>>> import numpy as np
>>> from learnmech.theory.batch_tradeoff import steps_hyperbola
>>> batch = 2.0 ** np.arange(8)
>>> fit = StepsHyperbola().fit(batch, steps_hyperbola(batch, 10.0, 16.0))
>>> round(fit.s_min_, 6), round(fit.b_noise_, 6)
(10.0, 16.0)
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from learnmech.theory.batch_tradeoff import fit_steps, steps_hyperbola

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
        """Fit to ``(K,)`` batch sizes and steps to the target, ``K >= 2``, finite and ``> 0``."""
        self.s_min_, self.b_noise_, self.rms_ = fit_steps(batch, steps, self.n_train)
        self.e_min_ = self.b_noise_ * self.s_min_
        return self

    def predict(self, batch) -> np.ndarray:
        """Steps to the target at batch sizes ``batch`` on the fitted hyperbola."""
        if not hasattr(self, "s_min_"):
            raise RuntimeError("StepsHyperbola: call fit(...) first")
        return steps_hyperbola(batch, self.s_min_, self.b_noise_, self.n_train)
