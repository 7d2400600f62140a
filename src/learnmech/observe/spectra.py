"""Spectra of data and kernels, and target power per eigenmode.

API (float64 numpy throughout; inputs may be numpy or jax arrays):

- ``covariance_spectrum(x, *, center=True) -> (min(n, d),)``: eigenvalues of the covariance
  ``(1/n) Xc^T Xc`` of the ``(n, d)`` data, descending, clipped at 0 (the other ``d - n`` are 0).
- ``kernel_spectrum(gram) -> KernelEigensystem(eigenvalues (N,), eigenfunctions (N, N))``:
  eigenvalues of ``gram / N`` (the pool's uniform measure), descending, and eigenfunctions on the
  pool normalised as ``(1/N) sum_j phi_i(x_j)^2 = 1`` (this is
  :func:`learnmech.theory.eigenlearning.kernel_eigensystem`).
- ``linear_kernel_eigensystem(x, *, center=True)``: the same for the linear kernel
  ``K(x, x') = x . x'`` computed through the ``(d, d)`` covariance (cheap when ``d < n``); only the
  ``r`` modes with positive eigenvalue: eigenvalues ``(r,)`` = the covariance spectrum, and
  eigenfunctions ``(N, r)``.
- ``target_power(eigenfunctions_or_eigensystem, y) -> (M,)``: ``v_k^2`` summed over outputs, with
  ``v_k = (1/N) sum_j phi_k(x_j) y_j`` (:func:`learnmech.theory.eigenlearning.target_coefficients`);
  over a complete eigenbasis ``sum_k v_k^2 = ||y||^2 / N`` (Parseval on the pool).
- ``cumulative_power(power, total=None) -> (M,)``: the unexplained fraction
  ``1 - sum_{i <= k} v_i^2 / total`` (``total`` defaults to ``sum v^2``); for ``v_k^2 ~ k^{-b}`` it
  decays as ``k^{1 - b}``, a smoother quantity to fit than the per-mode power.
- ``predicted_learning_curve_exponent(a, b) = min(b - 1, 2a)`` (defined in
  :mod:`learnmech.theory.spectral`, re-exported here).

Conventions: ranks are 1-based (``k = 1`` is the largest eigenvalue); power laws are written
``lambda_k ~ C k^{-a}`` with decay exponent ``a > 0``. A spectrum's power law is fitted by the
estimator :class:`learnmech.fit.PowerLaw` (fit/ sits above observe/).
"""

from __future__ import annotations

import numpy as np

from learnmech.theory.eigenlearning import KernelEigensystem, kernel_eigensystem, target_coefficients
from learnmech.theory.spectral import predicted_learning_curve_exponent

__all__ = [
    "KernelEigensystem",
    "covariance_spectrum",
    "cumulative_power",
    "kernel_spectrum",
    "linear_kernel_eigensystem",
    "predicted_learning_curve_exponent",
    "target_power",
]


