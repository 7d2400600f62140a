"""The Hermite eigenstructure ansatz (HEA): a kernel's eigensystem from the data covariance alone.

Contract: pure float64 numpy, no training, I/O or randomness. Inputs are rows ``x`` of ``(N, D)``;
data-covariance eigenvalues are sorted in non-increasing order; a multi-index ``alpha`` is stored
sparsely as a tuple of ``(principal component, power)`` pairs with increasing component index
(``()`` is the constant mode).

Statement (Karkada, Turnbull, Liu & Simon 2025, arXiv:2510.14878, "the HEA", their sec. 3). Let
the data have mean ``m``, covariance ``Sigma = sum_j g_j u_j u_j^T`` with trace ``q = sum_j g_j``,
normalised eigenvalues ``gamma_j = g_j / q`` (``sum_j gamma_j = 1``) and whitened coordinates
``z_j = u_j . (x - m) / sqrt(g_j)``. For a rotation-invariant kernel that is, on the sphere
``|x - m|^2 = q``, a power series ``K = sum_l c_l t^l / l!`` in ``t = (x - m).(x' - m)/q``, the
ansatz says the eigenfunctions are the normalised multivariate Hermite polynomials of ``z`` and

    lambda_alpha = c_{|alpha|} prod_j gamma_j^{alpha_j},   h_alpha(z) = prod_j He_{alpha_j}(z_j) / sqrt(alpha_j!),

with ``He_k`` the probabilists' Hermite polynomials (``E[h_alpha h_beta] = delta`` under
``z ~ N(0, I)``). Why: ``t^l / l! = sum_{|alpha| = l} prod_j (gamma_j z_j z'_j)^{alpha_j} / alpha_j!``
and ``z^a z'^a / a! = h_a(z) h_a(z') + (terms of lower degree)``, so the top-degree part of level ``l``
is diagonal in ``h_alpha`` with eigenvalue ``c_l prod_j gamma_j^{alpha_j}``; the lower-degree
remainders are the ansatz's error.

Gaussian kernel. ``K(x, x') = exp(-|x - x'|^2 / (2 sigma^2))`` (``sigma`` is the bandwidth, in the
units of ``x``; no factor 2 is folded into it). Writing
``|x - x'|^2 = |x|^2 + |x'|^2 - 2 x.x'`` and putting both points on the sphere ``|x|^2 = q``:
``K = exp(-q/sigma^2) exp(t q/sigma^2)``, hence the level coefficients

    c_l = exp(-q / sigma^2) (q / sigma^2)^l,

the normalisation of the paper's reference code (``GaussianKernel.get_level_coeff_fn`` with their
``q = tr Sigma`` and ``kernel_width = sigma``). The trace of the kernel is ``K(x, x) = 1``.

When the ansatz is exact. For Gaussian data the Gaussian kernel factorises over principal
components, ``K = prod_j exp(-g_j (z_j - z'_j)^2 / (2 sigma^2))``, so its eigenvalues are products of
the one-dimensional Mehler eigenvalues (Zhu, Williams, Rohwer & Morciniec 1998; Rasmussen & Williams
2006, eq. 4.39; :func:`gaussian_mehler_eigenvalues`): ``lambda_alpha = prod_j sqrt(2 a_j / A_j)
B_j^{alpha_j}`` with ``eps_j = g_j/sigma^2``, ``B_j = 2 eps_j / (1 + 2 eps_j + sqrt(1 + 4 eps_j))`` and
``2 a_j / A_j = 2 / (1 + 2 eps_j + sqrt(1 + 4 eps_j))``. Expanding,
``B_j = eps_j (1 - 2 eps_j + O(eps_j^2))`` and the prefactor is ``exp(-eps_j + 3 eps_j^2 / 2 + ...)``:
the HEA eigenvalue ``c_l prod_j gamma_j^{alpha_j} = exp(-sum_j eps_j) prod_j eps_j^{alpha_j}`` is the
first order of the exact one, with relative error ``~ sum_j (2 alpha_j eps_j - 3 eps_j^2 / 2)``. The
ansatz is therefore exact in the wide-kernel limit ``sigma^2 >> g_1`` (any dimension, any
anisotropy), and its error falls like ``1/sigma^2`` (tested: log-log slope -1); the
eigenfunctions converge to ``h_alpha`` at the same rate.
"""

from __future__ import annotations

import heapq
import math
from typing import NamedTuple

