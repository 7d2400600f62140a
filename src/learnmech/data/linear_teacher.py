"""Linear-teacher regression tasks with prescribed singular values.

The task of Saxe, McClelland & Ganguli (2014), "Exact solutions to the nonlinear dynamics of
learning in deep linear neural networks", arXiv:1312.6120: inputs ``x`` in R^{d_in}, targets
``y = W* x`` in R^{d_out} with the teacher map ``W* = U diag(s) V^T`` of shape (d_out, d_in).
In the paper's notation ``Sigma^{31} = U S V^T`` is the input-output correlation and the inputs
are whitened (``Sigma^{11} = I``); here ``sigma_yx`` plays the role of ``Sigma^{31}``.

Conventions: X has shape (n, d_in), Y has shape (n, d_out) (rows are examples); the square
loss is ``L = (1/2n) sum_i ||W x_i - y_i||^2`` (one half, averaged over examples).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .gaussian import _float_dtype, _typed_key

__all__ = [
    "random_orthogonal",
    "LinearTeacher",
    "empirical_statistics",
    "population_loss",
]


def random_orthogonal(key, n: int, dtype=jnp.float32):
    """Haar-distributed random orthogonal matrix ``Q`` of shape (n, n).

    ``G = Q R`` is the QR decomposition of an (n, n) standard Gaussian matrix; returning
    ``Q diag(sign(diag(R)))`` makes the factorisation unique (R with positive diagonal), which is
    what makes ``Q`` exactly Haar distributed (Mezzadri 2007, arXiv:math-ph/0609050).

    >>> q = random_orthogonal(jax.random.key(0), 3)
    >>> bool(jnp.allclose(q.T @ q, jnp.eye(3), atol=1e-6))
    True
    """
    return _haar(_typed_key(key), int(n), _float_dtype(dtype))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _haar(key, n: int, dt):
    g = jax.random.normal(key, (n, n), dt)  # (n, n)
    q, r = jnp.linalg.qr(g)  # (n, n), (n, n)
    signs = jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(dt)  # (n,)
    return q * signs[None, :]  # (n, n), column j flipped where R_jj < 0


def _validate(U: np.ndarray, s: np.ndarray, V: np.ndarray) -> None:
    """Raise ValueError unless (U, s, V) is a valid thin SVD triple (see LinearTeacher)."""
    if U.ndim != 2 or V.ndim != 2 or s.ndim != 1:
        raise ValueError(
            "LinearTeacher needs U (d_out, r), s (r,), V (d_in, r); got shapes "
            f"U {U.shape}, s {s.shape}, V {V.shape}"
        )
    r = s.shape[0]
    if r < 1 or U.shape[1] != r or V.shape[1] != r:
        raise ValueError(
            f"rank mismatch: s has {r} values but U has {U.shape[1]} and V has "
            f"{V.shape[1]} columns (need equal and >= 1)"
        )
    if not (U.dtype == s.dtype == V.dtype) or not jnp.issubdtype(U.dtype, jnp.floating):
        raise ValueError(
            f"U, s, V must share one floating dtype, got {U.dtype}, {s.dtype}, {V.dtype}"
        )
    if not np.all(s > 0):
        raise ValueError(f"singular values s must be strictly positive, got {s}")
    if not np.all(s[:-1] >= s[1:]):
        raise ValueError(f"singular values s must be sorted in decreasing order, got {s}")
    tol = 1000 * float(jnp.finfo(U.dtype).eps)
    for name, a in (("U", U), ("V", V)):
        if a.shape[0] < r:
            raise ValueError(f"{name} {a.shape} cannot have {r} orthonormal columns")
        a = a.astype(np.float64)
        err = float(np.max(np.abs(a.T @ a - np.eye(r))))
        if err > tol:
            raise ValueError(
                f"columns of {name} must be orthonormal: max |{name}^T {name} - I| = "
                f"{err:.3g} > {tol:.3g}"
            )


@dataclasses.dataclass(frozen=True, eq=False)
class LinearTeacher:
    """Teacher map ``W* = U diag(s) V^T`` (d_out, d_in) with orthonormal singular vectors.

    Attributes:
      U: (d_out, r) output singular vectors, orthonormal columns.
      s: (r,) singular values, strictly positive, sorted non-increasing (ties allowed).
      V: (d_in, r) input singular vectors, orthonormal columns.

    All three share one floating dtype; it is the dtype of everything the teacher produces.
    Invariants are checked when built (ValueError on violation); column orthonormality is
    checked to ``1000 * eps`` of the dtype.
    """

    U: jax.Array
    s: jax.Array
    V: jax.Array

    def __post_init__(self):
        U, s, V = (jnp.asarray(a) for a in (self.U, self.s, self.V))
        _validate(np.asarray(U), np.asarray(s), np.asarray(V))  # on the host: no compiles
        object.__setattr__(self, "U", U)
        object.__setattr__(self, "s", s)
        object.__setattr__(self, "V", V)

    # ---------------------------------------------------------------- constructors
    @classmethod
    def random(cls, key, d_in: int, d_out: int, s, dtype=jnp.float32) -> "LinearTeacher":
        """Teacher with Haar-random singular vectors: U, V are the first r columns of
        independent Haar orthogonal matrices of sizes d_out and d_in; ``r = len(s)``."""
        dt = _float_dtype(dtype)
        s = jnp.atleast_1d(jnp.asarray(s, dt))  # (r,)
        _check_rank(s.shape[0], d_in, d_out)
        k_u, k_v = jax.random.split(_typed_key(key))
        r = s.shape[0]
        U = random_orthogonal(k_u, d_out, dt)[:, :r]  # (d_out, r)
        V = random_orthogonal(k_v, d_in, dt)[:, :r]  # (d_in, r)
        return cls(U, s, V)

    @classmethod
    def aligned(cls, d_in: int, d_out: int, s, dtype=jnp.float32) -> "LinearTeacher":
        """Teacher aligned with the coordinate axes: U, V are the first r columns of the
        identity, so ``W*[k, k] = s_k`` and all other entries are zero."""
        dt = _float_dtype(dtype)
        s = jnp.atleast_1d(jnp.asarray(s, dt))  # (r,)
        _check_rank(s.shape[0], d_in, d_out)
        r = s.shape[0]
        return cls(jnp.asarray(np.eye(d_out, r), dt), s, jnp.asarray(np.eye(d_in, r), dt))

    # ---------------------------------------------------------------- properties
    @property
    def d_in(self) -> int:
        return self.V.shape[0]

    @property
    def d_out(self) -> int:
        return self.U.shape[0]

    @property
    def rank(self) -> int:
        return self.s.shape[0]

    @property
    def dtype(self):
        return self.U.dtype

    @property
    def matrix(self):
        """The teacher map ``W* = U diag(s) V^T``, shape (d_out, d_in)."""
        return _compose(self.U, self.s, self.V)  # (d_out, d_in)

    # ---------------------------------------------------------------- statistics and data
    def population_statistics(self, noise: float = 0.0) -> dict:
        """Second moments of ``x ~ N(0, I)``, ``y = W* x + noise * xi`` with ``xi ~ N(0, I)``.

        Returns a dict with
          sigma_xx: (d_in, d_in) = I,
          sigma_yx: (d_out, d_in) = E[y x^T] = W*,
          sigma_yy: (d_out, d_out) = E[y y^T] = W* W*^T + noise^2 I.

        ``noise`` is the standard deviation of the label noise, the same convention as
        :meth:`whitened_sample` (so ``noise**2`` is added to the diagonal of sigma_yy).
        """
        w = self.matrix  # (d_out, d_in)
        return {
            "sigma_xx": jnp.asarray(np.eye(self.d_in), self.dtype),  # (d_in, d_in)
            "sigma_yx": w,  # (d_out, d_in)
            "sigma_yy": w @ w.T + noise**2 * jnp.asarray(np.eye(self.d_out), self.dtype),
        }

    def whitened_sample(self, key, n: int, noise: float = 0.0):
        """Sample of ``n`` exactly whitened inputs and their (noisy) teacher targets.

        ``G`` (n, d_in) is standard Gaussian; ``M = G^T G / n`` its empirical second moment;
        ``X = G M^{-1/2}`` with the inverse symmetric square root (computed stably as
        ``sqrt(n) U V^T`` from the thin SVD ``G = U S V^T``), so ``X^T X / n = I`` exactly (to
        float precision, whatever the conditioning of G) — isotropic in every direction, not
        just in expectation. The symmetric root is the whitening closest to G itself, so X
        remains a rotation-equivariant function of G. ``Y = X W*^T + noise * Xi`` with ``Xi`` (n, d_out) standard Gaussian.
        Without noise ``Y^T X / n = W*`` exactly, so the sample has precisely
        :meth:`population_statistics` (with noise only sigma_xx is exact).

        Args:
          key: jax PRNG key.
          n: number of examples; must be >= d_in (else M is singular).
          noise: standard deviation of the additive label noise.

        Returns:
          X: (n, d_in), Y: (n, d_out), both in the teacher's dtype.
        """
        n = int(n)
        if n < self.d_in:
            raise ValueError(f"whitened_sample needs n >= d_in = {self.d_in}, got n = {n}")
        return _whitened_sample(_typed_key(key), self.matrix, n, noise)


@functools.partial(jax.jit, static_argnums=(2,))
def _whitened_sample(key, w, n: int, noise):
    d_out, d_in = w.shape
    z = jax.random.normal(key, (n, d_in + d_out), w.dtype)  # one draw: cheaper to compile
    g, xi = z[:, :d_in], z[:, d_in:]  # (n, d_in) inputs, (n, d_out) label noise
    # X = G M^{-1/2} with M = G^T G / n equals sqrt(n) U V^T for the thin SVD G = U S V^T (the
    # polar factor of G). Computed this way its error is O(eps), independent of cond(G); forming
    # M^{-1/2} explicitly would lose eps * cond(G)^2 (1e-2 in float32 when n = d_in).
    u, _, vt = jnp.linalg.svd(g, full_matrices=False)  # (n, d_in), (d_in,), (d_in, d_in)
    x = jnp.sqrt(jnp.asarray(n, g.dtype)) * (u @ vt)  # (n, d_in), X^T X / n = I
    y = x @ w.T  # (n, d_out)
    y = y + noise * xi  # (n, d_out); exactly X W*^T when noise = 0
    return x, y


@jax.jit
def _compose(U, s, V):
    return (U * s[None, :]) @ V.T  # (d_out, d_in) = U diag(s) V^T


def _check_rank(r: int, d_in: int, d_out: int) -> None:
    if r < 1 or r > min(d_in, d_out):
        raise ValueError(
            f"number of singular values r = {r} must satisfy 1 <= r <= min(d_in, d_out) = "
            f"{min(d_in, d_out)}"
        )


@jax.jit  # the shape checks below run once per shape, at trace time
def empirical_statistics(X, Y) -> dict:
    """Empirical second moments of a sample, in the format of ``population_statistics``.

    sigma_xx = X^T X / n (d_in, d_in), sigma_yx = Y^T X / n (d_out, d_in),
    sigma_yy = Y^T Y / n (d_out, d_out); uncentred. With these, ``population_loss(W, stats)``
    equals the sample loss ``(1/2n) sum_i ||W x_i - y_i||^2`` for any W.
    """
    X, Y = jnp.asarray(X), jnp.asarray(Y)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"need X (n, d_in) and Y (n, d_out), got {X.shape} and {Y.shape}")
    n = X.shape[0]
    return {
        "sigma_xx": X.T @ X / n,  # (d_in, d_in)
        "sigma_yx": Y.T @ X / n,  # (d_out, d_in)
        "sigma_yy": Y.T @ Y / n,  # (d_out, d_out)
    }


@jax.jit  # the shape check below runs once per shape, at trace time
def population_loss(W, stats: dict):
    """Square loss of the end-to-end linear map ``W`` (d_out, d_in) from second moments.

    ``L(W) = 1/2 tr(W Sxx W^T) - tr(W Sxy) + 1/2 tr(Syy)`` with ``Sxy = Syx^T``, i.e.
    ``E[1/2 ||W x - y||^2]``; on a sample whose statistics are ``stats`` it equals
    ``(1/2n) sum_i ||W x_i - y_i||^2``. For whitened noiseless data it is
    ``1/2 ||W - W*||_F^2``. Where a paper normalises the loss differently (e.g. a sum over
    examples, or no 1/2), its learning rate and gradient-flow time are rescaled accordingly.

    Args:
      W: (d_out, d_in) end-to-end map (e.g. the product of a deep linear network's layers).
      stats: dict with sigma_xx (d_in, d_in), sigma_yx (d_out, d_in), sigma_yy (d_out, d_out).

    Returns:
      scalar.
    """
    sxx, syx, syy = stats["sigma_xx"], stats["sigma_yx"], stats["sigma_yy"]
    W = jnp.asarray(W)
    if W.shape != syx.shape:
        raise ValueError(f"W must have shape {syx.shape} (d_out, d_in), got {W.shape}")
    quad = 0.5 * jnp.sum((W @ sxx) * W)  # 1/2 tr(W Sxx W^T)
    cross = jnp.sum(W * syx)  # tr(W Sxy) = sum_ij W_ij Syx_ij
    return quad - cross + 0.5 * jnp.trace(syy)

