"""Is a fitted scaling law identified? Other basins of the objective, and parameters that run away.

Contract: pure functions of a form, its objective ``J`` (the Huber objective of
:mod:`learnmech.fit.scaling_fit`, evaluated by :func:`learnmech.fit.scaling_solver.value_and_grad`)
and the polished optima of one fit; results are plain Python. Callers switch ``jax.enable_x64`` on.

**Basins.** Polished optima whose fit coordinates agree within ``BASIN_TOL`` (largest absolute
difference over the coordinates; optima polished into one basin agree to ~1e-7 on the published
tables, and the distinct basins met there lie >= 0.05 apart) are one basin, represented by its
lowest member. Every basin
other than the best whose ``J`` is at most ``(1 + BASIN_RTOL) J_best`` is reported: a law whose
objective has another basin that close is not identified by the data, whatever the optimiser says.

**Unidentified parameters.** With the other coordinates at the optimum ``theta*``, move coordinate
``k`` to each bound of its parameterisation, ``theta_k = -LIMIT`` and ``+LIMIT`` (``e^700 ~ 1e304``:
for a log-coordinate the parameter is then 0 or infinite to float64 precision; a non-finite ``J``
there counts as ``+inf``). Coordinate ``k`` is *unidentified* when

    min_{s = +-1} J(theta*, theta_k = s LIMIT) - J(theta*) <= tol,

``tol`` the objective change that a gradient at the convergence tolerance makes over one unit of a
fit coordinate (``GRAD_TOL * scale`` of :mod:`learnmech.fit.scaling_fit`): the data cannot tell the
fitted value from the bound, or the bound is better. For the data-constrained law's ``R*``
(Muennighoff et al. 2023, arXiv:2305.16264, eqs. 5-6) ``R* -> infinity`` is ``D' = D`` (``N' = N``:
repeated tokens, excess parameters lose no value); the rule flags ``R*`` exactly when it lies so
far beyond the repetition counts ``R`` of the data (``D'`` changes by ``~R / 2R*`` relative) that
infinity fits as well. For an exponent the bounds are ``+-700`` themselves (a term ``A x^-700``
vanishes for ``x > 1``). A
coordinate whose natural value is not finite is at a bound and unidentified too. A coordinate is
reported by the natural parameters that it alone moves (``A`` for ``a = log A``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

from learnmech.fit.scaling_solver import padded_points, value_and_grad

__all__ = ["BASIN_RTOL", "BASIN_TOL", "LIMIT", "Basin", "basins", "close_basins", "distinct", "unidentified"]

BASIN_TOL = 1e-3  # fit coordinates (max abs difference) within which two optima are one basin
BASIN_RTOL = 0.01  # other basins are reported when their objective is within 1% of the best
LIMIT = 700.0  # |theta_k| at a bound of the parameterisation: e^700 ~ 1e304, within float64


@dataclass(frozen=True)
class Basin:
    """A polished optimum: ``params`` in natural units, its objective, its fit coordinates."""

    params: dict[str, float]
    objective: float
    coords: tuple[float, ...] = field(default=(), repr=False)


def distinct(points: np.ndarray, order, count: int, tol: float = BASIN_TOL) -> list[int]:
    """The first ``count`` indices of ``order`` whose rows of ``points (m, k)`` differ by more than ``tol``
    (max abs) from every index taken before them."""
    points = np.asarray(points)
    taken = np.empty((0, points.shape[1]))  # (taken, k)
    out: list[int] = []
    for i in order:
        if len(out) == count:
            break
        if taken.shape[0] == 0 or np.min(np.max(np.abs(taken - points[i]), axis=1)) > tol:
            taken = np.vstack([taken, points[i]])
            out.append(int(i))
    return out


def basins(form, polished, ignore=()) -> list[Basin]:
    """The distinct basins among ``polished`` ``[(theta, J, |g|)]`` (sorted by ``J``), best first.

    Each basin is its lowest member. Coordinates in ``ignore`` (those unidentified at the best
    optimum) are left out of the comparison: optima that differ only along a coordinate running to
    its bound are one basin, not many. :func:`close_basins` keeps those within ``BASIN_RTOL``.
    """
    keep = [k for k in range(len(polished[0][0])) if k not in set(ignore)]
    points = np.array([np.asarray(p[0])[keep] for p in polished]).reshape(len(polished), len(keep))
    return [Basin(form.to_natural(polished[i][0]), float(polished[i][1]), tuple(map(float, polished[i][0])))
            for i in distinct(points, range(len(polished)), len(polished))]


def close_basins(found: list[Basin]) -> tuple[Basin, ...]:
    """The basins after the first whose objective is at most ``(1 + BASIN_RTOL)`` times the first's."""
    return tuple(b for b in found[1:] if b.objective <= (1 + BASIN_RTOL) * found[0].objective)


def unidentified(form, reduction: str, theta, logs, log_y, delta: float, tol: float):
    """The unidentified coordinates at ``theta`` (module docstring): ``(names, indices)``, the natural
    parameters they move (in ``to_natural`` order) and the coordinates' indices. ``logs``, ``log_y``:
    the fitted points, unpadded.
    """
    vg = value_and_grad(form, reduction)
    plogs, py, pw = padded_points(logs, np.asarray(log_y), np.ones_like(log_y))
    args = ({k: jnp.asarray(v) for k, v in plogs.items()}, jnp.asarray(py), jnp.asarray(pw), delta)

    def j(th) -> float:
        f = float(vg(jnp.asarray(th), *args)[0])
        return f if math.isfinite(f) else math.inf

    theta = np.asarray(theta, dtype=np.float64)
    at_optimum = j(theta)
    natural = form.to_natural(theta)
    flagged: set[str] = set()
    coords: list[int] = []
    for k in range(theta.size):
        moved = _moved_params(form, theta, k, natural)
        at_bound = any(not math.isfinite(natural[p]) for p in moved)
        if at_bound or min(j(_at(theta, k, bound)) for bound in (-LIMIT, LIMIT)) - at_optimum <= tol:
            flagged.update(moved)
            coords.append(k)
    return tuple(p for p in natural if p in flagged), coords


def _at(theta: np.ndarray, k: int, value: float) -> np.ndarray:
    out = theta.copy()
    out[k] = value
    return out


def _moved_params(form, theta: np.ndarray, k: int, natural: dict) -> list[str]:
    """The natural parameters that change when coordinate ``k`` alone moves by ``1e-3`` (towards 0: no overflow)."""
    th = theta.copy()
    th[k] -= math.copysign(1e-3, th[k])
    other = form.to_natural(th)
    return [p for p in natural if other[p] != natural[p] and not (math.isnan(other[p]) and math.isnan(natural[p]))]