import numpy as np

from learnmech.theory.eigenlearning import EigenlearningPrediction, learning_curve

__all__ = [
    "HeaModes",
    "PrincipalComponents",
    "gaussian_gram",
    "gaussian_level_coefficients",
    "gaussian_mehler_eigenvalues",
    "hea_learning_curve",
    "hea_modes",
    "hermite_features",
    "hermite_target_coefficients",
    "principal_components",
    "whiten",
]

MultiIndex = tuple[tuple[int, int], ...]  # ((component j, power alpha_j > 0), ...), j increasing
_RANK_RTOL = 1e-9  # principal components with variance below this fraction of the largest are dropped


class PrincipalComponents(NamedTuple):
    """``mean (D,)``, ``directions (D, r)`` (columns ``u_j``) and ``variances (r,)`` (``g_j``, descending)."""

    mean: np.ndarray
    directions: np.ndarray
    variances: np.ndarray

    @property
    def trace(self) -> float:
        """``q = tr Sigma = E|x - m|^2``."""
        return float(self.variances.sum())

    @property
    def gammas(self) -> np.ndarray:
        """Normalised eigenvalues ``gamma_j = g_j / q`` (sum 1)."""
        return self.variances / self.variances.sum()


def _rows(x, name: str = "x") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2 or not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: must be a finite (N, D) array with N >= 2, got shape {a.shape}")
    return a


def principal_components(x) -> PrincipalComponents:
    """Eigendecomposition of the sample covariance ``Sigma = (1/N) sum_i (x_i - m)(x_i - m)^T``.

    The population of the theory is the sample's uniform measure, so the covariance divides by
    ``N`` (not ``N - 1``) and the whitened coordinates of the sample have exactly unit variance.
    Components with variance below ``1e-9`` of the largest (constant pixels, roundoff) are dropped.

    >>> pcs = principal_components(np.array([[1.0, 0.0], [-1.0, 0.0]]))
    >>> pcs.variances.tolist(), pcs.trace
    ([1.0], 1.0)
    """
    a = _rows(x)
    mean = a.mean(axis=0)  # (D,)
    centred = a - mean  # (N, D)
    var, vec = np.linalg.eigh(centred.T @ centred / a.shape[0])  # (D,), (D, D) ascending
    var, vec = var[::-1], vec[:, ::-1]
    if var[0] <= 0:
        raise ValueError("x: must not be constant (zero covariance)")
    keep = var > _RANK_RTOL * var[0]
    return PrincipalComponents(mean, vec[:, keep], var[keep])


def whiten(pcs: PrincipalComponents, x) -> np.ndarray:
    """Whitened coordinates ``z_j = u_j . (x - m) / sqrt(g_j)``, ``(N, r)``."""
    a = _rows(x)
    if a.shape[1] != pcs.mean.size:
        raise ValueError(f"x: must have D = {pcs.mean.size} columns, got {a.shape[1]}")
    return (a - pcs.mean) @ pcs.directions / np.sqrt(pcs.variances)  # (N, r)


def gaussian_gram(x1, x2, bandwidth: float) -> np.ndarray:
    """Gaussian kernel ``K_ij = exp(-|x1_i - x2_j|^2 / (2 sigma^2))``, ``(N1, N2)``; ``sigma = bandwidth``.

    >>> float(gaussian_gram(np.zeros((1, 2)), np.ones((1, 2)), 1.0)[0, 0]) == float(np.exp(-1.0))
    True
    """
    a, b = np.asarray(x1, np.float64), np.asarray(x2, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"x1, x2: must be (N1, D) and (N2, D), got shapes {a.shape} and {b.shape}")
    if not bandwidth > 0 or not math.isfinite(bandwidth):
        raise ValueError(f"bandwidth: must be a finite number > 0, got {bandwidth}")
    d2 = np.sum(a**2, 1)[:, None] + np.sum(b**2, 1)[None, :] - 2.0 * a @ b.T  # (N1, N2)
    return np.exp(-np.clip(d2, 0.0, None) / (2.0 * bandwidth**2))


