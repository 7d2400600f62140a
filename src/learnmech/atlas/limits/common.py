"""Pieces shared by the infinite-width claims: inputs on the sphere, kernel distances."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["relative_frobenius", "sphere_inputs"]


def sphere_inputs(seed: int, n: int, d: int) -> np.ndarray:
    """``n`` points uniform on the sphere of radius ``sqrt(d)`` in ``R^d`` (so ``|x|^2 / d = 1``), float64."""
    g = np.random.default_rng(seed).standard_normal((n, d))
    return math.sqrt(d) * g / np.linalg.norm(g, axis=1, keepdims=True)


def relative_frobenius(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``||a - b||_F / ||b||_F`` over the last two axes (broadcast over the leading ones)."""
    return np.linalg.norm(a - b, axis=(-2, -1)) / np.linalg.norm(b, axis=(-2, -1))
