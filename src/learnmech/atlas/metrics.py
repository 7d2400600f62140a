"""Agreement measures shared by the judges: R^2, crossing times, log-log slopes, log-time averages."""

from __future__ import annotations

import math

from typing import Callable, Mapping, Sequence

import numpy as np

from learnmech.atlas.keys import key
from learnmech.increasing import increasing

__all__ = [
    "r_squared",
    "crossing_time",
    "log_slope",
    "linear_fit",
    "steps_to_target",
    "log_window_mean",
    "log_average",
    "log_discrepancy",
    "per_seed",
    "worst",
]


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


def steps_to_target(t, excess, target: float) -> float:
    """First time ``excess(t)`` falls through ``target``, interpolated linearly in ``log excess``; NaN if never.

    The steps-to-target of McCandlish et al. (2018, arXiv:1812.06162): on an exponential decay
    ``excess = c exp(-t / tau)`` the interpolation is exact. A NaN sample (a diverged run) counts as
    never below the target.

    >>> round(steps_to_target([0, 1, 2], [1.0, 0.1, 0.01], 10**-1.5), 12)  # exponential decay: exact
    1.5
    """
    excess = np.asarray(excess, np.float64)
    log_excess = np.full(excess.shape, np.inf)  # NaN (diverged) stays +inf: never below the target
    np.log(np.maximum(excess, 1e-300), out=log_excess, where=~np.isnan(excess))
    return crossing_time(t, -log_excess, -math.log(target))


def log_window_mean(t, y, ratio: float) -> np.ndarray:
    """Centred moving mean of ``y`` (last axis) over the samples of ``t`` within ``[t_j / ratio, t_j ratio]``.

    The window keeps as many samples on each side of ``t_j`` as the sparser side has (the nearest
    ones), so it stays centred where the samples are consecutive integers (a one-sided window on a
    falling curve would shift its crossing) and holds ``t_j`` alone when one side is empty. On
    log-spaced samples it averages ``2k + 1`` neighbours, unbiased for a straight line in ``log t``
    and, on windows of ``ratio = 1.2``, within ~1% for a curved learning curve.

    >>> log_window_mean([0, 1, 2, 3, 4, 8], [5.0, 1.0, 2.0, 3.0, 4.0, 8.0], 2.0).tolist()  # t = 4: {3, 4, 8}
    [5.0, 1.0, 2.0, 3.0, 5.0, 8.0]
    """
    t = np.asarray(t, np.float64)
    y = np.asarray(y, np.float64)
    out = y.copy()
    for j, tj in enumerate(t):
        below = np.flatnonzero((t >= tj / ratio) & (t < tj))
        above = np.flatnonzero((t > tj) & (t <= tj * ratio))
        k = min(below.size, above.size)
        if k:
            window = np.concatenate([below[below.size - k:], [j], above[:k]])
            out[..., j] = y[..., window].mean(axis=-1)
    return out


def log_average(e: np.ndarray, values: np.ndarray) -> float:
    """``int v d(log e) / int d(log e)`` by the trapezoid rule (the value itself for one point).

    ``e`` ``(T,)`` increasing and positive, ``values`` ``(T,)`` on those points.

    >>> log_average(np.array([1.0, 2.0, 8.0]), np.array([1.0, 3.0, 3.0]))  # (2 log 2 + 6 log 2) / (3 log 2)
    2.6666666666666665
    """
    if e.size == 1:
        return float(values[0])
    x = np.log(e)
    return float(np.sum((values[1:] + values[:-1]) * np.diff(x)) / 2 / (x[-1] - x[0]))


def log_discrepancy(examples, loss_k, loss_1) -> float:
    """Normalised area between two log-loss curves: ``int |log L_k - log L_1| d(log e) / int d(log e)``.

    The agreement measure of the linear-scaling rule (Goyal et al. 2017, arXiv:1706.02677):
    ``examples`` ``(T,)`` increasing and positive, ``loss_k`` and ``loss_1`` ``(T,)`` on those points;
    the trapezoid rule in ``log e`` (:func:`log_average`). A NaN (a diverged member, the project's
    convention), an infinite or a non-positive value of ``loss_k`` makes ``D`` infinite. For
    ``L_k = c L_1``, ``D = |log c|``.

    >>> round(log_discrepancy([1.0, 2.0, 8.0], np.array([2.0, 4.0, 1.0]), np.array([1.0, 2.0, 0.5])), 12)  # log 2
    0.69314718056
    """
    e, lk, l1 = (np.asarray(a, np.float64) for a in (examples, loss_k, loss_1))
    if not (e.shape == lk.shape == l1.shape) or e.ndim != 1 or e.size == 0:
        raise ValueError(f"need three (T,) arrays, got {e.shape}, {lk.shape}, {l1.shape}")
    increasing(e.tolist(), at_least=1, name="examples", what="example counts")
    if not np.all(np.isfinite(l1) & (l1 > 0)):
        raise ValueError("loss_1: the reference curve must be finite and positive")
    if not np.all(np.isfinite(lk) & (lk > 0)):
        return float("inf")
    return log_average(e, np.abs(np.log(lk) - np.log(l1)))


def per_seed(infos: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Every seed's numbers as summary scalars ``seed/<j>/<name>``, ``infos[j]`` the numbers of seed ``j``."""
    return {key("seed", j, name): value for j, info in enumerate(infos) for name, value in info.items()}


def worst(judged: Sequence[Mapping[str, float]], name: str, pick: Callable = max) -> float:
    """``pick`` (``max`` or ``min``: the worst direction of the rule) of ``name`` over the judged seeds; NaN if none."""
    return float(pick([s[name] for s in judged])) if judged else float("nan")