def gaussian_level_coefficients(max_level: int, bandwidth: float, trace: float = 1.0) -> np.ndarray:
    """Level coefficients ``c_l = exp(-q/sigma^2) (q/sigma^2)^l`` of the Gaussian kernel, ``l = 0..max_level``.

    ``K(x, x') = exp(-|x - x'|^2/(2 sigma^2))`` restricted to the sphere ``|x|^2 = |x'|^2 = q`` is
    ``sum_l c_l t^l / l!`` with ``t = x.x'/q`` (module docstring; Karkada et al. 2025,
    arXiv:2510.14878, level coefficients of the Gaussian kernel). ``sigma = bandwidth``, ``q = trace``
    (``tr Sigma`` of the data). Computed in log space.

    >>> np.round(gaussian_level_coefficients(2, 1.0), 6).tolist()  # e^-1 (1, 1, 1)
    [0.367879, 0.367879, 0.367879]
    """
    if int(max_level) != max_level or max_level < 0:
        raise ValueError(f"max_level: must be an integer >= 0, got {max_level}")
    if not (math.isfinite(bandwidth) and bandwidth > 0 and math.isfinite(trace) and trace > 0):
        raise ValueError(f"bandwidth, trace: must be finite and > 0, got {bandwidth}, {trace}")
    ratio = trace / bandwidth**2  # q / sigma^2 = 1/s, the paper's inverse "effective bandwidth"
    levels = np.arange(int(max_level) + 1, dtype=np.float64)
    return np.exp(-ratio + levels * np.log(ratio))


def gaussian_mehler_eigenvalues(variances, bandwidth: float, multi_indices) -> np.ndarray:
    """Exact eigenvalues of the Gaussian kernel for Gaussian data ``N(0, diag(g))`` (Mehler).

    In one dimension with ``x ~ N(0, g)`` and ``K = exp(-(x - x')^2/(2 sigma^2))``: ``a = 1/(4g)``,
    ``b = 1/(2 sigma^2)``, ``c = sqrt(a^2 + 2ab)``, ``A = a + b + c``, ``B = b/A`` and
    ``lambda_k = sqrt(2a/A) B^k`` (Zhu et al. 1998; Rasmussen & Williams 2006, eq. 4.39, with their
    ``sigma^2 = g``, ``l = sigma``). The kernel factorises over the principal components, so
    ``lambda_alpha = prod_j sqrt(2 a_j / A_j) B_j^{alpha_j}``. The reference the HEA approximates.

    Args:
      variances: ``g_j`` (unnormalised), ``(r,)``.
      bandwidth: ``sigma``.
      multi_indices: sequence of :data:`MultiIndex` (as returned by :func:`hea_modes`).

    >>> lam = gaussian_mehler_eigenvalues([1e-6], 1.0, [(), ((0, 1),)])
    >>> bool(np.allclose(lam, [1.0, 1e-6], rtol=1e-5))  # wide kernel: lambda_k -> eps^k
    True
    """
    g = np.asarray(variances, dtype=np.float64)
    if g.ndim != 1 or np.any(g <= 0) or not np.all(np.isfinite(g)):
        raise ValueError("variances: must be a 1-D array of finite numbers > 0")
    a, b = 1.0 / (4.0 * g), 1.0 / (2.0 * bandwidth**2)  # (r,), scalar
    big_a = a + b + np.sqrt(a**2 + 2.0 * a * b)  # (r,)
    log_pref = 0.5 * np.sum(np.log(2.0 * a / big_a))
    log_b = np.log(b / big_a)  # (r,)
    return np.array([np.exp(log_pref + sum(p * log_b[j] for j, p in alpha)) for alpha in multi_indices])


class HeaModes(NamedTuple):
    """The ``M`` largest HEA eigenvalues ``(M,)`` (non-increasing) and their multi-indices."""

    eigenvalues: np.ndarray
    multi_indices: tuple[MultiIndex, ...]


def _children(alpha: MultiIndex, d: int) -> list[MultiIndex]:
    """Children of ``alpha`` in the enumeration tree (each multi-index of degree >= 1 has one parent).

    The parent of ``alpha`` moves one unit of power from its last component ``m`` to ``m - 1``
    (the roots are ``l e_0``). Inverting: with ``m`` the last component of ``beta``, the children
    move a unit from ``m`` to ``m + 1``, and (if ``beta`` has power at ``m - 1``) from ``m - 1`` to
    ``m``. Both lower ``lambda`` since ``gamma`` is non-increasing: a best-first search is exact.
    """
    m, pm = alpha[-1]
    head = alpha[:-1]
    out = []
    if m + 1 < d:
        out.append(head + (((m, pm - 1),) if pm > 1 else ()) + ((m + 1, 1),))
    if head and head[-1][0] == m - 1:
        j, pj = head[-1]
        out.append(head[:-1] + (((j, pj - 1),) if pj > 1 else ()) + ((m, pm + 1),))
    return out


