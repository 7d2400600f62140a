"""Finding the plateau-then-drop structure of a loss curve.

A *drop* is a maximal run of observation intervals over which the loss falls at least
``threshold`` times faster than a power law of exponent 1, i.e. where
``-d ln L / d ln t >= threshold``; on a plateau this rate is near zero. Working with the
logarithm of the loss makes a late, small drop (a weak mode) as visible as an early, large one,
and the final convergence merges with the last drop instead of being counted on its own.
Each drop's time is where the plain rate ``-dL/dt`` peaks inside it (vertex of a parabola
through the three samples around the peak, in ``t``); for a logistic mode this peak sits a
fixed offset from ``t_half``, whatever the initial scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Drops", "find_drops"]


@dataclass(frozen=True)
class Drops:
    """Detected drops: their times, and one plateau time before, between and after them."""

    times: np.ndarray  # (k,) time of each drop
    plateaus: np.ndarray  # (k + 1,) flattest observation time before/between/after drops

    @property
    def count(self) -> int:
        return int(self.times.size)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges ``[a, b)`` where ``mask`` is true."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _peak_time(t: np.ndarray, rate: np.ndarray, lo: int, hi: int) -> float:
    i = lo + int(np.argmax(rate[lo:hi]))
    if 0 < i < rate.size - 1:
        x, y = t[i - 1 : i + 2], rate[i - 1 : i + 2]
        a, b, _ = np.polyfit(x, y, 2)
        if a < 0:
            return float(np.clip(-b / (2 * a), x[0], x[-1]))
    return float(t[i])


def find_drops(t, loss, *, threshold: float = 1.0, floor: float = 1e-12) -> Drops:
    """Drops of a sampled loss curve ``loss(t)`` (``t > 0`` increasing); see the module docstring.

    ``floor`` (relative to the first loss) keeps ``ln L`` finite once the loss reaches rounding.
    """
    t, loss = np.asarray(t, float), np.asarray(loss, float)
    keep = t > 0
    t, loss = t[keep], np.maximum(loss[keep], floor * loss[keep][0])
    mid = np.sqrt(t[1:] * t[:-1])  # (T-1,) interval midpoints in log time
    log_rate = -np.diff(np.log(loss)) / np.diff(np.log(t))  # -d ln L / d ln t
    rate = -np.diff(loss) / np.diff(t)  # -dL/dt
    runs = _runs(log_rate >= threshold)
    times = np.array([_peak_time(mid, rate, a, b) for a, b in runs])
    bounds = [0] + [x for run in runs for x in run] + [mid.size]
    plateaus = []
    for a, b in zip(bounds[::2], bounds[1::2]):
        plateaus.append(mid[a + int(np.argmin(log_rate[a:b]))] if b > a else (mid[min(a, mid.size - 1)]))
    return Drops(times=times, plateaus=np.array(plateaus))
