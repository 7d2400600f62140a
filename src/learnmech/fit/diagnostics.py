"""When a scaling-law fit cannot be trusted: structured diagnostics, each with its stated rule.

Contract: pure functions of a fitted point (natural parameters, fit coordinates), the fitted data
and the intervals; they return :class:`Diagnostic` entries (plain Python). Callers of
:func:`local_intervals` switch ``jax.enable_x64`` on.

Severities. ``"unidentified"``: the data do not determine the law; ``"not_converged"``: the
optimiser did not reach a minimum (:mod:`learnmech.fit.convergence` gives the reason). Either
withholds the compute-optimal table (:func:`withheld_reason`). ``"warning"``: read with care, the
table is still given. ``"note"``: information, not a warning (e.g. converged to float64 precision).

Rules (``L_min`` the smallest measured loss; an *exponent* is a parameter named ``alpha...`` or
``beta...``; a *scale* is any other parameter with a positive value):

* ``at_bound`` (unidentified): the parameter ran to a bound of its parameterisation, or the data
  cannot tell it from that bound (:func:`learnmech.fit.identification.unidentified`).
* ``basins`` (unidentified): other optima within 1% of the best objective (same module).
* ``floor_below_data`` (unidentified): the irreducible loss ``E < E_FLOOR_FRACTION L_min``: the
  data put no floor under the loss; ``E`` (and with it the exponents, which absorb the missing
  curvature) is an extrapolation, not a measurement.
* ``runaway_exponent`` (unidentified): an exponent above ``EXPONENT_CAP = 1.5``, beyond every
  published loss exponent in model or data size (Kaplan et al. 2020, arXiv:2001.08361: 0.076,
  0.095; Hoffmann et al. 2022, arXiv:2203.15556: 0.34, 0.28; Besiroglu et al. 2024,
  arXiv:2404.10102: 0.35, 0.37; Muennighoff et al. 2023, arXiv:2305.16264: 0.35) by a factor >= 2:
  a steep term trading against a vanishing ``E`` or coefficient.
* ``wide_interval`` (unidentified), for the local intervals of every fit and the bootstrap's when
  run: a scale whose 95% interval spans more than ``MAX_DECADES = 2`` decades (``hi / lo > 100``);
  an exponent whose interval contains 0 (its sign not determined) or reaches above ``EXPONENT_CAP``
  (its size not bounded); any interval with an end that is not finite.
* ``floor_interval`` (warning): ``E``'s interval reaches below ``E_FLOOR_FRACTION L_min``: the data
  do not rule out ``E -> 0``.
* ``bootstrap_failures`` (warning): some refits had no finite objective.

**Local intervals** (:func:`local_intervals`; no resampling, so every fit has them): the
Gauss-Newton covariance of the fit coordinates on the log-loss residuals ``r_i``,
``Cov = s^2 (G^T G)^-1`` with ``G_ij = d log L_hat_i / d theta_j`` and ``s^2 = sum r_i^2 / (n - k)``
(Seber & Wild 1989, *Nonlinear Regression*, sec. 2.1.2), carried to each natural parameter by the
delta method (in ``log p`` for a scale, so the interval stays positive), with Student's ``t`` on
``n - k`` degrees of freedom. A direction of ``theta`` that the data do not move
(``G^T G`` eigenvalue ``<= RCOND`` times the largest) gives an infinite interval to every
parameter it moves. The Huber fit is not least squares; the interval is that of a fit whose
residuals were Gaussian with the measured spread, a statement about what the data constrain near
the optimum, not a replacement for the bootstrap.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from learnmech.fit.scaling_solver import padded_points

__all__ = ["E_FLOOR_FRACTION", "EXPONENT_CAP", "MAX_DECADES", "RCOND", "SEVERITIES", "Diagnostic",
           "bootstrap_diagnostics", "fit_diagnostics", "floor_diagnostics", "identification_diagnostics",
           "interval_diagnostics", "is_exponent", "local_intervals", "warnings_of", "withheld_reason"]

E_FLOOR_FRACTION = 0.01  # E below this fraction of the smallest loss: no floor in the data
EXPONENT_CAP = 1.5  # an exponent above this has run away (twice the largest published loss exponent)
MAX_DECADES = 2.0  # a scale's 95% interval spanning more decades than this: not determined
RCOND = 1e-12  # G^T G eigenvalues below this fraction of the largest: a direction the data do not move
SEVERITIES = ("unidentified", "not_converged", "warning", "note")
_EXPONENT = re.compile(r"^(alpha|beta)(_\w+)?$")


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a fit: ``code`` (the rule), ``severity`` (``SEVERITIES``), the parameters
    it concerns, a sentence, a short ``tag`` for tables, and the numbers behind it."""

    code: str
    severity: str
    params: tuple[str, ...]
    message: str
    tag: str = ""
    values: dict[str, float] = field(default_factory=dict)


