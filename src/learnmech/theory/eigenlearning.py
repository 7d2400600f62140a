"""Eigenlearning: kernel ridge regression learning curves from the kernel eigenspectrum.

Contract: every function here is a pure prediction in float64 numpy, with no training, I/O or
randomness. Sample sizes ``n`` and ridges ``delta`` broadcast against each other (any shapes
``S``); eigenvalues are one 1-D array ``(M,)`` shared by every problem.

Setting (Simon, Dickens, Karkada & DeWeese 2021, arXiv:2110.03922; Canatar, Bordelon & Pehlevan
2021, arXiv:2006.13198; Jacot, Simsek, Spadaro, Hongler & Gabriel 2020, arXiv:2003.12798). A kernel
``K`` has the Mercer decomposition ``K(x, x') = sum_i lambda_i phi_i(x) phi_i(x')`` with respect to
the data distribution ``mu`` (``E_mu[phi_i phi_j] = delta_ij``). The target is
``f*(x) = sum_i v_i phi_i(x)``; ``n`` training points are drawn i.i.d. from ``mu`` and labelled
``y = f*(x) + noise`` with noise variance ``eps^2``. Kernel ridge regression predicts

    f(x) = K(x, X) (K(X, X) + delta I)^{-1} y,

i.e. the ridge ``delta`` is added to the ``n x n`` Gram matrix itself (equivalently, it minimises
``(1/2n) sum_i (f(x_i) - y_i)^2 + (delta / 2n) ||f||_K^2`` — the loss normalisation of this project).
The theory's predictions, averaged over training sets:

- effective regularisation ``kappa > 0`` solves ``sum_i lambda_i/(lambda_i + kappa) + delta/kappa = n``;
- learnability of eigenfunction ``i``: ``L_i = lambda_i/(lambda_i + kappa)``;
- overfitting coefficient ``E0 = n / (n - sum_i L_i^2)``;
- test MSE against noisy test labels ``E0 (sum_i (1 - L_i)^2 v_i^2 + eps^2)``
  (against the clean target subtract ``eps^2``);
- train MSE ``(delta / (n kappa))^2 * test MSE``.

These are asymptotic (large ``n`` and many eigenmodes, "omniscient risk" of Simon et al.); at
``n`` of order one the fluctuations they neglect are of relative size ``O(1/n)``.

Ridgeless edge case. With ``delta = 0`` a positive ``kappa`` exists only while ``n`` is below the
number ``M+`` of positive eigenvalues. For ``n >= M+`` (a finite-rank kernel, under-parameterised)
:func:`effective_regularization` returns ``kappa = 0``: every learnable mode has ``L_i = 1`` (modes
with ``lambda_i = 0`` have ``L_i = 0``), ``E0 = n / (n - M+)`` is the least-squares noise
amplification, infinite at the interpolation threshold ``n = M+``, and the train MSE factor
``delta/(n kappa)`` takes its ``delta -> 0`` limit ``1 - M+/n``. These are the limits of the formulas
as ``delta -> 0+`` and reproduce ordinary least squares on ``M+`` features (train MSE
``eps^2 (1 - M+/n)`` exactly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "EigenlearningPrediction",
    "KernelEigensystem",
    "effective_regularization",
    "kernel_eigensystem",
    "learnabilities",
    "learning_curve",
    "overfitting_coefficient",
    "target_coefficients",
]

_LOG_TOL = 1e-14  # stop when log(kappa) moves less than this: ~1e-14 relative in kappa
_MAX_ITER = 200  # Newton with bisection fallback; bisection alone needs < 80 steps at _LOG_TOL


def _eigenvalues(eigenvalues) -> np.ndarray:
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if lam.ndim != 1 or lam.size == 0:
        raise ValueError(f"eigenvalues: must be a non-empty 1-D array, got shape {lam.shape}")
    if not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues: must be finite")
    if lam.min() < 0:
        raise ValueError(f"eigenvalues: must be >= 0, got {lam.min():.6g}")
    return lam


def _n_and_ridge(n, ridge) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(n, dtype=np.float64)
    ridge = np.asarray(ridge, dtype=np.float64)
    if not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise ValueError(f"n: must be > 0, got {np.min(n) if n.size else n}")
    if not np.all(np.isfinite(ridge)) or np.any(ridge < 0):
        raise ValueError(f"ridge: must be >= 0, got {np.min(ridge) if ridge.size else ridge}")
    return np.broadcast_arrays(n, ridge)


def _residual(u, lam, n, ridge):
    """``g(u) = sum_i lambda_i/(lambda_i + e^u) + delta e^{-u} - n`` and ``dg/du`` (problems on axis 0)."""
    kappa = np.exp(u)  # (P,)
    learn = lam / (lam + kappa[:, None])  # (P, M)
    g = learn.sum(-1) + ridge / kappa - n  # (P,)
    dg = -(learn * (1.0 - learn)).sum(-1) - ridge / kappa  # (P,), always < 0
    return g, dg


def _lower_bound(lam_desc, n, ridge):
    """A ``kappa`` at which ``g >= 0``: ``delta/n``, or ``max_{m > n} lambda_m (m - n)/n``.

    The second bound holds because the ``m`` largest eigenvalues alone give
    ``sum_i L_i >= m lambda_m / (lambda_m + kappa) = n`` at ``kappa = lambda_m (m - n)/n``.
    """
    m = np.arange(1, lam_desc.size + 1, dtype=np.float64)  # (M,)
    cand = lam_desc * (m - n[:, None]) / n[:, None]  # (P, M), negative where m <= n
    spectral = cand.max(-1, initial=0.0)  # (P,)
    return np.maximum(spectral, ridge / n)  # (P,), > 0 for every solvable problem


def _solve(lam, n, ridge):
    """Safeguarded Newton in ``u = log kappa`` inside a shrinking bracket ``[lo, hi]`` (1-D problems)."""
    lam_desc = np.sort(lam)[::-1]
    hi = np.log((lam.sum() + ridge) / n)  # g(hi) < 0 since L_i < lambda_i / kappa
    lo = np.log(_lower_bound(lam_desc, n, ridge))
    u = 0.5 * (lo + hi)
    active = np.ones(n.shape, dtype=bool)
    for _ in range(_MAX_ITER):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        g, dg = _residual(u[idx], lam, n[idx], ridge[idx])
        lo[idx] = np.where(g >= 0, u[idx], lo[idx])  # g decreases in u: the root lies above u
        hi[idx] = np.where(g <= 0, u[idx], hi[idx])
        step = u[idx] - g / dg
        bad = ~((step > lo[idx]) & (step < hi[idx]))
        new = np.where(bad, 0.5 * (lo[idx] + hi[idx]), step)
        done = (np.abs(new - u[idx]) < _LOG_TOL) | (hi[idx] - lo[idx] < _LOG_TOL) | (g == 0)
        u[idx] = np.where(g == 0, u[idx], new)
        active[idx[done]] = False
    return np.exp(u)


def effective_regularization(eigenvalues, n, ridge=0.0) -> np.ndarray:
    """Effective regularisation ``kappa`` of kernel ridge regression.

    Solves ``sum_i lambda_i / (lambda_i + kappa) + delta / kappa = n`` for ``kappa > 0``
    (Simon et al. 2021, arXiv:2110.03922, eq. for the "constant" kappa; Canatar et al. 2021,
    arXiv:2006.13198). The left side decreases strictly in ``kappa``; the root is bracketed by
    ``(sum_i lambda_i + delta)/n`` from above and by ``delta/n`` or a spectral bound from below,
    and found by Newton's method in ``log kappa`` with bisection as the safeguard (relative
    accuracy ~1e-14).

    Args:
      eigenvalues: ``lambda_i >= 0``, shape ``(M,)``, eigenvalues of the kernel's integral operator
        with respect to the data distribution (any order).
      n: number of training samples, any shape, ``> 0`` (need not be an integer).
      ridge: ``delta >= 0`` added to the Gram matrix, broadcast against ``n``.

    Returns:
      ``kappa`` of the broadcast shape of ``n`` and ``ridge``. Ridgeless problems with ``n`` at or
      above the number of positive eigenvalues have no positive root: ``kappa = 0`` there (see the
      module docstring).

    >>> float(effective_regularization([1.0, 1.0], 1))  # 2 / (1 + kappa) = 1
    1.0
    >>> k = effective_regularization([1.0, 1.0], 2, ridge=2.0)  # 2/(1+k) + 2/k = 2: k^2 = k + 1
    >>> bool(np.isclose(k, (1 + 5**0.5) / 2, rtol=1e-14))
    True
    """
    lam = _eigenvalues(eigenvalues)
    n, ridge = _n_and_ridge(n, ridge)
    shape = n.shape
    n, ridge = n.ravel(), ridge.ravel()
    kappa = np.zeros(n.shape)
    solvable = (ridge > 0) | (n < np.count_nonzero(lam > 0))
    if solvable.any():
        kappa[solvable] = _solve(lam, n[solvable], ridge[solvable])
    return kappa.reshape(shape)


def learnabilities(eigenvalues, kappa) -> np.ndarray:
    """Learnabilities ``L_i = lambda_i / (lambda_i + kappa)``, shape ``kappa.shape + (M,)``.

    ``L_i`` is the fraction of eigenfunction ``phi_i`` that kernel ridge regression recovers on
    average (Simon et al. 2021, arXiv:2110.03922). At ``kappa = 0`` modes with ``lambda_i > 0`` have
    ``L_i = 1`` and modes with ``lambda_i = 0`` have ``L_i = 0`` (they lie outside the RKHS).

    >>> learnabilities([3.0, 1.0, 0.0], 1.0).tolist()
    [0.75, 0.5, 0.0]
    """
    lam = _eigenvalues(eigenvalues)
    kappa = np.asarray(kappa, dtype=np.float64)[..., None]  # S + (1,)
    if np.any(kappa < 0):
        raise ValueError(f"kappa: must be >= 0, got {kappa.min():.6g}")
    denom = lam + kappa  # S + (M,)
    return np.divide(lam, denom, out=np.zeros(denom.shape), where=denom > 0)


def overfitting_coefficient(eigenvalues, kappa, n) -> np.ndarray:
    """Overfitting coefficient ``E0 = n / (n - sum_i L_i^2)``, broadcast over ``kappa`` and ``n``.

    ``E0 >= 1`` multiplies both the unlearned target power and the noise in the test MSE
    (Simon et al. 2021, arXiv:2110.03922). It is ``inf`` where ``n <= sum_i L_i^2``, which happens
    only ridgeless at the interpolation threshold ``n = M+`` (``kappa = 0``).

    >>> float(overfitting_coefficient([1.0, 1.0], 1.0, 1))  # L = (1/2, 1/2)
    2.0
    """
    n = np.asarray(n, dtype=np.float64)
    if np.any(n <= 0):
        raise ValueError(f"n: must be > 0, got {n.min():.6g}")
    learn = learnabilities(eigenvalues, kappa)
    denom = n - np.sum(learn**2, axis=-1)
    return np.divide(n, denom, out=np.full(np.broadcast(n, denom).shape, np.inf), where=denom > 0)


@dataclass(frozen=True)
class EigenlearningPrediction:
    """Predicted learning curve; every field has the broadcast shape of ``n`` and ``ridge``.

    ``test_mse`` is against noisy test labels (subtract ``outputs * noise`` for the clean target);
    ``train_mse`` is against the noisy training labels. MSEs sum the squared error over outputs.
    """

    n: np.ndarray
    ridge: np.ndarray
    kappa: np.ndarray
    learnability_sum: np.ndarray
    e0: np.ndarray
    test_mse: np.ndarray
    train_mse: np.ndarray


def _target_power(coefficients, m: int) -> tuple[np.ndarray, int]:
    v = np.asarray(coefficients, dtype=np.float64)
    if v.ndim not in (1, 2) or v.shape[0] != m:
        raise ValueError(f"coefficients: must be (M,) or (M, outputs) with M = {m}, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("coefficients: must be finite")
    v2 = v**2 if v.ndim == 1 else np.sum(v**2, axis=1)  # (M,), sum over outputs of v_{i,o}^2
    return v2, 1 if v.ndim == 1 else v.shape[1]


def learning_curve(eigenvalues, coefficients, n, ridge=0.0, noise=0.0) -> EigenlearningPrediction:
    """Predicted test and train MSE of kernel ridge regression (eigenlearning).

    ``test MSE = E0 (sum_i (1 - L_i)^2 v_i^2 + eps^2)``, ``train MSE = (delta/(n kappa))^2 test MSE``
    with ``kappa``, ``L_i`` and ``E0`` as in :func:`effective_regularization`,
    :func:`learnabilities` and :func:`overfitting_coefficient` (Simon et al. 2021,
    arXiv:2110.03922, eqs. for the test and train risk; Canatar et al. 2021, arXiv:2006.13198).
    The train factor is evaluated as ``delta/(n kappa) = 1 - sum_i L_i / n`` where ``kappa = 0``
    (its ridgeless limit, see the module docstring).

    Args:
      eigenvalues: ``lambda_i``, ``(M,)``.
      coefficients: target coefficients ``v_i = E_mu[phi_i f*]``, ``(M,)`` or ``(M, outputs)``;
        with several outputs ``v_i^2`` means ``sum_o v_{i,o}^2`` (the MSE sums over outputs).
      n: training-set sizes, any shape.
      ridge: ``delta`` added to the Gram matrix, broadcast against ``n``.
      noise: label-noise variance ``eps^2`` per output (each output gets independent noise, so
        the noise term is ``outputs * eps^2``).

    Returns:
      :class:`EigenlearningPrediction`.

    >>> p = learning_curve([1.0, 1.0], [1.0, 0.0], 1)  # kappa = 1, L = 1/2, E0 = 2
    >>> float(p.test_mse), float(p.train_mse)
    (0.5, 0.0)
    """
    lam = _eigenvalues(eigenvalues)
    v2, outputs = _target_power(coefficients, lam.size)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise: must be >= 0 (a variance), got {noise}")
    n, ridge = _n_and_ridge(n, ridge)
    kappa = effective_regularization(lam, n, ridge)
    learn = learnabilities(lam, kappa)  # S + (M,)
    lsum = learn.sum(-1)
    e0 = overfitting_coefficient(lam, kappa, n)
    bracket = np.sum((1.0 - learn) ** 2 * v2, axis=-1) + outputs * noise
    with np.errstate(invalid="ignore"):
        test = np.where(bracket > 0, e0 * bracket, 0.0)  # nothing to get wrong: 0 even when E0 = inf
        factor = np.where(kappa > 0, ridge / (n * np.where(kappa > 0, kappa, 1.0)), np.clip(1.0 - lsum / n, 0.0, None))
        train = np.where(factor > 0, factor**2 * test, 0.0)  # interpolation: 0 even when test = inf
    return EigenlearningPrediction(n=n, ridge=ridge, kappa=kappa, learnability_sum=lsum, e0=e0,
                                   test_mse=test, train_mse=train)


class KernelEigensystem(NamedTuple):
    """Integral-operator eigenvalues ``(N,)`` (descending) and eigenfunctions on the pool ``(N, N)``."""

    eigenvalues: np.ndarray
    eigenfunctions: np.ndarray


def kernel_eigensystem(gram) -> KernelEigensystem:
    """Eigenvalues and eigenfunctions of a kernel with respect to a pool's uniform measure.

    For a pool ``x_1..x_N`` the measure ``mu = (1/N) sum_j delta_{x_j}`` turns the integral operator
    ``(T g)(x) = E_mu[K(x, x') g(x')]`` into the matrix ``K/N``. With ``K = U diag(s) U^T``:
    ``lambda_i = s_i / N`` and ``phi_i(x_j) = sqrt(N) U_{ji}``, so that ``E_mu[phi_i phi_k] =
    (1/N) sum_j phi_i(x_j) phi_k(x_j) = delta_ik`` and ``K(x_j, x_k) = sum_i lambda_i phi_i(x_j) phi_i(x_k)``.
    The theory fed these eigenpairs then refers to that uniform measure: training sets are i.i.d.
    draws from the pool (with replacement) and the population is the pool. Eigenvalues are sorted
    in decreasing order and clipped at 0 (roundoff makes the smallest slightly negative).

    Args:
      gram: ``(N, N)`` symmetric positive semi-definite Gram matrix ``K(x_j, x_k)`` of the pool.

    >>> es = kernel_eigensystem(np.array([[2.0, 0.0], [0.0, 4.0]]))
    >>> es.eigenvalues.tolist()
    [2.0, 1.0]
    """
    k = np.asarray(gram, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] == 0:
        raise ValueError(f"gram: must be a square (N, N) matrix, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError("gram: must be finite")
    size = k.shape[0]
    s, u = np.linalg.eigh(0.5 * (k + k.T))  # ascending; symmetrised against roundoff
    s, u = s[::-1], u[:, ::-1]  # (N,), (N, N) descending
    return KernelEigensystem(np.clip(s / size, 0.0, None), np.sqrt(size) * u)


def target_coefficients(eigenfunctions, y) -> np.ndarray:
    """Target coefficients on a pool: ``v_i = E_mu[phi_i y] = (1/N) sum_j phi_i(x_j) y_j``.

    Args:
      eigenfunctions: ``(N, M)`` values ``phi_i(x_j)`` (from :func:`kernel_eigensystem`).
      y: targets on the pool, ``(N,)`` or ``(N, outputs)``.

    Returns:
      ``(M,)`` or ``(M, outputs)``.
    """
    phi = np.asarray(eigenfunctions, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if phi.ndim != 2 or y.ndim not in (1, 2) or y.shape[0] != phi.shape[0]:
        raise ValueError(f"y: must be (N,) or (N, outputs) with N = {phi.shape[0]}, got shape {y.shape}")
    return phi.T @ y / phi.shape[0]
