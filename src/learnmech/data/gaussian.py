"""Gaussian inputs with a prescribed covariance spectrum.

Contract: ``x ~ N(0, Sigma)`` with ``Sigma = B diag(lambda) B^T``, where ``lambda`` is the
spectrum (eigenvalues, length d) and ``B`` an optional (d, d) orthogonal basis (identity when
omitted). Inputs are returned as ``X`` of shape (n, d): rows are examples. Randomness comes only
from the explicit ``key``; every array has an explicit floating ``dtype`` (default float32).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["power_law_spectrum", "gaussian_inputs", "sample_covariance"]


def _float_dtype(dtype) -> jnp.dtype:
    """Return ``dtype`` as a numpy dtype after checking it is a floating type jax will keep.

    float64 needs ``jax.config.update("jax_enable_x64", True)``; without it jax would silently
    return float32, so we refuse instead of downgrading behind the caller's back.
    """
    dt = jnp.dtype(dtype)
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"dtype must be a floating type (e.g. jnp.float32), got {dt}")
    if jax.dtypes.canonicalize_dtype(dt) != dt:
        raise ValueError(
            f"dtype {dt} requested but jax_enable_x64 is off; enable it with "
            'jax.config.update("jax_enable_x64", True) or use jnp.float32'
        )
    return dt


def _typed_key(key):
    """Accept a typed key (``jax.random.key``) or a legacy uint32 key (``PRNGKey``); return a
    typed key drawing the same random stream, so jitted samplers compile once for both."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.dtype != jnp.uint32:
        raise ValueError(
            f"key must be a jax PRNG key (jax.random.key(seed)) or a legacy uint32 key, "
            f"got dtype {key.dtype}"
        )
    return jax.random.wrap_key_data(key)


def power_law_spectrum(d: int, exponent: float, *, scale: float = 1.0, dtype=jnp.float32):
    """Power-law eigenvalues ``lambda_k = scale * k^(-exponent)`` for ``k = 1, ..., d``.

    Args:
      d: number of eigenvalues (input dimension), d >= 1.
      exponent: decay exponent alpha (alpha > 0 decays; alpha = 0 is isotropic).
      scale: the largest eigenvalue lambda_1.
      dtype: floating dtype of the result.

    Returns:
      (d,) array, sorted decreasing for exponent > 0. On a log-log plot of lambda_k against k
      the slope is exactly -exponent.

    >>> power_law_spectrum(3, 1.0).tolist()
    [1.0, 0.5, 0.3333333432674408]
    """
    dt = _float_dtype(dtype)
    if int(d) < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    k = np.arange(1, int(d) + 1, dtype=np.float64)  # (d,)
    return jnp.asarray(scale * k ** (-float(exponent)), dt)  # (d,), computed in float64


def gaussian_inputs(key, n: int, spectrum, *, basis=None, dtype=jnp.float32):
    """Draw ``n`` inputs ``x ~ N(0, B diag(spectrum) B^T)``.

    ``X = Z diag(sqrt(spectrum)) B^T`` with ``Z`` an (n, d) standard Gaussian, so the population
    second moment is ``E[x x^T] = B diag(spectrum) B^T``; with ``basis=None``, ``B = I`` and the
    covariance is diagonal. For a random (Haar) eigenbasis pass
    ``basis=random_orthogonal(key2, d)``.

    Args:
      key: jax PRNG key (``jax.random.key(seed)``; legacy uint32 keys also work).
      n: number of examples.
      spectrum: (d,) non-negative eigenvalues of the covariance (not checked under tracing).
      basis: optional (d, d) orthogonal matrix whose columns are the eigenvectors; its
        orthogonality is the caller's responsibility (not checked).
      dtype: floating dtype of ``X``.

    Returns:
      X: (n, d) array.
    """
    dt = _float_dtype(dtype)
    lam = jnp.asarray(spectrum, dt)  # (d,)
    if lam.ndim != 1:
        raise ValueError(f"spectrum must be 1-D (d,), got shape {lam.shape}")
    if not isinstance(lam, jax.core.Tracer) and np.any(np.asarray(lam) < 0):  # concrete only
        raise ValueError("spectrum must be non-negative (it holds covariance eigenvalues)")
    d = lam.shape[0]
    if basis is not None:
        basis = jnp.asarray(basis, dt)  # (d, d)
        if basis.shape != (d, d):
            raise ValueError(
                f"basis must have shape ({d}, {d}) to match spectrum, got {basis.shape}"
            )
    return _gaussian(_typed_key(key), lam, basis, int(n))


@functools.partial(jax.jit, static_argnums=(3,))
def _gaussian(key, lam, basis, n: int):
    z = jax.random.normal(key, (n, lam.shape[0]), lam.dtype)  # (n, d)
    x = z * jnp.sqrt(lam)  # (n, d), covariance diag(lam)
    return x if basis is None else x @ basis.T  # (n, d), covariance B diag(lam) B^T


@jax.jit
def sample_covariance(X):
    """Uncentred sample second moment ``X^T X / n`` of an (n, d) input matrix.

    No mean is subtracted: the inputs here have zero population mean, and this is the matrix
    Sigma_xx that enters the square loss of a linear model.

    Returns:
      (d, d) array, same dtype as ``X``.
    """
    X = jnp.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, d), got shape {X.shape}")
    return X.T @ X / X.shape[0]  # (d, d)
