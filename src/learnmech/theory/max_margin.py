"""The implicit bias of gradient descent on separable data: the hard-margin direction and its asymptotics.

Setting (Soudry, Hoffer, Nacson, Gunasekar & Srebro 2018, arXiv:1710.10345, JMLR 19). Inputs ``x_i``
(``X``, ``(n, d)``), labels ``y_i = +-1``; write ``z_i = y_i x_i`` (``Z``, ``(n, d)``). A homogeneous
linear model (no bias) trained by gradient descent on the mean logistic loss

    ``L(w) = (1/n) sum_i l(z_i . w)``,  ``l(u) = log(1 + e^{-u})``,  ``w_{k+1} = w_k - eta grad L(w_k)``.

Conventions. Time is the step count ``k`` (the ``t`` of Soudry et al.); the loss is the *mean* over
examples (the project's convention) where the paper sums, so the paper's step ``eta`` is our ``eta / n``
and the quantity that enters every formula is ``time_scale = eta / n``. ``L`` is ``beta``-smooth with
``beta = sigma_max(X)^2 / (4 n)`` (``l'' <= 1/4``; :func:`logistic_smoothness`), and the theorem needs
``eta < 2 / beta`` (their ``eta < 2 beta^{-1} sigma_max^{-2}(X)`` for the sum, ``beta = 1/4``).

Hard margin (their Theorem 3): ``w_hat = argmin ||w||^2`` s.t. ``z_i . w >= 1``; its dual is
``max_{alpha >= 0} sum alpha - (1/2) ||Z^T alpha||^2`` with ``w_hat = Z^T alpha`` and complementary
slackness ``alpha_i (z_i . w_hat - 1) = 0``, hence ``||w_hat||^2 = sum_i alpha_i``. The support
vectors are the ``i`` with ``alpha_i > 0``. :func:`hard_margin` solves it exactly.

Asymptotics (derived here; the balance is the one behind the paper's ``w_tilde``,
``eta exp(-x_n . w_tilde) = alpha_n``). Try ``w_k = w_hat log k + r + o(1)``. Then
``w_{k+1} - w_k = w_hat / k + O(k^-2)``, while ``-eta grad L(w_k) = (eta/n) sum_i e^{-z_i.r} k^{-z_i.w_hat} z_i
(1 + O(1/k))`` (``-l'(u) = e^{-u} (1 + O(e^{-u}))``). Support vectors have ``z_i . w_hat = 1``; every other
example has margin ``m_i > 1`` and contributes ``O(k^{-m_i})``. Matching the ``1/k`` terms,
``sum_SV (eta/n) e^{-z_i . r} z_i = w_hat = sum_SV alpha_i z_i``, which holds with

    ``z_i . r = log(eta/n) - log(alpha_i)``  for every support vector ``i``,

and fixes ``r`` on the span of the support vectors (uniquely when they are linearly independent:
:func:`residual_limit`). The rest of ``r`` (orthogonal to that span) keeps the initial condition and the
integrated pull of the non-support examples, which decays like ``k^{-(m_i - 1)}``; it has no closed form.
No continuum limit was taken: the matching is that of the discrete steps. Two consequences:

- norm: ``w_hat`` lies in the support span, so ``w_hat . r = sum_SV alpha_i z_i . r`` is closed form
  whatever the rest of ``r`` is, and ``||w_k|| = ||w_hat|| (log k + c) + O(1/log k)`` with
  ``c = log(eta/n) - sum alpha_i log alpha_i / sum alpha_i`` (:func:`norm_offset`). The ratio
  ``||w_k|| / log k = ||w_hat|| (1 + c / log k)`` approaches ``||w_hat||`` only like ``1/log k``: within a
  relative ``tol`` only from ``log k >= |c| / tol`` (:func:`log10_steps_for_norm_ratio`);
- angle: with ``r = c w_hat + r_perp``, ``tan(theta_k) = ||r_perp|| / (||w_hat|| (log k + c))``, so
  ``theta_k log k -> a = ||r_perp|| / ||w_hat||``: the ``1/log t`` decay. The support-span part of ``r``
  gives ``a >= a_SV = ||P_perp r_SV|| / ||w_hat||`` (:func:`angle_coefficient`; the projection off
  ``w_hat`` commutes with the one onto the support span, which contains ``w_hat``), with equality when
  the support vectors span ``R^d``.

Regime: the non-support terms are smaller than the support ones by ``k^{-(m_2 - 1)}``, ``m_2`` the
smallest non-support margin (:func:`margin_gap` returns ``m_2 - 1``), so the form above describes ``w_k``
once ``(m_2 - 1) log k >> 1``. When a support vector has ``alpha_i = 0`` (degenerate data, measure zero)
``r`` may grow like ``log log k`` (Soudry et al., Theorem 3 and its appendix).

>>> import numpy as np
>>> fit = hard_margin(np.array([[2.0, 0.0], [-3.0, -1.0]]), np.array([1.0, -1.0]))
>>> np.round(fit.w, 6).tolist(), fit.support.tolist()
([0.5, 0.0], [0])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.optimize

__all__ = ["HardMargin", "angle_coefficient", "hard_margin", "kkt_residuals", "log10_steps_for_norm_ratio",
           "logistic_smoothness", "margin_gap", "norm_offset", "predicted_angle", "predicted_norm_ratio",
           "residual_limit"]

SUPPORT_TOL = 1e-9  # alpha_i > SUPPORT_TOL * max(alpha): a support vector (NNLS leaves exact zeros elsewhere)


class HardMargin(NamedTuple):
    """The hard-margin solution: ``w`` ``(d,)``, dual ``alpha`` ``(n,)`` (zero off the support), the
    support indices ``(s,)`` and every margin ``z_i . w`` ``(n,)`` (1 on the support)."""

    w: np.ndarray
    alpha: np.ndarray
    support: np.ndarray
    margins: np.ndarray


def _signed(X, y) -> np.ndarray:
    """``Z = y[:, None] * X`` ``(n, d)`` in float64 (``ValueError`` for labels other than +-1 or bad shapes)."""
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64).ravel()
    if X.ndim != 2 or X.shape[0] != y.size or y.size == 0:
        raise ValueError(f"X, y: need X (n, d) and y (n,), got {X.shape} and {y.shape}")
    if not np.all(np.abs(y) == 1.0):
        raise ValueError("y: labels must be +1 or -1")
    return y[:, None] * X


def _ldp(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(w, alpha)`` of ``min ||w||`` s.t. ``Z w >= 1`` by Lawson & Hanson's least-distance programming.

    Lawson & Hanson 1974 (*Solving Least Squares Problems*, ch. 23): with ``E = [Z^T; 1^T]`` ``(d+1, n)``
    and ``f = e_{d+1}``, the NNLS solution ``u >= 0`` of ``min ||E u - f||`` (scipy.optimize.nnls, an
    exact active-set method) gives the residual ``res = E u - f``; the constraints are infeasible iff
    ``res = 0``, else ``w = -res[:d] / res[d]`` and the dual is ``alpha = u / (-res[d])``.
    """
    n, d = Z.shape
    E = np.vstack([Z.T, np.ones((1, n))])  # (d + 1, n)
    f = np.zeros(d + 1)
    f[-1] = 1.0
    u, _ = scipy.optimize.nnls(E, f, maxiter=100 * (n + d))
    res = E @ u - f
    # at the solution -res[d] = 1 / (1 + ||w||^2): below 1e-12 means no w, or one of margin < ~1e-6 |x|
    if -res[-1] <= 1e-12:
        raise ValueError("X, y: the data are not linearly separable through the origin (no bias)")
    return -res[:d] / res[-1], u / (-res[-1])


