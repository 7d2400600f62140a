"""The neural feature matrix and the average gradient outer product (AGOP) of any model.

The neural feature ansatz (Radhakrishnan, Beaglehole, Pandit & Belkin 2024, Science;
arXiv:2212.13881) compares two ``(d_in, d_in)`` matrices of a trained network:

- the **neural feature matrix** of the first layer, ``NFM = (W - W0)^T (W - W0)`` (or ``W^T W``
  with ``W0 = None``). Convention: ``W`` has shape ``(hidden, d_in)`` (PyTorch's ``nn.Linear``
  and the ``W x`` convention of :class:`learnmech.nets.DeepLinear`), so the NFM acts on inputs.
  :class:`learnmech.nets.MLP` stores its first layer as ``(d_in, hidden)`` (``x @ w``): its
  extractor is :func:`mlp_first_layer` (a transpose);
- the **AGOP** ``G = (1/n) sum_i J_i^T J_i`` with ``J_i = d f(x_i) / d x_i`` the ``(c, d_in)``
  Jacobian of the (flattened) outputs with respect to the (flattened) input of example ``i``.
  The reference code (aradha/agop_feature_learning, ``verify_deep_NFA.egop``) also offers the
  *centred* AGOP, ``(1/n) sum_i (J_i - Jbar)^T (J_i - Jbar) = G - Jbar^T Jbar``.

The ansatz says ``NFM`` is proportional to ``G^alpha`` with ``alpha = 1/2``; both are compared by
:func:`feature_correlation`, the reference's ``correlate``, and :func:`best_exponent` finds the
``alpha`` that matches best.

Any model given as ``apply(params, x) -> outputs`` over a batch works; ``params`` is only closed over,
never traced as an argument, so it may be an equinox module with non-array leaves (its activation
function) or a flax nnx module; each example is pushed through ``apply`` alone, as a batch of one, so a model
whose output for one example depends on the rest of the batch (batch norm in training mode) is
outside this contract.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ExponentFit", "Spectrum", "agop", "best_exponent", "dln_first_layer", "feature_correlation",
           "jacobian_moments", "matrix_power", "mlp_first_layer", "neural_feature_matrix", "power_correlations",
           "spectrum"]


def mlp_first_layer(params) -> jax.Array:
    """The first-layer matrix ``W`` ``(hidden, d_in)`` of :class:`learnmech.nets.MLP` parameters
    (stored as ``(d_in, hidden)``, hence the transpose)."""
    return jnp.asarray(params[0]["w"]).T


def dln_first_layer(params) -> jax.Array:
    """The first-layer matrix ``W_1`` ``(hidden, d_in)`` of :class:`learnmech.nets.DeepLinear` parameters."""
    return jnp.asarray(params[0])


def neural_feature_matrix(params, params0=None, *, first_layer: Callable = lambda p: p) -> jax.Array:
    """``NFM = (W - W0)^T (W - W0)``, ``(d_in, d_in)``; ``W^T W`` when ``params0`` is ``None``.

    ``W = first_layer(params)`` of shape ``(hidden, d_in)`` (module docstring; the default takes
    ``params`` to be ``W`` itself). The reference code divides by ``hidden``; the factor is left out
    here since every comparison (:func:`feature_correlation`) is scale free.
    """
    W = jnp.asarray(first_layer(params))
    if W.ndim != 2:
        raise ValueError(f"first_layer: must return a (hidden, d_in) matrix, got shape {W.shape}")
    if params0 is not None:
        W = W - jnp.asarray(first_layer(params0))  # (hidden, d_in): the change since initialisation
    return W.T @ W  # (d_in, d_in)


def _example_jacobian(apply: Callable, mode: str):
    """``jac(params, x_i) -> (c, d)``: the Jacobian of one example's flattened outputs wrt its flattened input."""

    def flat_output(params, xi_flat, shape):
        return jnp.ravel(apply(params, xi_flat.reshape(shape)[None]))  # (c,), a batch of one

    def jac(params, xi):
        shape = xi.shape
        derivative = jax.jacrev if mode == "rev" else jax.jacfwd
        return derivative(flat_output, argnums=1)(params, jnp.ravel(xi), shape)  # (c, d)

    return jac