def _data(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x: must be a non-empty (n, d) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x: must be finite")
    return x


def covariance_spectrum(x, *, center: bool = True) -> np.ndarray:
    """Eigenvalues of the data covariance ``C = (1/n) Xc^T Xc``, descending, float64.

    ``Xc`` is ``X`` minus its column means when ``center`` (else ``X`` itself: the second-moment
    matrix). When ``n < d`` the nonzero eigenvalues are taken from the ``(n, n)`` Gram matrix
    ``(1/n) Xc Xc^T``, which has the same nonzero spectrum. Roundoff negatives are clipped to 0.

    Args:
      x: ``(n, d)`` data, rows are examples.

    Returns:
      ``(min(n, d),)`` eigenvalues in decreasing order (the remaining ``d - n`` when ``n < d`` are 0).

    >>> covariance_spectrum(np.array([[1.0, 0.0], [-1.0, 0.0]])).tolist()
    [1.0, 0.0]
    """
    x = _data(x)
    n, d = x.shape
    xc = x - x.mean(axis=0, keepdims=True) if center else x  # (n, d)
    m = xc.T @ xc / n if d <= n else xc @ xc.T / n  # (d, d) or (n, n)
    s = np.linalg.eigvalsh(0.5 * (m + m.T))[::-1]  # (min(n, d),) descending
    return np.clip(s, 0.0, None)


def kernel_spectrum(gram) -> KernelEigensystem:
    """Eigenvalues of ``gram / N`` (descending) and eigenfunctions ``sqrt(N) U`` on the pool.

    The integral operator of the kernel under the pool's uniform measure; see
    :func:`learnmech.theory.eigenlearning.kernel_eigensystem` (this is that function).
    """
    return kernel_eigensystem(gram)


def linear_kernel_eigensystem(x, *, center: bool = True, rtol: float = 1e-12) -> KernelEigensystem:
    """Eigensystem of the linear kernel ``K(x, x') = xc . xc'`` on the pool, via the covariance.

    With ``C = (1/N) Xc^T Xc = E diag(lambda) E^T``, the Gram ``Xc Xc^T / N`` has the same
    positive eigenvalues, with unit eigenvectors ``u_k = Xc e_k / sqrt(N lambda_k)``; the
    eigenfunctions of :func:`kernel_spectrum` are ``phi_k = sqrt(N) u_k = Xc e_k / sqrt(lambda_k)``.
    Only modes with ``lambda_k > rtol * lambda_1`` are returned (the others carry no kernel
    weight and their eigenfunctions are not determined by ``E``).

    Args:
      x: ``(N, d)`` data.

    Returns:
      ``KernelEigensystem`` with eigenvalues ``(r,)`` descending and eigenfunctions ``(N, r)``.
    """
    x = _data(x)
    xc = x - x.mean(axis=0, keepdims=True) if center else x  # (N, d)
    c = xc.T @ xc / x.shape[0]  # (d, d)
    s, e = np.linalg.eigh(0.5 * (c + c.T))
    s, e = s[::-1], e[:, ::-1]  # (d,), (d, d) descending
    keep = s > rtol * max(s[0], 0.0)
    if not keep.any():
        raise ValueError("x: the data have zero covariance")
    s, e = s[keep], e[:, keep]  # (r,), (d, r)
    return KernelEigensystem(s, xc @ e / np.sqrt(s))  # (r,), (N, r)


def target_power(eigenfunctions_or_eigensystem, y) -> np.ndarray:
    """Target power per mode ``v_k^2`` (summed over outputs), ``v_k = (1/N) sum_j phi_k(x_j) y_j``.

    Args:
      eigenfunctions_or_eigensystem: ``(N, M)`` eigenfunction values on the pool, or a
        :class:`KernelEigensystem` (its ``eigenfunctions`` are used).
      y: ``(N,)`` or ``(N, outputs)`` targets on the pool.

    Returns:
      ``(M,)``. Over a complete orthonormal basis (``M = N``) it sums to ``||y||^2 / N``.
    """
    phi = getattr(eigenfunctions_or_eigensystem, "eigenfunctions", eigenfunctions_or_eigensystem)
    v = target_coefficients(phi, y)  # (M,) or (M, outputs)
    return v**2 if v.ndim == 1 else np.sum(v**2, axis=1)


def cumulative_power(power, total: float | None = None) -> np.ndarray:
    """Unexplained target fraction ``1 - sum_{i <= k} v_i^2 / total`` at each rank ``k`` (1-based).

    ``total`` defaults to ``sum_i v_i^2`` (then the last entry is 0 up to roundoff); pass
    ``||y||^2 / N`` to count the power outside the given modes as unexplained. For
    ``v_k^2 ~ k^{-b}`` the tail decays as ``k^{1 - b}``.

    >>> cumulative_power([2.0, 1.0, 1.0]).tolist()
    [0.5, 0.25, 0.0]
    """
    p = np.asarray(power, dtype=np.float64).ravel()
    tot = float(p.sum()) if total is None else float(total)
    if not tot > 0:
        raise ValueError(f"total: must be > 0, got {tot}")
    tail = np.cumsum(p[::-1])[::-1] - p  # (M,) sum_{i > k} v_i^2, without cancellation
    return np.clip((tail + (tot - p.sum())) / tot, 0.0, None)  # (M,)