def hea_modes(level_coefficients, gammas, count: int) -> HeaModes:
    """The ``count`` largest HEA eigenvalues ``lambda_alpha = c_|alpha| prod_j gamma_j^alpha_j``, in order.

    Best-first search over the tree of :func:`_children` with a heap of log-eigenvalues: memory
    ``O(count)`` multi-indices (at most ``2 count + L + 1`` in the heap), never the full set of
    ``binom(d + L, L)`` multi-indices. Levels with ``c_l = 0`` are skipped. Ties are ordered by
    discovery.

    Args:
      level_coefficients: ``c_0..c_L >= 0`` (degree ``L`` is the largest enumerated).
      gammas: normalised data-covariance eigenvalues, ``(d,)``, positive and non-increasing.
      count: number of modes ``M`` (fewer if the finite set runs out).

    >>> modes = hea_modes([1.0, 1.0, 1.0], [0.5, 0.25], 4)
    >>> modes.eigenvalues.tolist(), modes.multi_indices
    ([1.0, 0.5, 0.25, 0.25], ((), ((0, 1),), ((0, 2),), ((1, 1),)))
    """
    c = np.asarray(level_coefficients, dtype=np.float64)
    g = np.asarray(gammas, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError("level_coefficients: must be a non-empty 1-D array of finite numbers >= 0")
    if g.ndim != 1 or g.size == 0 or np.any(g <= 0) or np.any(np.diff(g) > 0):
        raise ValueError("gammas: must be a non-empty 1-D array of numbers > 0 in non-increasing order")
    if int(count) != count or count < 1:
        raise ValueError(f"count: must be an integer >= 1, got {count}")
    log_c, log_g = np.log(np.where(c > 0, c, 1.0)), np.log(g)

    def log_lam(alpha: MultiIndex) -> float:
        return log_c[sum(p for _, p in alpha)] + sum(p * log_g[j] for j, p in alpha)

    roots = [() if level == 0 else ((0, level),) for level in range(c.size) if c[level] > 0]
    heap = [(-log_lam(a), i, a) for i, a in enumerate(roots)]
    heapq.heapify(heap)
    tick, values, indices = len(heap), [], []
    while heap and len(values) < count:
        neg, _, alpha = heapq.heappop(heap)
        values.append(math.exp(-neg))
        indices.append(alpha)
        for child in _children(alpha, g.size) if alpha else ():
            heapq.heappush(heap, (-log_lam(child), tick, child))
            tick += 1
    return HeaModes(np.array(values), tuple(indices))


def _hermite_table(column: np.ndarray, max_power: int) -> list[np.ndarray]:
    """``h_k(z) = He_k(z)/sqrt(k!)`` for ``k = 0..max_power`` by ``h_{k+1} = (z h_k - sqrt(k) h_{k-1})/sqrt(k+1)``."""
    table = [np.ones_like(column), column.copy()]
    for k in range(1, max_power):
        table.append((column * table[k] - math.sqrt(k) * table[k - 1]) / math.sqrt(k + 1))
    return table[: max_power + 1]


def hermite_features(z, multi_indices) -> np.ndarray:
    """Normalised multivariate Hermite features ``h_alpha(z) = prod_j He_{alpha_j}(z_j)/sqrt(alpha_j!)``, ``(N, M)``.

    ``E[h_alpha h_beta] = delta_{alpha beta}`` for ``z ~ N(0, I)`` (probabilists' convention:
    ``He_0 = 1, He_1 = z, He_2 = z^2 - 1``).

    >>> hermite_features(np.array([[2.0, 3.0]]), [(), ((0, 2),), ((0, 1), (1, 1))]).round(6).tolist()
    [[1.0, 2.12132, 6.0]]
    """
    zz = np.asarray(z, dtype=np.float64)
    if zz.ndim != 2 or not np.all(np.isfinite(zz)):
        raise ValueError(f"z: must be a finite (N, r) array, got shape {zz.shape}")
    powers: dict[int, int] = {}
    for alpha in multi_indices:
        for j, p in alpha:
            if not 0 <= j < zz.shape[1] or p < 1:
                raise ValueError(f"multi_indices: component must be in [0, {zz.shape[1]}) with power >= 1, "
                                 f"got ({j}, {p})")
            powers[j] = max(powers.get(j, 0), p)
    tables = {j: _hermite_table(zz[:, j], p) for j, p in powers.items()}
    out = np.ones((zz.shape[0], len(multi_indices)))  # (N, M)
    for i, alpha in enumerate(multi_indices):
        for j, p in alpha:
            out[:, i] *= tables[j][p]
    return out


def hermite_target_coefficients(features, y) -> tuple[np.ndarray, float]:
    """Target coefficients in the Gram-Schmidt-orthonormalised Hermite basis, and the unexplained power.

    The sample is the population (uniform measure on ``N`` points). The features ``h_1..h_M``
    (columns, in decreasing HEA eigenvalue order) are orthonormalised in that order,
    ``H / sqrt(N) = Q R`` with ``R_ii > 0`` and ``phi_i = sqrt(N) Q_i`` (``E[phi_i phi_k] = delta``), as the
    paper does (Karkada et al. 2025, arXiv:2510.14878: QR of the sampled Hermite features). Then
    ``v_i = E[phi_i y] = Q^T y / sqrt(N)`` and the unexplained power
    ``E|y|^2 - sum_i |v_i|^2 >= 0`` (summed over outputs).

    Args:
      features: ``(N, M)`` from :func:`hermite_features`, ``M < N``.
      y: ``(N,)`` or ``(N, outputs)``.

    Returns:
      ``(v, residual)``: ``v`` of shape ``(M,)`` or ``(M, outputs)``, ``residual`` a float.
    """
    h = _rows(features, "features")
    t = np.asarray(y, dtype=np.float64)
    if t.ndim not in (1, 2) or t.shape[0] != h.shape[0]:
        raise ValueError(f"y: must be (N,) or (N, outputs) with N = {h.shape[0]}, got shape {t.shape}")
    if h.shape[1] >= h.shape[0]:
        raise ValueError(f"features: need fewer modes than points, got M = {h.shape[1]} >= N = {h.shape[0]}")
    q, r = np.linalg.qr(h / math.sqrt(h.shape[0]))  # (N, M), (M, M)
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)  # phi_i has positive overlap with h_i
    v = q.T @ t / math.sqrt(h.shape[0])  # (M,) or (M, outputs)
    power = float(np.sum(t**2) / h.shape[0])
    return v, max(power - float(np.sum(v**2)), 0.0)