def hard_margin(X, y, *, support_tol: float = SUPPORT_TOL) -> HardMargin:
    """The homogeneous hard-margin SVM ``w_hat = argmin ||w||^2`` s.t. ``y_i x_i . w >= 1``, exactly.

    Solved as a least-distance program with scipy's NNLS (:func:`_ldp`), then polished on its support
    ``S``: ``Z_S Z_S^T alpha_S = 1`` (every support margin exactly 1, least squares when the support
    vectors are dependent), kept when it stays feasible. KKT residuals ~1e-15 on the claim's data
    (:func:`kkt_residuals`). Soudry et al. 2018 (arXiv:1710.10345), Theorem 3; module docstring.

    Raises ``ValueError`` when no ``w`` separates the data through the origin.
    """
    Z = _signed(X, y)
    w, alpha = _ldp(Z)
    support = np.flatnonzero(alpha > support_tol * alpha.max())
    Zs = Z[support]  # (s, d)
    a_s = np.linalg.lstsq(Zs @ Zs.T, np.ones(support.size), rcond=None)[0]
    polished = np.zeros_like(alpha)
    polished[support] = a_s
    w_p = Z.T @ polished
    if np.all(a_s > 0) and np.all(Z @ w_p >= 1.0 - 1e-12):
        w, alpha = w_p, polished
    else:  # the NNLS solution, its below-tolerance entries set to zero
        alpha = np.where(np.isin(np.arange(alpha.size), support), alpha, 0.0)
        w = Z.T @ alpha
    return HardMargin(w=w, alpha=alpha, support=support, margins=Z @ w)


