"""Similarity of two representations of the same inputs: CKA (linear, debiased, RBF) and mutual kNN.

Contract. Every function takes two representations ``x`` ``(n, p)`` and ``y`` ``(n, q)`` of the same
``n`` inputs (row ``i`` of both is input ``i``; ``p`` and ``q`` may differ) and returns a scalar
similarity, 1 for identical representations. Computations run in the inputs' floating dtype
(float32 by default, float64 when ``jax_enable_x64`` is on and float64 arrays are passed). None of
them forms an ``n x n`` matrix whole, so ``n = 10,000`` fits in memory:

=================  ===========================  ===============================================
function           time                         memory
=================  ===========================  ===============================================
``linear_cka``     ``O(n (p^2 + q^2 + p q))``   ``O(n (p + q) + p^2 + q^2 + p q)``
``debiased_cka``   ``O(n (p^2 + q^2 + p q))``   ``O(n (p + q) + p^2 + q^2 + p q)``
``rbf_cka``        ``O(n^2 (p + q))``           ``O(block n)``: 2 x 1024 x 10^4 x 4 B = 82 MB
``mutual_knn``     ``O(n^2 (p + q))`` + top-k   ``O(block n)``: same as ``rbf_cka``
=================  ===========================  ===============================================

(an ``n x n`` float32 matrix at ``n = 10^4`` would be 400 MB, and the RBF CKA needs two).

One baseline is not a similarity of two given representations: :func:`lazy_linear_cka`, the
expected linear CKA of two independent random ReLU layers on the same inputs (numpy, float64, an
``(n, n)`` Monte Carlo accumulator), what two networks that never leave their initialisation share.

Centred kernel alignment (Kornblith, Norouzi, Lee & Hinton 2019, arXiv:1905.00414) is
``CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with the Hilbert-Schmidt independence
criterion ``HSIC(K, L) = tr(K H L H) / (n - 1)^2``, ``H = I - 1 1^T / n`` (Gretton et al. 2005);
the ``(n - 1)^2`` cancels in the ratio. Its plug-in estimator is biased upwards at finite ``n``:
two independent Gaussian representations with ``p = q`` have linear CKA near ``p / (n + p)``, not 0.
``debiased_cka`` replaces HSIC by its unbiased estimator (Song, Smola, Gretton, Bedo & Borgwardt
2012, JMLR 13; used for CKA by Nguyen, Raghu & Kornblith 2021, arXiv:2010.15327).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["debiased_cka", "lazy_linear_cka", "linear_cka", "median_distance", "mutual_knn", "rbf_cka",
           "unbiased_hsic_linear"]

BLOCK = 1024  # rows per block of the n x n computations: 2 x 1024 x n floats live at once
MEDIAN_POINTS = 2048  # the RBF bandwidth's median is over all pairs of at most this many points


def _as_float(a) -> jax.Array:
    a = jnp.asarray(a)
    return a.astype(jnp.result_type(a.dtype, jnp.float32))


def _check_pair(x, y) -> tuple[jax.Array, jax.Array]:
    x, y = _as_float(x), _as_float(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x, y: must be (n, p) and (n, q) with the same n, got {x.shape} and {y.shape}")
    dtype = jnp.result_type(x.dtype, y.dtype)
    return x.astype(dtype), y.astype(dtype)


def _center(x: jax.Array) -> jax.Array:
    return x - jnp.mean(x, axis=0, keepdims=True)  # (n, p), columns have mean zero


# ---------------------------------------------------------------------------------------------
# Linear CKA


def linear_cka(x, y) -> jax.Array:
    """Linear CKA ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` of column-centred ``x``, ``y``.

    With ``K = X X^T`` and ``L = Y Y^T`` (``X``, ``Y`` centred, so ``H K H = K``),
    ``tr(K L) = ||Y^T X||_F^2`` and ``tr(K K) = ||X^T X||_F^2``: computed in feature space,
    ``O(n p^2)`` (Kornblith et al. 2019, arXiv:1905.00414, Section 3). Invariant to orthogonal
    transforms and isotropic scalings of either representation, not to general invertible maps.

    Args:
      x: ``(n, p)``; y: ``(n, q)``.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(50, 4))
    >>> round(float(linear_cka(x, 3.0 * x)), 5)
    1.0
    """
    return _linear_cka(*_check_pair(x, y))


@jax.jit
def _linear_cka(x, y):
    x, y = _center(x), _center(y)
    xy = jnp.sum((y.T @ x) ** 2)  # ||Y^T X||_F^2, (q, p) product
    xx = jnp.linalg.norm(x.T @ x)  # ||X^T X||_F
    yy = jnp.linalg.norm(y.T @ y)
    return xy / (xx * yy)


def lazy_linear_cka(x, widths, *, units: int = 5000, seed: int = 0, chunk: int = 4096) -> np.ndarray:
    """Expected linear CKA of two independent random ReLU layers of width ``m`` on inputs ``x``, ``(len(widths),)``.

    The hidden layer at initialisation, ``relu(x W)`` with ``W ~ N(0, I/d)`` ``(d, m)`` and no bias
    (the lazy limit: a network that barely moves keeps these features), has the representation
    kernel ``K = (1/m) sum_j u_j u_j^T`` with ``u_j = H relu(x w_j)`` (``H`` the centring), an average
    of ``m`` i.i.d. draws. With ``M = E[u u^T]`` ``(n, n)`` and two independent layers,
    ``E <K_a, K_b> = ||M||_F^2`` and ``E ||K_a||^2 = ||M||_F^2 + (E||u||^4 - ||M||_F^2) / m``, so to
    first order in ``1/m``

        CKA(m) = 1 / (1 + v / m),     v = E||u||^4 / ||M||_F^2 - 1.

    ``||M||_F^2`` and ``E||u||^4`` are estimated by Monte Carlo over ``units`` draws of ``w``
    (numpy ``default_rng(seed)``, ``chunk`` at a time, float64). With ``U`` the ``(n, N)`` matrix of the
    ``N`` draws, ``sum_{j != k} (u_j . u_k)^2 = ||U U^T||_F^2 - sum_j ||u_j||^4`` has mean
    ``N (N - 1) ||M||_F^2``: that unbiased estimate is used (the plug-in ``||U U^T / N||^2`` is biased
    up by ``E||u||^4 / N``). Kornblith et al. 2019 (arXiv:1905.00414) for linear CKA; the expansion
    is derived here. ``O(units n (n + d))`` time, ``O(n^2 + n chunk)`` memory.

    Args:
      x: inputs ``(n, d)``; widths: hidden widths ``m``; units: Monte Carlo draws (at least 2).

    >>> x = np.random.default_rng(0).normal(size=(20, 5))
    >>> cka = lazy_linear_cka(x, [16, 64, 256], units=2000)
    >>> bool(np.all(np.diff(cka) > 0) and np.all(cka < 1))
    True
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or units < 2:
        raise ValueError(f"x, units: need (n, d) inputs and at least 2 units, got {x.shape} and {units}")
    n, d = x.shape
    rng = np.random.default_rng(seed)
    gram, fourth = np.zeros((n, n)), 0.0
    for start in range(0, units, chunk):
        u = np.maximum(x @ (rng.standard_normal((d, min(chunk, units - start))) / math.sqrt(d)), 0.0)  # (n, c)
        u -= u.mean(axis=0, keepdims=True)  # H u
        gram += u @ u.T  # (n, n): sum_j u_j u_j^T
        fourth += float(np.sum(np.sum(u**2, axis=0) ** 2))  # sum_j ||u_j||^4
    m_sq = (np.sum(gram**2) - fourth) / (units * (units - 1))  # ||M||_F^2, unbiased
    v = (fourth / units) / m_sq - 1.0
    return 1.0 / (1.0 + v / np.asarray(widths, np.float64))


# ---------------------------------------------------------------------------------------------
# Debiased CKA


def unbiased_hsic_linear(x, y) -> jax.Array:
    """Unbiased HSIC of the linear kernels ``K = X X^T``, ``L = Y Y^T``, in feature space.

    Song et al. 2012 (JMLR 13, eq. 5): with ``K~``, ``L~`` the kernels with zeroed diagonals,

        HSIC_1 = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n (n-3)),

    an unbiased estimator of ``||Cov(x, y)||_F^2`` (for ``n >= 4``). Every term is a feature-space
    product, ``O(n (p^2 + q^2 + p q))`` with no ``n x n`` matrix; with ``d_i = |x_i|^2``,
    ``e_i = |y_i|^2`` and ``s = X^T 1``, ``t = Y^T 1``:
    ``tr(K~ L~) = ||Y^T X||_F^2 - d . e``, ``1^T K~ 1 = |s|^2 - sum d``,
    ``K~ 1 = X s - d``. The columns are centred first (the estimator does not depend on it: the
    U-statistic is invariant to translating the features; centring only reduces rounding).

    Args:
      x: ``(n, p)``; y: ``(n, q)``; ``n >= 4``.
    """
    x, y = _check_pair(x, y)
    if x.shape[0] < 4:
        raise ValueError(f"x, y: the unbiased HSIC needs n >= 4 examples, got {x.shape[0]}")
    return _hsic1(_center(x), _center(y))


@jax.jit
def _hsic1(x, y):
    n = x.shape[0]
    d, e = jnp.sum(x**2, axis=1), jnp.sum(y**2, axis=1)  # (n,), diagonals of K and L
    s, t = jnp.sum(x, axis=0), jnp.sum(y, axis=0)  # (p,), (q,)
    trace = jnp.sum((y.T @ x) ** 2) - jnp.dot(d, e)  # tr(K~ L~)
    k_sum, l_sum = jnp.dot(s, s) - jnp.sum(d), jnp.dot(t, t) - jnp.sum(e)  # 1^T K~ 1, 1^T L~ 1
    k_row, l_row = x @ s - d, y @ t - e  # (n,): K~ 1, L~ 1
    return (trace + k_sum * l_sum / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * jnp.dot(k_row, l_row)) / (n * (n - 3))


def debiased_cka(x, y) -> jax.Array:
    """Debiased linear CKA ``HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L))``.

    :func:`unbiased_hsic_linear` in place of the plug-in HSIC (Nguyen, Raghu & Kornblith 2021,
    arXiv:2010.15327, Appendix; Song et al. 2012). Unbiased numerator: near 0 for independent
    representations even when ``p ~ n``, where :func:`linear_cka` is biased towards ``p / (n + p)``.
    The value can be slightly negative; it is NaN if an estimated self-HSIC is not positive
    (possible only for tiny ``n``). ``O(n (p^2 + q^2 + p q))`` time, no ``n x n`` matrix.

    Args:
      x: ``(n, p)``; y: ``(n, q)``; ``n >= 4``.
    """
    x, y = _check_pair(x, y)
    if x.shape[0] < 4:
        raise ValueError(f"x, y: the unbiased HSIC needs n >= 4 examples, got {x.shape[0]}")
    return _debiased_cka(x, y)


@jax.jit
def _debiased_cka(x, y):
    x, y = _center(x), _center(y)
    xx, yy = _hsic1(x, x), _hsic1(y, y)
    norm = xx * yy
    return jnp.where(norm > 0, _hsic1(x, y) / jnp.sqrt(jnp.where(norm > 0, norm, 1.0)), jnp.nan)


# ---------------------------------------------------------------------------------------------
# Blocked n x n computations


def _blocks(a: jax.Array, block: int) -> tuple[jax.Array, jax.Array]:
    """Rows of ``a`` ``(n, p)`` padded to ``(B, block, p)`` and their indices ``(B, block)`` (-1 = padding)."""
    n = a.shape[0]
    b = -(-n // block)
    padded = jnp.concatenate([a, jnp.zeros((b * block - n, a.shape[1]), a.dtype)])  # (B * block, p)
    rows = jnp.arange(b * block)
    return padded.reshape(b, block, -1), jnp.where(rows < n, rows, -1).reshape(b, block)


def _block_size(n: int, block: int | None) -> int:
    return max(1, min(n, BLOCK if block is None else int(block)))


def _sq_dist(a: jax.Array, b: jax.Array) -> jax.Array:
    """Squared Euclidean distances ``(m, n)`` between the rows of ``a`` ``(m, p)`` and ``b`` ``(n, p)``."""
    d = jnp.sum(a**2, axis=1)[:, None] + jnp.sum(b**2, axis=1)[None, :] - 2.0 * (a @ b.T)
    return jnp.maximum(d, 0.0)  # rounding can make a (near-)zero distance slightly negative


def median_distance(x, max_points: int = MEDIAN_POINTS) -> float:
    """Median Euclidean distance over the pairs ``i < j`` of rows of ``x`` ``(n, p)``.

    Exact for ``n <= max_points``; above, the median over all pairs of ``max_points`` evenly spaced
    rows (``i * (n - 1) // (max_points - 1)``), a deterministic estimate from ~2 million pairs at the
    default, so the bandwidth never needs ``n^2`` memory. The distances are computed in JAX and
    the median is taken on the host (``numpy.median``: a partition, faster than a sort), so the
    result is a Python float.
    """
    x = _as_float(x)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"x: need at least 2 rows for a pairwise distance, got {n}")
    m = min(n, int(max_points))
    idx = np.arange(n) if m == n else np.arange(m) * (n - 1) // (m - 1)  # (m,)
    d2 = np.asarray(_jit_sq_dist(x[idx]))  # (m, m)
    return float(np.median(np.sqrt(d2[np.triu_indices(m, k=1)])))


@jax.jit
def _jit_sq_dist(a):
    return _sq_dist(a, a)


# ---------------------------------------------------------------------------------------------
# RBF CKA


def rbf_cka(x, y, sigma_frac: float = 0.8, *, block: int | None = None) -> jax.Array:
    """CKA with RBF kernels ``k(a, b) = exp(-|a - b|^2 / (2 sigma^2))``.

    ``sigma = sigma_frac * median pairwise distance`` of each representation separately (Kornblith
    et al. 2019, arXiv:1905.00414, Section 3, who report ``sigma_frac = 0.8`` among their choices;
    here the median is over distinct pairs, see :func:`median_distance`). With ``K1`` and ``L1`` the
    row sums,

        tr(K H L H) = sum_ij K_ij L_ij - (2/n) (K1) . (L1) + (1^T K 1)(1^T L 1) / n^2,

    accumulated over row blocks of ``block`` rows: ``O(n^2 (p + q))`` time and ``2 block n`` floats
    of memory (82 MB at ``n = 10^4`` in float32 with the default 1024; the full kernels would take
    800 MB).

    Args:
      x: ``(n, p)``; y: ``(n, q)``; sigma_frac: bandwidth as a fraction of the median distance.
    """
    x, y = _check_pair(x, y)
    if not sigma_frac > 0:
        raise ValueError(f"sigma_frac: must be positive, got {sigma_frac}")
    sx = sigma_frac * median_distance(x)
    sy = sigma_frac * median_distance(y)
    return _rbf_cka(x, y, sx, sy, _block_size(x.shape[0], block))


@functools.partial(jax.jit, static_argnames=("block",))
def _rbf_cka(x, y, sx, sy, block):
    n = x.shape[0]
    xb, rows = _blocks(x, block)  # (B, block, p), (B, block)
    yb, _ = _blocks(y, block)

    def one_block(carry, args):
        xr, yr, r = args  # (block, p), (block, q), (block,)
        valid = (r >= 0)[:, None]  # (block, 1): padding rows contribute nothing
        k = jnp.where(valid, jnp.exp(-_sq_dist(xr, x) / (2 * sx**2)), 0.0)  # (block, n)
        l = jnp.where(valid, jnp.exp(-_sq_dist(yr, y) / (2 * sy**2)), 0.0)  # noqa: E741  (block, n)
        kl, kk, ll = carry
        return (kl + jnp.sum(k * l), kk + jnp.sum(k * k), ll + jnp.sum(l * l)), (k.sum(1), l.sum(1))

    zero = jnp.zeros((), x.dtype)
    (kl, kk, ll), (k1, l1) = jax.lax.scan(one_block, (zero, zero, zero), (xb, yb, rows))
    k1, l1 = k1.reshape(-1), l1.reshape(-1)  # (B * block,): row sums, zero on padding

    return _ratio(kl, kk, ll, k1, l1, n)


def _ratio(kl, kk, ll, k1, l1, n):
    """``tr(KHLH) / sqrt(tr(KHKH) tr(LHLH))`` from the sums of the blocked pass."""

    def centred(full, a1, b1):  # tr(A H B H) = sum A*B - (2/n) A1.B1 + (1^T A 1)(1^T B 1)/n^2
        return full - 2.0 / n * jnp.dot(a1, b1) + jnp.sum(a1) * jnp.sum(b1) / n**2

    return centred(kl, k1, l1) / jnp.sqrt(centred(kk, k1, k1) * centred(ll, l1, l1))


# ---------------------------------------------------------------------------------------------
# Mutual k-nearest neighbours


def mutual_knn(x, y, k: int = 10, *, metric: str = "cosine", block: int | None = None) -> jax.Array:
    """Mutual k-nearest-neighbour alignment ``(1/n) sum_i |N_k^X(i) & N_k^Y(i)| / k``.

    ``N_k^X(i)`` is the set of the ``k`` nearest other rows to row ``i`` of ``x`` (the point itself
    is excluded). Huh, Cheung, Wang & Isola 2024 (arXiv:2405.07987, Section 2 and Appendix A)
    compare L2-normalised features by inner product: ``metric="cosine"`` (the default) does the
    same; ``metric="euclidean"`` uses Euclidean distance on the raw rows. Features are not
    centred. 1 when the neighbourhoods agree, about ``k / (n - 1)`` for unrelated ones.

    Computed over row blocks: each block ranks ``block x n`` scores with ``lax.top_k``, so memory
    is ``O(block n)`` (82 MB at ``n = 10^4``) and time ``O(n^2 (p + q))``. Exact ties between
    distances are broken by ``lax.top_k`` (lowest index first); an all-zero row has no direction
    under ``"cosine"``, so its neighbours are then the lowest indices.

    Args:
      x: ``(n, p)``; y: ``(n, q)``; k: neighbours, ``1 <= k < n``.
    """
    x, y = _check_pair(x, y)
    n = x.shape[0]
    if not 1 <= int(k) < n:
        raise ValueError(f"k: must satisfy 1 <= k < n = {n}, got {k}")
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric: must be 'cosine' or 'euclidean', got {metric!r}")
    return _mutual_knn(x, y, int(k), metric, _block_size(n, block))


def _scores(a: jax.Array, metric: str) -> tuple[jax.Array, jax.Array]:
    """Rows prepared so that ``a_i . b_j - c_j`` ranks neighbours (higher = nearer): ``(b, c)``."""
    if metric == "cosine":
        b = a / jnp.maximum(jnp.linalg.norm(a, axis=1, keepdims=True), jnp.finfo(a.dtype).tiny)
        return b, jnp.zeros(a.shape[0], a.dtype)
    return a, 0.5 * jnp.sum(a**2, axis=1)  # -|a_i - a_j|^2 / 2 = a_i . a_j - |a_j|^2 / 2 - |a_i|^2 / 2


@functools.partial(jax.jit, static_argnames=("k", "metric", "block"))
def _mutual_knn(x, y, k, metric, block):
    n = x.shape[0]
    xs, xc = _scores(x, metric)  # (n, p), (n,)
    ys, yc = _scores(y, metric)
    xb, rows = _blocks(xs, block)  # (B, block, p), (B, block)
    yb, _ = _blocks(ys, block)
    columns = jnp.arange(n)

    def neighbours(ar, a, c, r):  # (block, k) indices of the k best scores, self excluded
        s = ar @ a.T - c[None, :]  # (block, n)
        s = jnp.where(columns[None, :] == r[:, None], -jnp.inf, s)
        return jax.lax.top_k(s, k)[1]

    def one_block(args):
        xr, yr, r = args
        nx, ny = neighbours(xr, xs, xc, r), neighbours(yr, ys, yc, r)  # (block, k) each
        shared = jnp.sum(nx[:, :, None] == ny[:, None, :], axis=(1, 2))  # (block,), distinct indices per row
        return jnp.where(r >= 0, shared, 0)

    shared = jax.lax.map(one_block, (xb, yb, rows))  # (B, block)
    return jnp.sum(shared).astype(x.dtype) / (n * k)