def agop(apply: Callable, params, x, *, block: int = 256, centered: bool = False, mode: str = "auto") -> jax.Array:
    """The average gradient outer product ``G = (1/n) sum_i J_i^T J_i``, ``(d, d)`` with ``d = prod(x.shape[1:])``.

    ``J_i`` is the ``(c, d)`` Jacobian of ``apply(params, x_i[None])`` (flattened to ``c`` outputs)
    with respect to ``x_i`` (flattened to ``d``) (Radhakrishnan et al. 2024, arXiv:2212.13881,
    eq. 2). With ``centered=True``, ``(1/n) sum_i (J_i - Jbar)^T (J_i - Jbar)``, ``Jbar = (1/n) sum_i J_i``
    (the reference code's ``centering``).

    The examples are processed ``block`` at a time (``jax.vmap`` of ``jax.jacrev`` or ``jax.jacfwd``
    over a block, then ``lax.scan`` over blocks, the last padded with zero-weight copies), so the
    memory is ``O(block c d + d^2)`` whatever ``n``.

    Args:
      apply: ``apply(params, x) -> outputs`` for a batch ``x`` of shape ``(batch, ...)``.
      params: the model's parameters (any pytree).
      x: inputs ``(n, ...)``.
      block: examples per vectorised block (>= 1).
      centered: subtract the mean Jacobian first.
      mode: ``"rev"`` (reverse mode, ``c`` passes), ``"fwd"`` (forward, ``d`` passes) or ``"auto"``
        (reverse when ``c <= d``).
    """
    G, mean = jacobian_moments(apply, params, x, block=block, mode=mode)
    return G - mean.T @ mean if centered else G


def jacobian_moments(apply: Callable, params, x, *, block: int = 256, mode: str = "auto"):
    """``(G, Jbar)``: the AGOP ``(1/n) sum_i J_i^T J_i`` ``(d, d)`` and the mean Jacobian ``(1/n) sum_i J_i``
    ``(c, d)`` in one pass over the examples (arguments as :func:`agop`)."""
    x = jnp.asarray(x)
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"x: must be a batch (n >= 1, ...) of inputs, got shape {x.shape}")
    if not (isinstance(block, (int, np.integer)) and block >= 1):
        raise ValueError(f"block: must be an integer >= 1, got {block!r}")
    if mode not in ("auto", "rev", "fwd"):
        raise ValueError(f"mode: must be 'auto', 'rev' or 'fwd', got {mode!r}")
    n, d = x.shape[0], int(np.prod(x.shape[1:]))
    if mode == "auto":
        c = int(np.prod(jax.eval_shape(lambda xi: apply(params, xi), x[:1]).shape))  # params closed over: any leaves
        mode = "rev" if c <= d else "fwd"
    return _moments(apply, params, x, int(block), mode, n, d)


def _moments(apply, params, x, block, mode, n, d):
    jac = jax.vmap(_example_jacobian(apply, mode), in_axes=(None, 0))
    blocks = -(-n // block)
    pad = blocks * block - n
    xs = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]).reshape((blocks, block) + x.shape[1:])
    weights = (jnp.arange(blocks * block) < n).astype(x.dtype).reshape(blocks, block)  # 0 on the padding

    def step(carry, inputs):
        gram, total = carry
        xb, wb = inputs
        J = jac(params, xb)  # (block, c, d)
        J = J * wb[:, None, None]
        return (gram + jnp.einsum("bcd,bce->de", J, J), total + J.sum(axis=0)), None

    c = jax.eval_shape(lambda xb: jac(params, xb), xs[0]).shape[1]
    init = (jnp.zeros((d, d), x.dtype), jnp.zeros((c, d), x.dtype))
    (gram, total), _ = jax.lax.scan(step, init, (xs, weights))
    return gram / n, total / n  # (d, d) AGOP, (c, d) mean Jacobian