def is_exponent(name: str) -> bool:
    """Whether a parameter is an exponent (named ``alpha...`` or ``beta...``)."""
    return bool(_EXPONENT.match(name))


def warnings_of(diagnostics) -> tuple[Diagnostic, ...]:
    """The entries that are warnings (every severity but ``"note"``)."""
    return tuple(d for d in diagnostics if d.severity != "note")


def withheld_reason(diagnostics) -> str:
    """Why a compute-optimal table must not be given from this fit, or ``""`` when it may.

    One phrase per rule that fired, naming its parameters, e.g. ``"the fit is not identified (E at
    a bound; A, B: 95% interval wider than the data support)"``.
    """
    blocking = [d for d in diagnostics if d.severity in ("unidentified", "not_converged")]
    if not blocking:
        return ""
    by_code: dict[str, list[str]] = {}
    for d in blocking:
        names = by_code.setdefault(d.code, [])
        names.extend(p for p in d.params if p not in names)
    parts = []
    for code, names in by_code.items():
        phrase = _WITHHELD_PHRASES.get(code, code)
        parts.append(f"{', '.join(names)}: {phrase}" if names else phrase)
    what = "not identified" if any(d.severity == "unidentified" for d in blocking) else "not converged"
    return f"the fit is {what} ({'; '.join(parts)})"


_WITHHELD_PHRASES = {"at_bound": "at a bound", "basins": "other basins within 1% of the best",
                     "floor_below_data": "far below the smallest loss", "runaway_exponent": "runaway exponent",
                     "wide_interval": "95% interval wider than the data support", "not_converged": "not converged"}


# ------------------------------------------------------------------ point rules


def identification_diagnostics(params: dict, at_bound, n_basins: int, fixed=()) -> list[Diagnostic]:
    """``at_bound`` parameters, other basins, and runaway exponents of a fitted point (module docstring)."""
    out = [Diagnostic("at_bound", "unidentified", (p,), f"{p} = {params[p]:.3g} ran to a bound of its "
                      "parameterisation or beyond any value the data resolve (at the bound the objective is within "
                      "the convergence tolerance of the fit's): the data cannot tell it from that bound",
                      "at a bound", {"value": float(params[p])}) for p in at_bound]
    if n_basins:
        word = "basin reaches" if n_basins == 1 else "basins reach"
        out.append(Diagnostic("basins", "unidentified", (), f"{n_basins} other {word} an objective within 1% of "
                              "the best: the data do not single out one set of parameters",
                              f"{n_basins} other basin{'s' if n_basins > 1 else ''} within 1%",
                              {"count": float(n_basins)}))
    for p, v in params.items():
        if is_exponent(p) and p not in at_bound and p not in fixed and math.isfinite(v) and v > EXPONENT_CAP:
            out.append(Diagnostic("runaway_exponent", "unidentified", (p,), f"{p} = {v:.3g} exceeds {EXPONENT_CAP:g}, "
                                  "twice the largest published loss exponent: a steep term trading against a "
                                  "vanishing floor or coefficient, not a measured exponent", "runaway",
                                  {"value": float(v), "cap": EXPONENT_CAP}))
    return out


