"""Observation schedules: the steps at which the trainer stops to record observables."""

from __future__ import annotations

import numpy as np

__all__ = ["log_schedule", "linear_schedule", "validate_schedule"]


def log_schedule(total_steps: int, points: int = 100, *, include_zero: bool = True) -> np.ndarray:
    """About ``points`` integer steps spaced evenly in ``log(step)`` from 1 to ``total_steps``.

    Rounding merges the first few points, so fewer may come back; ``0`` (the initial state)
    is prepended when ``include_zero``. The last step is always ``total_steps``.

    >>> log_schedule(1000, 4).tolist()
    [0, 1, 10, 100, 1000]
    """
    if total_steps < 1 or points < 1:
        raise ValueError("total_steps and points must be >= 1")
    steps = np.unique(np.round(np.logspace(0.0, np.log10(total_steps), points)).astype(np.int64))
    steps[-1] = total_steps
    return np.concatenate([[0], steps]) if include_zero else steps


def linear_schedule(total_steps: int, every: int) -> np.ndarray:
    """Steps ``0, every, 2 every, ...`` and ``total_steps``."""
    if every < 1:
        raise ValueError("every must be >= 1")
    return np.unique(np.append(np.arange(0, total_steps + 1, every), total_steps))


def validate_schedule(steps) -> np.ndarray:
    """Return ``steps`` as a strictly increasing int64 array of non-negative steps."""
    steps = np.asarray(steps, dtype=np.int64).ravel()
    if steps.size == 0 or steps[0] < 0 or np.any(np.diff(steps) <= 0):
        raise ValueError("schedule: observation steps must be non-negative and strictly increasing")
    return steps