class Spectrum(NamedTuple):
    """The eigendecomposition ``S = V diag(lam) V^T`` of a symmetric PSD matrix after the clipping rule of
    :func:`spectrum`; every function here that takes a PSD matrix also takes its ``Spectrum``, so one
    decomposition serves many powers."""

    lam: np.ndarray  # (d,) eigenvalues, clipped
    V: np.ndarray  # (d, d) orthonormal eigenvectors (columns)


def spectrum(S) -> Spectrum:
    """The eigendecomposition of ``(S + S^T)/2`` (float64) with small eigenvalues set to zero.

    Clipping rule: an eigenvalue ``lam_k <= d * eps * max_j |lam_j|`` (``d`` the size, ``eps``
    float64's machine epsilon: the rank tolerance of ``numpy.linalg.matrix_rank``) is rounding noise
    of a zero eigenvalue, or a slightly negative one, and becomes exactly 0. Without the rule a
    rank-deficient ``S`` would give ``(1e-16)^(1/4) = 1e-4`` of spurious weight to ``S^(1/4)``.
    A ``Spectrum`` is returned as it is.
    """
    if isinstance(S, Spectrum):
        return S
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or not np.all(np.isfinite(S)):
        raise ValueError(f"S: must be a finite square matrix, got shape {S.shape}")
    lam, V = np.linalg.eigh((S + S.T) / 2)
    tol = S.shape[0] * np.finfo(np.float64).eps * max(float(np.max(np.abs(lam), initial=0.0)), np.finfo(float).tiny)
    return Spectrum(np.where(lam > tol, lam, 0.0), V)


def matrix_power(S, alpha: float) -> np.ndarray:
    """``S^alpha = V diag(lam^alpha) V^T`` of a symmetric positive semi-definite ``S`` (or its :class:`Spectrum`).

    ``lam, V`` from :func:`spectrum`, whose clipping rule sets eigenvalues at rounding level (and
    negative ones) to 0, so ``0^alpha = 0``; ``alpha > 0``. float64.
    """
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha: must be a finite positive number, got {alpha!r}")
    lam, V = spectrum(S)
    return (V * lam**alpha) @ V.T


def feature_correlation(A, B) -> float:
    """Pearson correlation of all entries of two matrices of one shape.

    ``rho = <A - mean(A), B - mean(B)> / (||A - mean(A)||_F ||B - mean(B)||_F)`` with ``mean`` the
    scalar mean of all entries: the reference code's ``correlate(M, G)`` (aradha/agop_feature_learning,
    ``verify_deep_NFA.py``: subtract each matrix's mean, then the cosine of the flattened matrices),
    which is ``numpy.corrcoef`` of the flattened entries. Computed in float64.
    """
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    if A.shape != B.shape or A.size < 2:
        raise ValueError(f"A, B: must have one shape with >= 2 entries, got {A.shape} and {B.shape}")
    a, b = (A - A.mean()).ravel(), (B - B.mean()).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def power_correlations(nfm, agop_matrix, alphas: Sequence[float]) -> np.ndarray:
    """``feature_correlation(nfm, agop_matrix^alpha)`` for every ``alpha`` (float64, ``(len(alphas),)``).

    One eigendecomposition ``G = V diag(lam) V^T`` serves every ``alpha``: with ``N~ = V^T N V``,
    ``s = V^T 1`` and ``P = G^alpha = V diag(lam^alpha) V^T`` (d x d),

    ``sum(N * P) = sum_k lam_k^alpha N~_kk``, ``sum(P) = sum_k lam_k^alpha s_k^2``,
    ``||P||_F^2 = sum_k lam_k^(2 alpha)``,

    and the Pearson correlation of the entries follows from these sums and those of ``N`` in
    ``O(d)`` per ``alpha`` (same clipping rule as :func:`matrix_power`). ``agop_matrix`` may be its
    :class:`Spectrum`.
    """
    return _power_sums(nfm, agop_matrix)(alphas)


