"""Kernel ridge regression: the predictor of an infinitely wide network trained on MSE.

Contract: pure float64 numpy/scipy functions of Gram matrices, no randomness. Targets may be
``(n,)`` or ``(n, outputs)``; predictions keep that trailing shape.

The predictor is

    f(x) = K(x, X) (K(X, X) + delta I)^{-1} y,

with the ridge ``delta`` added to the ``n x n`` train Gram matrix (the minimiser of
``(1/2n) sum_i (f(x_i) - y_i)^2 + (delta / 2n) ||f||_K^2``). With the neural tangent kernel, ``delta = 0``
and zero initial output, it is the function an infinitely wide network reaches when trained to
convergence by gradient flow on the MSE (Jacot, Gabriel & Hongler 2018, arXiv:1806.07572; Lee et al.
2019, arXiv:1902.06720).

Ridge zero and singular Gram matrices (e.g. a training set with repeated points) use the
pseudo-inverse, ``K(x, X) K(X, X)^+ y``: the ``delta -> 0+`` limit of the ridge predictor, since a null
vector ``u`` of ``K(X, X)`` has ``||sum_j u_j K(., x_j)||_K^2 = u^T K u = 0`` and so does not contribute.
Eigenvalues below ``n * machine epsilon`` times the largest are treated as zero.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = ["kernel_ridge", "kernel_ridge_path"]


def _check(k_train, y_train, k_test):
    k = np.asarray(k_train, dtype=np.float64)
    y = np.asarray(y_train, dtype=np.float64)
    kt = np.asarray(k_test, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"k_train: must be a square (n, n) matrix, got shape {k.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != k.shape[0]:
        raise ValueError(f"y_train: must be (n,) or (n, outputs) with n = {k.shape[0]}, got shape {y.shape}")
    if kt.ndim != 2 or kt.shape[1] != k.shape[0]:
        raise ValueError(f"k_test: must be (m, n) with n = {k.shape[0]}, got shape {kt.shape}")
    return k, y, kt


def _ridges(ridge) -> np.ndarray:
    r = np.asarray(ridge, dtype=np.float64)
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"ridge: must be >= 0, got {np.min(r) if r.size else r}")
    return r


def kernel_ridge(k_train, y_train, k_test, ridge=0.0) -> np.ndarray:
    """Kernel ridge regression predictions ``K(x, X) (K(X, X) + delta I)^{-1} y`` on test points.

    A scalar ridge ``delta > 0`` is one Cholesky solve; ``delta = 0`` a minimum-norm least-squares
    solve (pseudo-inverse, see the module docstring). An array of ridges is delegated to
    :func:`kernel_ridge_path` (one eigendecomposition for all of them).

    Args:
      k_train: ``(n, n)`` Gram matrix ``K(X, X)`` of the training inputs.
      y_train: ``(n,)`` or ``(n, outputs)`` training targets.
      k_test: ``(m, n)`` cross-kernel ``K(x_test, X)``.
      ridge: ``delta >= 0``, a scalar or an array of shape ``R``.

    Returns:
      ``(m,)`` / ``(m, outputs)`` predictions, with ``R`` prepended for an array of ridges.

    >>> np.round(kernel_ridge(np.eye(2), np.array([1.0, 2.0]), np.eye(2), ridge=1.0), 12).tolist()
    [0.5, 1.0]
    """
    k, y, kt = _check(k_train, y_train, k_test)
    r = _ridges(ridge)
    if r.ndim > 0:
        return kernel_ridge_path(k, y, kt, r)
    if r > 0:
        try:
            alpha = scipy.linalg.solve(k + r * np.eye(k.shape[0]), y, assume_a="pos")
        except np.linalg.LinAlgError:  # not numerically positive definite: the eigen-path is robust
            return kernel_ridge_path(k, y, kt, r)
    else:
        alpha = scipy.linalg.lstsq(k, y, cond=k.shape[0] * np.finfo(np.float64).eps)[0]
    return kt @ alpha


def kernel_ridge_path(k_train, y_train, k_test, ridges) -> np.ndarray:
    """Kernel ridge predictions for many ridges from one eigendecomposition of ``K(X, X)``.

    With ``K(X, X) = U diag(s) U^T``: ``f_delta(x) = K(x, X) U diag(1/(s + delta)) U^T y``; for
    ``delta = 0`` the factor is ``1/s`` on eigenvalues above ``n * eps * max(s)`` and 0 below
    (the pseudo-inverse).

    Args:
      k_train: ``(n, n)``; y_train: ``(n,)`` or ``(n, outputs)``; k_test: ``(m, n)``.
      ridges: ``delta >= 0`` of any shape ``R``.

    Returns:
      ``R + (m,)`` or ``R + (m, outputs)``.
    """
    k, y, kt = _check(k_train, y_train, k_test)
    r = _ridges(ridges)
    s, u = np.linalg.eigh(0.5 * (k + k.T))  # (n,), (n, n)
    cutoff = k.shape[0] * np.finfo(np.float64).eps * max(float(np.abs(s).max(initial=0.0)), np.finfo(np.float64).tiny)
    shifted = s + r.reshape(-1, 1)  # (R, n)
    keep = (r.reshape(-1, 1) > 0) | (s > cutoff)  # (R, n)
    inv = np.divide(1.0, shifted, out=np.zeros(shifted.shape), where=keep & (shifted > 0))  # (R, n)
    proj = u.T @ (y if y.ndim == 2 else y[:, None])  # (n, outputs)
    kt_u = kt @ u  # (m, n)
    pred = np.einsum("mk,rk,ko->rmo", kt_u, inv, proj)  # (R, m, outputs)
    pred = pred if y.ndim == 2 else pred[..., 0]
    return pred.reshape(r.shape + pred.shape[1:])