def hea_learning_curve(eigenvalues, coefficients, n, *, residual: float = 0.0, kernel_trace: float = 1.0,
                       ridge=0.0) -> EigenlearningPrediction:
    """Eigenlearning with HEA eigenvalues; the kernel's and the target's unexplained parts as ridge and noise.

    The ``M`` modes kept carry ``sum_i lambda_i`` of the kernel's trace ``E[K(x, x)]``; the rest of the
    spectrum (all below ``kappa``) acts on kernel regression as an extra ridge of its total weight, so
    ``delta_eff = delta + max(0, tr K - sum_i lambda_i)``; the target's power outside the ``M`` modes
    (``residual``) is learned by none of them and enters as label noise, ``eps^2 = residual / outputs``
    per output. Both follow the paper's prediction (Karkada et al. 2025, arXiv:2510.14878, the
    learning-curve recipe of their figures; Simon et al. 2021, arXiv:2110.03922 for the risk).

    Args:
      eigenvalues: HEA eigenvalues ``(M,)``.
      coefficients: ``v`` ``(M,)`` or ``(M, outputs)`` from :func:`hermite_target_coefficients`.
      n: training-set sizes, any shape.
      residual: unexplained target power (summed over outputs).
      kernel_trace: ``E[K(x, x)]`` (1 for the Gaussian kernel).
      ridge: ``delta`` added to the Gram matrix.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if not (math.isfinite(residual) and residual >= 0 and math.isfinite(kernel_trace) and kernel_trace > 0):
        raise ValueError(f"residual, kernel_trace: must be finite, >= 0 and > 0, got {residual}, {kernel_trace}")
    outputs = 1 if np.ndim(coefficients) == 1 else np.shape(coefficients)[1]
    tail = max(kernel_trace - float(lam.sum()), 0.0)
    return learning_curve(lam, coefficients, n, ridge=np.asarray(ridge, np.float64) + tail, noise=residual / outputs)
