"""Noisy linear regression with a power-law input spectrum: an exactly solvable SGD task.

Contract. ``y = w*.x + sigma xi`` with ``x ~ N(0, diag(lambda))``, ``lambda_k ~ k^(-exponent)``,
``k = 1..d``, normalised to mean 1 (``E |x|^2 = d``; the shape of real data's covariance spectra),
``w*`` a unit vector and ``xi ~ N(0, 1)``. Inputs ``X`` are ``(n, d)``, targets ``Y`` ``(n, 1)``,
numpy arrays of an explicit floating ``dtype``. The draw of ``X`` and ``xi`` comes from the jax
``key`` (first argument); the teacher direction is a separate draw, :func:`unit_teacher`, from
numpy's ``default_rng(seed)`` (the draw the critical-batch claim has always used). The student is
the linear model ``f(x) = w.x`` (:func:`mse_linear`), for which the second moments of SGD are in
closed form (:mod:`learnmech.theory.sgd_linear`; McCandlish, Kaplan, Amodei et al. 2018,
arXiv:1812.06162, use this task to derive the critical batch size).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.data.gaussian import gaussian_inputs, power_law_spectrum

__all__ = ["least_squares_floor", "mse_linear", "noisy_linear_regression", "power_law_variances", "unit_teacher"]


def power_law_variances(dim: int, exponent: float) -> np.ndarray:
    """``lambda_k ~ k^-exponent``, ``k = 1..dim``, scaled to mean 1, float64 ``(dim,)``.

    >>> power_law_variances(2, 1.0).tolist()  # (1, 1/2) scaled to sum 2
    [1.3333333333333333, 0.6666666666666666]
    """
    lam = np.arange(1, dim + 1, dtype=np.float64) ** -exponent
    return lam * dim / lam.sum()


def unit_teacher(seed: int, dim: int) -> np.ndarray:
    """A random unit vector ``w*`` ``(dim,)``, float64, from numpy's ``default_rng(seed)``."""
    w = np.random.default_rng(seed).standard_normal(dim)
    return w / np.linalg.norm(w)


def noisy_linear_regression(key, n: int, teacher: np.ndarray, exponent: float, noise: float, *, dtype="float32"):
    """``X (n, d) ~ N(0, diag(power_law_variances(d, exponent)))`` and ``Y = X w* + noise xi`` ``(n, 1)``.

    ``X`` and ``xi`` are drawn from ``key``; ``Y`` is computed in float64 and then cast to ``dtype``.
    """
    dim = teacher.shape[0]
    key_x, key_xi = jax.random.split(key)
    scale = float(power_law_variances(dim, exponent)[0])
    spectrum = power_law_spectrum(dim, exponent, scale=scale, dtype=dtype)
    X = np.asarray(gaussian_inputs(key_x, n, spectrum, dtype=dtype))  # (n, d)
    xi = np.asarray(jax.random.normal(key_xi, (n, 1), dtype))  # (n, 1)
    Y = (X.astype(np.float64) @ teacher)[:, None] + noise * xi  # (n, 1)
    return X, Y.astype(dtype)


def least_squares_floor(X, Y) -> float:
    """``min_w (1/2n) |X w - Y|^2``: the lowest training loss of the linear model (float64 least squares)."""
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    w, *_ = np.linalg.lstsq(X, Y, rcond=None)
    return float(0.5 * np.mean((X @ w - Y) ** 2))


def mse_linear(params, batch):
    """``(1/2B) sum_i (w.x_i - y_i)^2`` of the linear model ``params = {"w": (d, 1)}`` on ``batch = (x, y)``."""
    x, y = batch  # (B, d), (B, 1)
    return 0.5 * jnp.mean((x @ params["w"] - y) ** 2)