def floor_diagnostics(params: dict, loss_min: float, skip=()) -> list[Diagnostic]:
    """``floor_below_data``: ``E < E_FLOOR_FRACTION L_min`` (forms with an ``E``; ``skip``: already flagged)."""
    e = params.get("E")
    if e is None or "E" in skip or not math.isfinite(e) or e >= E_FLOOR_FRACTION * loss_min:
        return []
    return [Diagnostic("floor_below_data", "unidentified", ("E",), f"E = {e:.3g} is below {E_FLOOR_FRACTION:.0%} of "
                       f"the smallest loss ({loss_min:.4g}): the data put no floor under the loss, so E and the "
                       "exponents that absorb the missing curvature are extrapolations", "far below the data",
                       {"value": float(e), "loss_min": float(loss_min)})]


def fit_diagnostics(params: dict, at_bound, n_basins: int, verdict, intervals: dict, loss_min: float,
                    held=()) -> tuple[Diagnostic, ...]:
    """Every rule on one fit: the point rules, then the local-interval rules on the parameters no
    point rule flagged, then convergence (``verdict``: a :class:`learnmech.fit.convergence.Convergence`);
    ``held``: parameters held fixed (never flagged)."""
    out = identification_diagnostics(params, at_bound, n_basins, fixed=held)
    out += floor_diagnostics(params, loss_min, skip=tuple(at_bound) + tuple(held))
    flagged = {p for d in out for p in d.params} | set(held)
    out += interval_diagnostics(params, intervals, loss_min, "local", skip=flagged)
    numbers = {"grad_norm": verdict.grad_norm, "tol": verdict.tol, "relative_decrease": verdict.relative_decrease}
    if not verdict.stationary:
        out.append(Diagnostic("not_converged", "not_converged", (), f"not converged: {verdict.reason}",
                              "not converged", numbers))
    elif verdict.criterion != "gradient":
        out.append(Diagnostic("converged_at_precision", "note", (), f"converged: {verdict.reason}",
                              "converged to float64 precision", numbers))
    return tuple(out)


def bootstrap_diagnostics(fit, ci: dict, loss_min: float, level: float, n_failed: int) -> tuple[Diagnostic, ...]:
    """The interval rules on a bootstrap's intervals of ``fit`` (a ``FitResult``); parameters held,
    or flagged by a point rule, are left out; failed refits are a warning."""
    point = {p for d in fit.diagnostics if d.code in ("at_bound", "floor_below_data", "runaway_exponent")
             for p in d.params}
    out = interval_diagnostics(fit.params, ci, loss_min, "bootstrap", level, skip=point | set(fit.fixed))
    if n_failed:
        out.append(Diagnostic("bootstrap_failures", "warning", (), f"{n_failed} bootstrap refits had no finite "
                              "objective and were left out of the intervals", f"{n_failed} refits failed",
                              {"n_failed": float(n_failed)}))
    return tuple(out)


# ------------------------------------------------------------------ interval rules


def interval_diagnostics(params: dict, intervals: dict, loss_min: float, source: str, level: float = 0.95,
                         skip=()) -> list[Diagnostic]:
    """``wide_interval`` and ``floor_interval`` entries for ``intervals`` ``{param: (lo, hi)}``
    (``source``: ``"local"`` or ``"bootstrap"``; ``skip``: parameters already flagged or held)."""
    out = []
    pct = f"{level:.0%}"
    for p, (lo, hi) in intervals.items():
        if p in skip:
            continue
        shown = f"{source} {pct} interval {lo:.3g} .. {hi:.3g}"
        numbers = {"lo": float(lo), "hi": float(hi)}
        if not (math.isfinite(lo) and math.isfinite(hi)):
            out.append(Diagnostic("wide_interval", "unidentified", (p,), f"{p}: {shown} is not finite: the data do "
                                  f"not determine {p}", f"{source} CI not finite", numbers))
        elif is_exponent(p):
            if lo <= 0 <= hi:
                out.append(Diagnostic("wide_interval", "unidentified", (p,), f"{p}: {shown} contains 0: the data "
                                      f"do not determine the sign of {p} (whether the loss falls with its input)",
                                      f"{source} CI contains 0", numbers))
            elif hi > EXPONENT_CAP:
                out.append(Diagnostic("wide_interval", "unidentified", (p,), f"{p}: {shown} reaches above "
                                      f"{EXPONENT_CAP:g}: the data do not bound the size of {p}",
                                      f"{source} CI above {EXPONENT_CAP:g}", numbers))
        elif params.get(p, -1.0) > 0:
            decades = math.log10(hi / lo) if lo > 0 else math.inf
            if decades > MAX_DECADES:
                out.append(Diagnostic("wide_interval", "unidentified", (p,), f"{p}: {shown} spans {decades:.3g} "
                                      f"decades (> {MAX_DECADES:g}): wider than the data support", f"{source} CI "
                                      f"{decades:.3g} decades", numbers | {"decades": decades}))
            elif p == "E" and lo < E_FLOOR_FRACTION * loss_min:
                out.append(Diagnostic("floor_interval", "warning", ("E",), f"E: {shown} reaches below "
                                      f"{E_FLOOR_FRACTION:.0%} of the smallest loss ({loss_min:.4g}): the data do not "
                                      "rule out E -> 0", f"{source} CI reaches E ~ 0", numbers))
    return out