def _power_sums(nfm, agop_matrix) -> Callable[[Sequence[float]], np.ndarray]:
    """``alphas -> correlations`` after the one eigendecomposition (:func:`power_correlations`)."""
    N = np.asarray(nfm, np.float64)
    lam, V = spectrum(agop_matrix)
    if N.shape != V.shape:
        raise ValueError(f"nfm: must have the AGOP's shape {V.shape}, got {N.shape}")
    m = N.size  # d^2 entries
    diag = np.sum((V.T @ N) * V.T, axis=1)  # (d,): N~_kk = sum_j (V^T N)_kj V_jk
    s2 = V.sum(axis=0) ** 2  # (d,): (1^T v_k)^2
    n_mean = N.mean()
    n_var = max((N**2).mean() - n_mean**2, 0.0)

    def correlations(alphas) -> np.ndarray:
        alphas = np.asarray(alphas, np.float64).ravel()
        if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
            raise ValueError("alphas: must be finite positive numbers (at least one)")
        powers = np.where(lam[None, :] > 0, np.maximum(lam, 0.0)[None, :] ** alphas[:, None], 0.0)  # (A, d)
        cross, total, square = powers @ diag, powers @ s2, (powers**2).sum(axis=1)
        cov = cross / m - n_mean * total / m
        var = np.maximum(square / m - (total / m) ** 2, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.clip(cov / np.sqrt(var * n_var), -1.0, 1.0)  # rounding can step past +-1

    return correlations


class ExponentFit(NamedTuple):
    """The best exponent: ``alpha`` (refined), its ``correlation``, the ``grid`` and its ``correlations``,
    and ``refined`` (``False`` when the grid's best point lies on the grid's edge and is returned as is)."""

    alpha: float
    correlation: float
    grid: np.ndarray
    correlations: np.ndarray
    refined: bool


def best_exponent(nfm, agop_matrix, alphas: Sequence[float], *, xtol: float = 1e-6) -> ExponentFit:
    """The ``alpha`` that maximises ``feature_correlation(nfm, agop_matrix^alpha)``.

    ``agop_matrix`` may be its :class:`Spectrum`. The correlation is evaluated on the strictly
    increasing grid ``alphas`` (:func:`power_correlations`);
    around the grid's best interior point ``alphas[i]`` the maximum is refined by golden-section search
    (``scipy.optimize.minimize_scalar(method="golden")``) on the bracket ``(alphas[i-1], alphas[i],
    alphas[i+1])``, to ``xtol`` relative. A best point on the edge of the grid is returned unrefined
    (``refined=False``): the maximum may lie beyond it.
    """
    from scipy.optimize import minimize_scalar

    grid = np.asarray(alphas, np.float64).ravel()
    if grid.size < 3 or np.any(np.diff(grid) <= 0):
        raise ValueError("alphas: need at least 3 strictly increasing exponents")
    correlations = _power_sums(nfm, agop_matrix)
    rho = correlations(grid)
    if not np.any(np.isfinite(rho)):
        return ExponentFit(float("nan"), float("nan"), grid, rho, False)
    i = int(np.nanargmax(rho))
    if i in (0, grid.size - 1):
        return ExponentFit(float(grid[i]), float(rho[i]), grid, rho, False)
    negative = lambda a: -float(correlations([a])[0])  # noqa: E731
    found = minimize_scalar(negative, bracket=(grid[i - 1], grid[i], grid[i + 1]), method="golden",
                            options={"xtol": xtol})
    alpha, value = float(found.x), -float(found.fun)
    if not value >= rho[i]:  # never return worse than the grid's best
        alpha, value = float(grid[i]), float(rho[i])
    return ExponentFit(alpha, value, grid, rho, True)
