"""Did a scaling-law fit converge, and if not, why: the polish's stop and a stated stationarity rule.

Contract: the polish of :mod:`learnmech.fit.scaling_fit` (scipy's L-BFGS-B at tight tolerances on
the exact jax gradient, then Newton steps, as :func:`learnmech.fit.scaling_solver.polish`), but
keeping how scipy stopped (iterations used of ``MAX_ITER``, its status: limit reached or line
search failed). Callers switch ``jax.enable_x64`` on. Results are plain Python.

**Stationarity criterion.** With ``g = ||grad J||_inf`` at the returned point and the absolute
tolerance ``tol = GRAD_TOL x scale`` (:mod:`learnmech.fit.scaling_fit`), the point is stationary
when either

1. ``g <= tol`` (the gradient criterion), or
2. the objective's relative change is at float64 precision: along the steepest-descent direction
   ``d = -g / ||g||_inf``, no step ``t = 2^-j`` (``j = 0..PROBE_STEPS - 1``, coordinate units) lowers
   ``J`` by more than ``FLAT_RTOL x max(|J|, tol)``, with ``FLAT_RTOL = 1e-13`` the relative
   rounding of a float64 sum over the points. To first order no direction descends faster than
   ``-g``, so such a point is a minimum to the precision the objective is computed in: no
   optimiser, however long it ran, could move ``J`` measurably. (A Newton model is no help here:
   with ``delta = 1e-3`` most residuals sit on the linear branch of the Huber loss, where the
   Hessian jumps; the decrease is therefore measured, not predicted.)

Criterion 2 is a stopping test relative to the precision of the objective (Gill, Murray & Wright
1981, *Practical Optimization*, ch. 8). A point that meets neither is *not converged*, and
:func:`convergence` says why in words (``Convergence.reason``): the
gradient against the tolerance, the relative decrease still available along the gradient, the
iterations used against the limit, a failed line search, or a non-finite objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from learnmech.fit.scaling_solver import POLISH_ITER as MAX_ITER
from learnmech.fit.scaling_solver import objective_function, polish_with

__all__ = ["FLAT_RTOL", "MAX_ITER", "PROBE_STEPS", "Convergence", "PolishReport", "achievable_decrease", "convergence",
           "objective_function", "polish_reported"]

FLAT_RTOL = 1e-13  # relative change of J that float64 cannot resolve in a sum over the points
PROBE_STEPS = 64  # steps 1, 1/2, ..., 2^-63 along -g / ||g||_inf


@dataclass(frozen=True)
class PolishReport:
    """One polished start: the point, ``J``, ``||grad J||_inf`` and how scipy's L-BFGS-B stopped."""

    theta: np.ndarray
    objective: float
    grad_norm: float
    iterations: int  # scipy L-BFGS-B iterations used (Newton steps not counted)
    status: int  # scipy's: 0 its own tolerance met, 1 iteration/evaluation limit, 2 other (e.g. line search)
    message: str


@dataclass(frozen=True)
class Convergence:
    """The verdict of the stationarity criterion (module docstring) at one point, with the numbers."""

    stationary: bool
    criterion: str  # "gradient", "float64 precision" or "" when not stationary
    grad_norm: float
    tol: float
    decrease: float  # the largest decrease of J found along -g (0 when none)
    relative_decrease: float  # decrease / max(|J|, tol)
    reason: str  # one sentence: why it is (not) converged


def polish_reported(form, reduction: str, theta0, logs, log_y, delta: float) -> PolishReport:
    """Polish one start exactly as :func:`learnmech.fit.scaling_solver.polish`, keeping scipy's stop."""
    res, x, f, g = polish_with(objective_function(form, reduction, logs, log_y, delta), theta0)
    message = res.message.decode() if isinstance(res.message, bytes) else str(res.message)
    return PolishReport(x, float(f), float(np.max(np.abs(g))), int(res.nit), int(res.status), message)


def achievable_decrease(fun, x) -> float:
    """The largest decrease of ``J`` over the steps ``t = 2^-j`` along ``-g / ||g||_inf`` from ``x`` (``>= 0``)."""
    x = np.asarray(x, dtype=np.float64)
    f, g = fun(x)
    scale = float(np.max(np.abs(g)))
    if not (math.isfinite(f) and math.isfinite(scale)) or scale == 0:
        return 0.0
    d = -g / scale  # (k,)
    trials = [fun(x + 2.0 ** -j * d)[0] for j in range(PROBE_STEPS)]
    return max(0.0, f - min(trials))


def convergence(report: PolishReport, tol: float, fun) -> Convergence:
    """Apply the stationarity criterion (module docstring) to a polished point; ``fun`` as
    :func:`objective_function` on the same points."""
    f, g = report.objective, report.grad_norm
    if not math.isfinite(f):
        return Convergence(False, "", g, tol, math.inf, math.inf, "the objective is not finite at the optimum")
    if g <= tol:
        return Convergence(True, "gradient", g, tol, 0.0, 0.0,
                           f"|grad|_inf {g:.2g} <= tolerance {tol:.2g}")
    q = achievable_decrease(fun, report.theta)
    rel = q / max(abs(f), tol)
    if rel <= FLAT_RTOL:
        return Convergence(True, "float64 precision", g, tol, q, rel,
                           f"|grad|_inf {g:.2g} > tolerance {tol:.2g}, but no step along the gradient lowers the "
                           f"objective measurably (largest relative decrease {rel:.1e} <= {FLAT_RTOL:.0e}, float64 "
                           f"rounding): a minimum to machine precision; {_scipy_stop(report)}")
    return Convergence(False, "", g, tol, q, rel,
                       f"|grad|_inf {g:.2g} > tolerance {tol:.2g} and a step along the gradient still lowers the "
                       f"objective by {rel:.1e} of itself (> {FLAT_RTOL:.0e}); {_scipy_stop(report)}")


def _scipy_stop(report: PolishReport) -> str:
    """How the L-BFGS-B polish stopped, in words."""
    used = f"L-BFGS-B used {report.iterations} of {MAX_ITER} iterations"
    if report.status == 1:
        return f"{used}: its iteration or evaluation limit was reached ({report.message})"
    if any(word in report.message.upper() for word in ("LNSRCH", "LINE SEARCH", "ABNORMAL")):
        return f"{used} and stopped on a failed line search ({report.message})"
    return f"{used} and stopped on its own tolerance ({report.message})"
