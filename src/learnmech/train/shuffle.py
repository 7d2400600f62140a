"""A keyed pseudorandom permutation of ``range(n)``, evaluated one index at a time.

Contract. ``permute(key, index, n)`` is ``pi_key(index)`` for a bijection ``pi_key`` of
``{0, ..., n - 1}`` chosen by ``key``; it works elementwise on an integer array ``index`` with
``O(rounds)`` work and ``O(1)`` memory per element: no ``n``-sized array is ever built, so a training
step can find which examples it reads in a shuffled epoch of a large data set without sorting it.

The map is the swap-or-not shuffle (Hoang, Morris & Rogaway 2012, "An enciphering scheme based on a
card shuffle", CRYPTO 2012, arXiv:1208.1176). Round ``r`` draws a constant ``K_r`` uniform in
``Z_n`` and a round function ``F_r: Z_n -> {0, 1}``, and maps

    X' = (K_r - X) mod n,    X_hat = max(X, X'),    X <- X' if F_r(X_hat) = 1 else X.

``X`` and ``X'`` name each other's partner and share ``X_hat``, so each round is an involution of
``Z_n`` and the composition of rounds is a bijection whatever ``K_r`` and ``F_r`` are. Here ``K_r``
and ``F_r(x)`` (one bit) come from ``jax.random`` keys folded from ``key`` (``fold_in(key, r)``, then
``fold_in(., x)``): two threefry hashes per element and round.

Rounds. The paper shows that the swap-or-not shuffle approaches a uniform random permutation with a
number of rounds that grows like ``log n`` (their analysis holds even when all ``n`` points are
queried). :func:`default_rounds` takes ``6 ceil(log2 n) + 12``: a documented choice, not the paper's
constant; it is a statistical shuffle for reading examples, not a cipher. The tests check the bijection
exactly and the uniformity of where an index lands over many keys (chi-square).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["default_rounds", "permute"]


def default_rounds(n: int) -> int:
    """Rounds of the swap-or-not shuffle on ``Z_n``: ``6 ceil(log2 n) + 12`` (see the module docstring)."""
    return 6 * math.ceil(math.log2(max(n, 2))) + 12


def _round(key: jax.Array, r, x: jax.Array, n: int) -> jax.Array:
    """One swap-or-not round on a scalar ``x`` in ``Z_n`` (an involution of ``Z_n``)."""
    round_key = jax.random.fold_in(key, r)
    k_const, k_bits = jax.random.split(round_key)
    K = jax.random.randint(k_const, (), 0, n, dtype=x.dtype)  # K_r uniform in Z_n
    partner = jnp.mod(K - x, n)  # X' = K_r - X mod n
    xhat = jnp.maximum(x, partner)  # the pair's shared name
    bit = jax.random.bits(jax.random.fold_in(k_bits, xhat), (), jnp.uint32) & 1  # F_r(X_hat)
    return jnp.where(bit == 1, partner, x)


def _permute_one(key: jax.Array, x: jax.Array, n: int, rounds: int) -> jax.Array:
    return jax.lax.fori_loop(0, rounds, lambda r, v: _round(key, r, v, n), x)


def permute(key: jax.Array, index, n: int, rounds: int | None = None) -> jax.Array:
    """``pi_key(index)``: the keyed swap-or-not permutation of ``range(n)``, elementwise over ``index``.

    Args:
      key: a ``jax.random`` key (typed or raw); the permutation is a function of it alone.
      index: integers in ``[0, n)``, any shape (values outside are reduced mod ``n``).
      n: size of the domain (static, ``>= 1``).
      rounds: number of rounds (static); ``None``: :func:`default_rounds` ``(n)``.

    Returns int32 (int64 when ``n`` needs it) of ``index``'s shape. Reference: Hoang, Morris & Rogaway 2012.

    >>> import numpy as np
    >>> out = np.asarray(permute(jax.random.key(0), jnp.arange(10), 10))
    >>> sorted(out.tolist()) == list(range(10))
    True
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: the domain size must be an int >= 1, got {n!r}")
    rounds = default_rounds(n) if rounds is None else rounds
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"rounds: must be an int >= 0, got {rounds!r}")
    dtype = jnp.int32 if n < 2**31 else jnp.int64
    x = jnp.mod(jnp.asarray(index).astype(dtype), n)
    flat = jax.vmap(lambda v: _permute_one(key, v, n, rounds))(x.ravel())
    return flat.reshape(x.shape)
