"""Agreement measures shared by the judges: R^2, crossing times, log-log slopes."""

from __future__ import annotations

import numpy as np

__all__ = ["r_squared", "crossing_time", "log_slope", "linear_fit"]


def r_squared(measured, predicted) -> float:
    """``1 - SS_res / SS_tot`` of ``measured`` against ``predicted`` (broadcast), NaNs dropped.

    ``SS_tot`` is taken about the mean of the measurements, so a prediction that is no better
    than a constant scores 0 and a perfect one scores 1.
    """
    y, p = np.broadcast_arrays(np.asarray(measured, float), np.asarray(predicted, float))
    keep = np.isfinite(y) & np.isfinite(p)
    y, p = y[keep], p[keep]
    ss_tot = np.sum((y - y.mean()) ** 2)
    return float(1.0 - np.sum((y - p) ** 2) / ss_tot) if ss_tot > 0 else float("nan")


def crossing_time(t, u, level: float, ceiling: float | None = None) -> float:
    """First time the sampled curve ``u(t)`` rises through ``level``; NaN if it never does.

    Between the two samples that bracket the crossing, ``u`` is interpolated linearly in
    ``logit(u / ceiling)`` when a ``ceiling`` is given and both samples lie strictly between 0
    and it (a logistic curve is a straight line there, so coarse log-spaced samples still
    give the crossing accurately), and linearly in ``u`` otherwise.
    """
    t, u = np.asarray(t, float), np.asarray(u, float)
    above = np.flatnonzero(u >= level)
    if above.size == 0:
        return float("nan")
    i = above[0]
    if i == 0:
        return float(t[0])
    g = lambda v: v  # noqa: E731
    if ceiling is not None and 0 < min(u[i - 1], u[i]) and max(u[i - 1], u[i]) < ceiling:
        g = lambda v: np.log(v / (ceiling - v))  # noqa: E731
    a, b, c = g(u[i - 1]), g(u[i]), g(level)
    return float(t[i - 1] + (t[i] - t[i - 1]) * (c - a) / (b - a))


def linear_fit(x, y) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of ``y`` against ``x``."""
    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(slope), float(intercept)


def log_slope(x, y) -> float:
    """Slope of ``log y`` against ``log x`` (a power-law exponent)."""
    return linear_fit(np.log(x), np.log(y))[0]
