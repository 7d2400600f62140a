"""Hyperparameter transfer across width: the loss-minimising learning rate ``eta*`` and its trend.

Contract: pure float64 numpy functions of learning-rate sweeps, no randomness, and
:class:`LearningRateTransfer`, the same fit as a scikit-learn estimator. A sweep is the final loss
at each learning rate of a grid (and each seed); a diverged run is NaN or inf.

Statement (Yang et al. 2022, "Tensor Programs V", arXiv:2203.03466): in the maximal-update
parameterisation the loss-minimising learning rate does not depend on the width ``n``
(``log2 eta*`` against ``log2 n`` has slope 0); in the standard parameterisation with Adam it
shrinks like ``1/n`` (slope -1). :func:`fit_transfer` measures that slope from sweeps.

Locating ``eta*`` (:func:`optimal_learning_rate`). Per width, the loss is averaged over seeds at
each ``eta`` of a log2 grid (:func:`mean_loss`); a seed that diverged makes that mean ``+inf``: a
diverged run ranks above every finite loss and is never dropped. Around the grid minimum ``k``,
the parabola in ``(log2 eta, l = log L)`` through ``k - 1, k, k + 1`` has its vertex at
``log2 eta* = log2 eta_k + (h/2) (l_{k-1} - l_{k+1}) / (l_{k-1} - 2 l_k + l_{k+1})`` (``h`` the grid
step; the vertex lies within ``h/2`` of ``eta_k``). A minimum at the first or last grid point is
flagged (the grid must be widened); a non-finite neighbour leaves ``eta* = eta_k``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator

from learnmech.increasing import increasing

__all__ = ["LearningRateTransfer", "TransferFit", "fit_transfer", "mean_loss", "optimal_learning_rate"]


def mean_loss(losses) -> np.ndarray:
    """Mean over the last axis (seeds), ``+inf`` where any member is non-finite (diverged).

    ``losses`` is ``(..., seeds)``; returns ``(...)``. A diverged member is never dropped: it makes
    its learning rate rank above every finite one.

    >>> mean_loss([[1.0, 3.0], [1.0, np.nan]]).tolist()
    [2.0, inf]
    """
    losses = np.asarray(losses, np.float64)
    finite = np.all(np.isfinite(losses), axis=-1)
    with np.errstate(all="ignore"):
        return np.where(finite, np.mean(np.where(np.isfinite(losses), losses, 0.0), axis=-1), np.inf)


def optimal_learning_rate(learning_rates, losses) -> tuple[float, bool]:
    """The loss-minimising learning rate from a parabola in ``(log2 eta, log L)``, and an edge flag.

    With ``k`` the grid minimum (NaN and inf rank above every finite loss), the parabola through
    ``(x_j, log L_j)``, ``j = k - 1, k, k + 1``, ``x = log2 eta``, has its vertex at
    ``x* = x_k + ((x_{k+1} - x_k)^2 (l_{k-1} - l_k) - (x_k - x_{k-1})^2 (l_{k+1} - l_k))
    / (2 ((x_{k+1} - x_k)(l_{k-1} - l_k) + (x_k - x_{k-1})(l_{k+1} - l_k)))``
    (``l = log L``; on an even grid this is ``x_k + (h/2)(l_{k-1} - l_{k+1}) / (l_{k-1} - 2 l_k + l_{k+1})``).
    The grid-minimum rule of TP-V (Yang et al. 2022, arXiv:2203.03466), refined between grid points.

    Args:
      learning_rates: ``(K,)`` positive, strictly increasing.
      losses: ``(K,)`` positive losses (NaN / inf: diverged).

    Returns:
      ``(eta_star, at_edge)``. ``at_edge`` is True when the minimum is the first or last grid point
      (then ``eta_star`` is that point: the true optimum may lie beyond the grid) or when no loss
      is finite (``eta_star`` NaN). When a neighbour of the minimum is not finite, ``eta_star``
      is the grid point ``eta_k``.

    >>> lrs = 2.0 ** np.arange(-6, 0)
    >>> eta, edge = optimal_learning_rate(lrs, np.exp((np.log2(lrs) + 3.25) ** 2))
    >>> round(float(np.log2(eta)), 12), edge
    (-3.25, False)
    """
    lrs = np.asarray(learning_rates, np.float64)  # (K,)
    loss = np.asarray(losses, np.float64)  # (K,)
    if lrs.ndim != 1 or lrs.shape != loss.shape or lrs.size < 3:
        raise ValueError(f"learning_rates and losses: need two (K,) arrays with K >= 3, got {lrs.shape}, {loss.shape}")
    if not np.all(np.isfinite(lrs)):
        raise ValueError("learning_rates: must be finite")
    increasing(lrs.tolist(), at_least=3, name="learning_rates", what="learning rates")
    x = np.log2(lrs)  # (K,)
    if np.any(loss[np.isfinite(loss)] <= 0):
        raise ValueError("losses: must be positive (NaN / inf for diverged runs)")
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(np.isfinite(loss), np.log(loss), np.inf)  # (K,)
    if not np.any(np.isfinite(logs)):
        return float("nan"), True
    k = int(np.argmin(logs))
    if k == 0 or k == x.size - 1:
        return float(2.0 ** x[k]), True
    (xa, xb, xc), (la, lb, lc) = x[k - 1:k + 2], logs[k - 1:k + 2]
    if not (np.isfinite(la) and np.isfinite(lc)):
        return float(2.0 ** xb), False
    left, right = xb - xa, xc - xb
    denom = 2.0 * (right * (la - lb) + left * (lc - lb))  # > 0: la > lb (k is the first minimum), lc >= lb
    vertex = xb + (right**2 * (la - lb) - left**2 * (lc - lb)) / denom
    return float(2.0 ** vertex), False


class TransferFit(NamedTuple):
    """``eta*`` per width and the fitted line ``log2 eta* = intercept + slope log2 width`` of one parameterisation.

    The line is fitted by least squares over the widths whose ``eta*`` is not at the grid edge
    (``fitted``); ``slope`` and ``intercept`` are NaN when fewer than two are.
    """

    eta_star: np.ndarray  # (W,)
    at_edge: np.ndarray  # (W,) bool
    fitted: np.ndarray  # (W,) bool
    slope: float
    intercept: float

    def predicted(self, width: float) -> float:
        """``eta*`` extrapolated along the fitted line to ``width``."""
        return float(2.0 ** (self.intercept + self.slope * math.log2(width)))


def fit_transfer(widths, learning_rates, losses) -> TransferFit:
    """``eta*`` per width and the slope of ``log2 eta*`` vs ``log2 width``; ``losses`` is ``(W, K, seeds)``.

    ``eta*`` by :func:`optimal_learning_rate` on the seed means (:func:`mean_loss`); the slope is 0
    under muP and -1 under SP with Adam in theory (Yang et al. 2022, arXiv:2203.03466).

    >>> lrs = 2.0 ** np.arange(-8, 0)
    >>> bowls = [np.exp((np.log2(lrs) + 2 + np.log2(w / 4)) ** 2)[:, None] for w in (4, 8, 16)]  # eta* = 1 / w
    >>> round(fit_transfer([4, 8, 16], lrs, np.stack(bowls)).slope, 12)
    -1.0
    """
    widths = np.asarray(widths, np.float64)  # (W,)
    if widths.ndim != 1 or widths.size == 0 or not np.all(np.isfinite(widths)) or np.any(widths <= 0):
        raise ValueError(f"widths: must be a non-empty 1-D array of positive widths, got {widths.tolist()}")
    if np.ndim(losses) != 3 or np.shape(losses)[0] != widths.size:
        raise ValueError(f"losses: must be (W, K, seeds) with W = {widths.size} widths, got shape {np.shape(losses)}")
    means = mean_loss(losses)  # (W, K)
    found = [optimal_learning_rate(learning_rates, row) for row in means]
    eta = np.array([e for e, _ in found])  # (W,)
    edge = np.array([a for _, a in found], bool)  # (W,)
    fitted = ~edge & np.isfinite(eta)
    slope = intercept = float("nan")
    if fitted.sum() >= 2:  # least-squares line (the same np.polyfit as learnmech.atlas.metrics.linear_fit)
        slope, intercept = (float(v) for v in np.polyfit(np.asarray(np.log2(widths[fitted]), float),
                                                         np.asarray(np.log2(eta[fitted]), float), 1))
    return TransferFit(eta, edge, fitted, slope, intercept)


class LearningRateTransfer(BaseEstimator):
    """:func:`fit_transfer` as a scikit-learn estimator (it has no settings).

    ``fit(widths, learning_rates, losses)`` (``losses`` ``(W, K, seeds)``, NaN / inf diverged) sets
    ``eta_star_`` ``(W,)``, ``at_edge_``, ``fitted_``, ``slope_``, ``intercept_`` and ``result_``
    (the :class:`TransferFit`); ``predict(width)`` extrapolates ``eta*`` along the fitted line.
    """

    def fit(self, widths, learning_rates, losses) -> "LearningRateTransfer":
        self.result_ = fit_transfer(widths, learning_rates, losses)
        self.eta_star_, self.at_edge_, self.fitted_ = self.result_.eta_star, self.result_.at_edge, self.result_.fitted
        self.slope_, self.intercept_ = self.result_.slope, self.result_.intercept
        return self

    def predict(self, width) -> np.ndarray:
        """``eta*`` at ``width`` (scalar or array) along ``log2 eta* = intercept + slope log2 width``."""
        if not hasattr(self, "slope_"):
            raise RuntimeError("LearningRateTransfer: call fit(...) first")
        return 2.0 ** (self.intercept_ + self.slope_ * np.log2(np.asarray(width, np.float64)))