def kkt_residuals(X, y, w, alpha) -> dict[str, float]:
    """The KKT residuals of ``(w, alpha)`` for ``min (1/2)||w||^2`` s.t. ``z_i . w >= 1`` (``z_i = y_i x_i``).

    ``stationarity = ||w - Z^T alpha|| / ||w||``, ``primal = max(0, max_i (1 - z_i . w))``,
    ``dual = max(0, -min alpha)``, ``complementarity = max_i |alpha_i (z_i . w - 1)| / max(alpha)``;
    ``max`` is the largest of the four. All are zero at the solution.
    """
    Z = _signed(X, y)
    w, alpha = np.asarray(w, np.float64), np.asarray(alpha, np.float64)
    m = Z @ w
    out = {"stationarity": float(np.linalg.norm(w - Z.T @ alpha) / np.linalg.norm(w)),
           "primal": float(max(0.0, np.max(1.0 - m))),
           "dual": float(max(0.0, -np.min(alpha))),
           "complementarity": float(np.max(np.abs(alpha * (m - 1.0))) / np.max(np.abs(alpha)))}
    out["max"] = max(out.values())
    return out


def logistic_smoothness(X) -> float:
    """``beta = sigma_max(X)^2 / (4 n)``: the smoothness of the mean logistic loss (``l'' <= 1/4``).

    GD is stable for ``eta < 2 / beta`` (Soudry et al. 2018, Theorem 3, rescaled to the mean loss).
    """
    X = np.asarray(X, np.float64)
    return float(np.linalg.norm(X, 2) ** 2 / (4 * X.shape[0]))


def _time_scale(time_scale: float) -> float:
    if not np.isfinite(time_scale) or time_scale <= 0:
        raise ValueError(f"time_scale: must be a positive number (eta / n), got {time_scale}")
    return float(time_scale)


def norm_offset(fit: HardMargin, time_scale: float) -> float:
    """``c = log(eta/n) - sum_i alpha_i log alpha_i / sum_i alpha_i`` (support vectors only).

    ``||w_k|| = ||w_hat|| (log k + c) + O(1/log k)`` for GD at step ``eta`` on the mean logistic loss of
    ``n`` examples, ``time_scale = eta / n`` (module docstring: ``c = w_hat . r / ||w_hat||^2``).
    """
    a = fit.alpha[fit.support]
    return float(np.log(_time_scale(time_scale)) - np.sum(a * np.log(a)) / np.sum(a))


def residual_limit(X, y, fit: HardMargin, time_scale: float) -> np.ndarray:
    """``r_SV`` ``(d,)``: the minimum-norm ``r`` with ``z_i . r = log(eta/n) - log alpha_i`` on the support.

    The part of ``r = lim (w_k - w_hat log k)`` that lies in the span of the support vectors (Soudry et al.
    2018's ``w_tilde`` plus ``w_hat log(eta/n)``); all of ``r`` when the support vectors span ``R^d``.
    """
    Z = _signed(X, y)[fit.support]  # (s, d)
    rhs = np.log(_time_scale(time_scale)) - np.log(fit.alpha[fit.support])
    return np.linalg.lstsq(Z, rhs, rcond=None)[0]


def angle_coefficient(X, y, fit: HardMargin, time_scale: float) -> float:
    """``a_SV = ||P_perp r_SV|| / ||w_hat||``: ``theta_k log k -> a >= a_SV`` (equality if the SVs span ``R^d``).

    ``P_perp`` projects off ``w_hat``; ``r_SV`` is :func:`residual_limit`. Module docstring.
    """
    r = residual_limit(X, y, fit, time_scale)
    u = fit.w / np.linalg.norm(fit.w)
    return float(np.linalg.norm(r - u * (u @ r)) / np.linalg.norm(fit.w))


def margin_gap(fit: HardMargin) -> float:
    """``m_2 - 1``: the smallest margin of a non-support example minus one (``inf`` if every example is one).

    The asymptotic form holds once ``(m_2 - 1) log k >> 1`` (module docstring).
    """
    rest = np.delete(fit.margins, fit.support)
    return float(np.min(rest) - 1.0) if rest.size else float("inf")


def _log_steps(steps) -> np.ndarray:
    k = np.asarray(steps, np.float64)
    if np.any(k <= 1):
        raise ValueError("steps: must all be > 1 (log k > 0)")
    return np.log(k)


def predicted_norm_ratio(steps, offset: float) -> np.ndarray:
    """``||w_k|| / (||w_hat|| log k) = 1 + c / log k`` to first order in ``1/log k`` (``offset`` = ``c``)."""
    return 1.0 + offset / _log_steps(steps)


def predicted_angle(steps, offset: float, coefficient: float) -> np.ndarray:
    """``theta_k = arctan(a / (log k + c))`` (radians), NaN where ``log k + c <= 0`` (before the asymptotics).

    ``a`` = ``coefficient`` (:func:`angle_coefficient`), ``c`` = ``offset`` (:func:`norm_offset`).
    """
    s = _log_steps(steps) + offset
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > 0, np.arctan(coefficient / s), np.nan)


def log10_steps_for_norm_ratio(offset: float, tol: float) -> float:
    """``log10 k`` from which ``|||w_k|| / log k - ||w_hat||| <= tol ||w_hat||``: ``log k = |c| / tol``."""
    if not 0 < tol < 1:
        raise ValueError(f"tol: must lie in (0, 1), got {tol}")
    return float(abs(offset) / tol / np.log(10.0))
