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
``fold_in(., x)``). ``K_r`` and the key of ``F_r`` depend on the key alone: they are drawn once per key
(:func:`round_material`) and shared by every index, so a round costs one threefry hash per element.

Rounds. The paper shows that the swap-or-not shuffle approaches a uniform random permutation with a
number of rounds that grows like ``log n`` (their analysis holds even when all ``n`` points are
queried). :func:`default_rounds` takes ``6 ceil(log2 n) + 12``: a documented choice, not the paper's
constant; it is a statistical shuffle for reading examples, not a cipher. The tests check the bijection
exactly and the uniformity of where an index lands over many keys (chi-square).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Rounds", "default_rounds", "permute", "permute_with", "round_material"]


def default_rounds(n: int) -> int:
    """Rounds of the swap-or-not shuffle on ``Z_n``: ``6 ceil(log2 n) + 12`` (see the module docstring)."""
    return 6 * math.ceil(math.log2(max(n, 2))) + 12


class Rounds(NamedTuple):
    """The round material of one key: ``constants[r]`` is ``K_r``, ``bit_keys[r]`` the key of ``F_r``."""

    constants: jax.Array  # (rounds,) in Z_n
    bit_keys: jax.Array  # (rounds,) jax.random keys


def _dtype(n: int):
    return jnp.int32 if n < 2**31 else jnp.int64


def round_material(key: jax.Array, n: int, rounds: int) -> Rounds:
    """``K_r`` and the key of ``F_r`` for every round ``r`` of ``pi_key`` (one vectorised draw per key).

    Round ``r`` splits ``fold_in(key, r)`` into ``(k_const, k_bits)``; ``K_r = randint(k_const, 0, n)``.
    They do not depend on the index, so every index permuted under one key shares them.
    """
    parts = jax.vmap(lambda r: jax.random.split(jax.random.fold_in(key, r)))(jnp.arange(rounds))  # (rounds, 2)
    constants = jax.vmap(lambda k: jax.random.randint(k, (), 0, n, dtype=_dtype(n)))(parts[:, 0])
    return Rounds(constants, parts[:, 1])


def permute_with(material: Rounds, x: jax.Array, n: int) -> jax.Array:
    """``pi(x)`` for a scalar ``x`` in ``Z_n`` under the rounds of ``material`` (:func:`round_material`)."""

    def one_round(r, x):
        partner = jnp.mod(material.constants[r] - x, n)  # X' = K_r - X mod n
        xhat = jnp.maximum(x, partner)  # the pair's shared name
        bit = jax.random.bits(jax.random.fold_in(material.bit_keys[r], xhat), (), jnp.uint32) & 1  # F_r(X_hat)
        return jnp.where(bit == 1, partner, x)

    return jax.lax.fori_loop(0, material.constants.shape[0], one_round, x)


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
    x = jnp.mod(jnp.asarray(index).astype(_dtype(n)), n)
    material = round_material(key, n, rounds)
    flat = jax.vmap(lambda v: permute_with(material, v, n))(x.ravel())
    return flat.reshape(x.shape)
