"""Deep linear networks ``f(x) = W_L ... W_1 x`` (same model contract as :mod:`.mlp`).

Parameters are a list ``[W_1, ..., W_L]`` with ``W_l`` of shape ``(n_l, n_{l-1})`` (the
matrix convention of Saxe et al. 2014, arXiv:1312.6120), so for a batch ``x`` of shape
``(n, d_in)`` the outputs are ``x @ W_1^T @ ... @ W_L^T``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

__all__ = ["DeepLinear", "end_to_end"]


def _haar(key, n, dtype):
    """Haar-random orthogonal ``(n, n)`` matrix (QR with the sign of ``diag(R)`` fixed)."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (n, n), dtype))
    return q * jnp.sign(jnp.diag(r))


def end_to_end(params) -> jax.Array:
    """The product ``W_L ... W_1``, shape ``(d_out, d_in)``."""
    out = params[0]
    for w in params[1:]:
        out = w @ out
    return out


@dataclass(frozen=True)
class DeepLinear:
    """A deep linear network with layer widths ``(d_in, n_1, ..., d_out)``.

    ``init`` draws every entry ``N(0, scale^2)`` (small random initialisation; with ``scale``
    fixed per layer, the initial end-to-end mode strengths are of order ``scale^L`` times a
    width factor). ``init_aligned`` builds the balanced, teacher-aligned initialisation.
    """

    widths: tuple[int, ...]
    scale: float = 1e-3
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if len(self.widths) < 2:
            raise ValueError("widths: need at least (d_in, d_out)")

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    def init(self, key: jax.Array) -> list[jax.Array]:
        keys = jax.random.split(key, self.depth)
        return [
            self.scale * jax.random.normal(k, (n_out, n_in), self.dtype)
            for k, n_in, n_out in zip(keys, self.widths[:-1], self.widths[1:])
        ]

    def init_aligned(self, key: jax.Array, U: jax.Array, V: jax.Array, u0) -> list[jax.Array]:
        """Balanced initialisation aligned with the teacher's singular vectors.

        With ``r`` modes, ``a = u0^{1/L}`` per mode and Haar-random ``R_l`` on each hidden layer:
        ``W_1 = R_1[:, :r] diag(a) V^T``, ``W_l = R_l[:, :r] diag(a) R_{l-1}[:, :r]^T`` and
        ``W_L = U diag(a) R_{L-1}[:, :r]^T``, so ``W_L ... W_1 = U diag(u0) V^T`` and
        ``W_{l+1}^T W_{l+1} = W_l W_l^T`` (balancedness) hold exactly. The dynamics then stay
        decoupled mode by mode (Saxe et al. 2014).

        Args:
          U: ``(d_out, r)``, V: ``(d_in, r)`` orthonormal columns; u0: scalar or ``(r,)``.
        """
        r = U.shape[1]
        if any(w < r for w in self.widths[1:-1]):
            raise ValueError(f"widths: hidden widths must be >= the number of modes ({r})")
        a = jnp.broadcast_to(jnp.asarray(u0, self.dtype), (r,)) ** (1.0 / self.depth)
        keys = jax.random.split(key, max(self.depth - 1, 1))
        frames = [V.astype(self.dtype)]
        frames += [_haar(k, n, self.dtype)[:, :r] for k, n in zip(keys, self.widths[1:-1])]
        frames.append(U.astype(self.dtype))
        return [(frames[l + 1] * a) @ frames[l].T for l in range(self.depth)]

    def apply(self, params, x: jax.Array) -> jax.Array:
        """Outputs ``(n, d_out)`` for inputs ``(n, d_in)``."""
        for w in params:
            x = x @ w.T
        return x

    def activations(self, params, x: jax.Array) -> list[jax.Array]:
        outs = []
        for w in params:
            x = x @ w.T
            outs.append(x)
        return outs

    def lr_multipliers(self) -> list[float]:
        return [1.0] * self.depth