@functools.lru_cache(maxsize=64)
def _value_and_jacobian(form):
    """Jitted ``(log_loss, d log_loss / d theta)`` of ``form`` (compiled once per form and point bucket)."""
    return jax.jit(lambda theta, logs: (form.log_loss(theta, logs), jax.jacfwd(form.log_loss)(theta, logs)))


def local_intervals(form, theta, logs, log_y, level: float = 0.95, skip=()) -> dict[str, tuple[float, float]]:
    """Gauss-Newton ``level`` intervals of the natural parameters at ``theta`` (module docstring).

    ``logs``, ``log_y``: the fitted points (log inputs, log losses); ``skip``: parameters left out
    (held ones). Returns ``{param: (lo, hi)}``, infinite ends where the data do not constrain it.
    """
    theta = np.asarray(theta, dtype=np.float64)
    log_y = np.asarray(log_y, dtype=np.float64)
    n = log_y.size
    plogs, _, _ = padded_points({k: np.asarray(v, np.float64) for k, v in logs.items()}, log_y, np.ones(n))
    jlogs = {k: jnp.asarray(v) for k, v in plogs.items()}  # padded: one compiled program per size bucket
    value, jac = _value_and_jacobian(form)(jnp.asarray(theta), jlogs)
    resid = np.asarray(value)[:n] - log_y  # (n,)
    jac = np.asarray(jac)[:n]  # (n, k)
    k = jac.shape[1]
    s2 = float(resid @ resid) / max(1, n - k)
    lam, vec = np.linalg.eigh(jac.T @ jac) if np.all(np.isfinite(jac)) else (np.zeros(k), np.eye(k))
    null = lam <= RCOND * max(float(lam.max()), 0.0)
    t = float(scipy.stats.t.ppf(0.5 + level / 2, max(1, n - k)))
    natural = form.to_natural(theta)
    out = {}
    for p, value in natural.items():
        if p in skip:
            continue
        scale = not is_exponent(p) and value > 0
        u = _natural_gradient(form, theta, p, scale)  # (k,)
        proj = vec.T @ u  # (k,) components along the eigenvectors
        unmoved = np.any(np.abs(proj[null]) > 1e-8 * (np.abs(u).max() + 1e-300))  # it moves along a null direction
        if not (math.isfinite(value) and np.all(np.isfinite(u))) or unmoved:
            out[p] = (0.0 if scale else -math.inf, math.inf)
            continue
        half = t * math.sqrt(s2 * float(np.sum(proj[~null] ** 2 / lam[~null])))
        wide = half >= 709.0  # e^half past the largest float: an interval without an upper end
        out[p] = ((value * math.exp(-half), math.inf if wide else value * math.exp(half)) if scale
                  else (value - half, value + half))
    return out


def _natural_gradient(form, theta: np.ndarray, p: str, log_scale: bool) -> np.ndarray:
    """``d p / d theta`` (``d log p`` for a scale) by central differences, ``h = 1e-6 max(1, |theta_j|)``."""
    def value(th):
        v = form.to_natural(th)[p]
        return math.log(v) if log_scale else v

    grad = np.empty(theta.size)
    for j in range(theta.size):
        h = 1e-6 * max(1.0, abs(theta[j]))
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        try:
            grad[j] = (value(up) - value(down)) / (2 * h)
        except (ValueError, OverflowError, ZeroDivisionError):
            grad[j] = math.nan
    return grad
