"""Lazy and rich training of a two-layer network: the linearised movement and the isotropic alignment.

Chizat, Oyallon & Bach 2019 (arXiv:1812.07956): scaling a network's output by ``alpha`` (training
``F_alpha = alpha f`` on the loss ``1/alpha^2``-rescaled) makes large ``alpha`` lazy (training the
linearisation at initialisation, weights moving by ``O(1/alpha)``) and small ``alpha`` rich (neurons
moving far and aligning with the teacher's directions). These are the two limits' predictions that
the ``limits.lazy-rich`` claim tests: the weight movement of the linearised model, and the
fraction of neuron directions near a teacher direction when directions stay isotropic.
"""

from __future__ import annotations

import numpy as np

__all__ = ["angle_to_nearest", "isotropic_alignment", "linearised_movement"]


def linearised_movement(kernel: np.ndarray, y: np.ndarray, eta: float, steps: int) -> float:
    """``alpha ||w_s - w0||`` for ``s`` GD steps on ``F_alpha`` with the network linearised at ``w0``.

    ``||w_s - w0||^2 = (1/(n alpha^2)) sum_k (v_k . y)^2 (1 - (1 - eta g_k)^s)^2 / g_k`` with
    ``(g_k, v_k)`` the eigenpairs of ``G = kernel / n`` (``kernel = J J^T``, ``(n, n)``), ``y``
    the ``(n,)`` targets, ``eta`` the learning rate (Chizat et al. 2019,
    arXiv:1812.07956, Section 2: lazy training is training the linearised model).

    >>> round(linearised_movement(np.eye(2) * 2.0, np.array([1.0, 1.0]), 0.5, 10_000), 12)  # G = I: |y|^2 / n
    1.0
    """
    n = len(y)
    g, v = np.linalg.eigh(np.asarray(kernel, np.float64) / n)  # (n,), (n, n)
    g = np.clip(g, 0.0, None)
    proj = v.T @ np.asarray(y, np.float64)  # (n,)
    done = -np.expm1(steps * np.log1p(-np.minimum(eta * g, 1.0 - 1e-15)))  # 1 - (1 - eta g)^s
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(g > 1e-300, done**2 / g, 0.0)  # done ~ s eta g as g -> 0, so done^2/g -> 0
    return float(np.sqrt(np.sum(proj**2 * weight) / n))


def isotropic_alignment(teacher_angles, window_deg: float = 10.0) -> float:
    """Fraction of uniformly random directions within ``window_deg`` of one of ``teacher_angles``.

    The union of the arcs ``[phi_k - w, phi_k + w]`` covers ``sum_k min(gap_k, 2w)`` degrees, with
    ``gap_k`` the circular gaps between the sorted teacher angles (the lazy limit of the
    alignment fraction: directions stay at their isotropic initial values).

    >>> round(isotropic_alignment((0.0, 90.0, 180.0)), 12)  # 3 x 20 / 360
    0.166666666667
    """
    phi = np.sort(np.mod(np.asarray(teacher_angles, np.float64), 360.0))
    gaps = np.diff(np.append(phi, phi[0] + 360.0))  # (K,)
    return float(np.sum(np.minimum(gaps, 2.0 * window_deg)) / 360.0)


def angle_to_nearest(theta_deg, teacher_deg):
    """Absolute angle in degrees from each ``theta`` to the nearest teacher angle (numpy or jax)."""
    d = (theta_deg[..., None] - np.asarray(teacher_deg, np.float64) + 180.0) % 360.0 - 180.0
    return abs(d).min(axis=-1)
