"""Minibatch sampling: which training examples a member's step reads.

Contract. ``draw_batch(sampling, batch_size, key, step, data)`` returns the batch of step ``step``
(a pytree like ``data``, every leaf indexed along its leading axis of ``n`` examples). It depends
only on the member's batch ``key`` and the step count, so a member's batches do not depend on its
neighbours in an ensemble, and two members with the same seed read the same examples.

- ``batch_size=None``: the full batch, ``data`` itself.
- ``"without_replacement"``: a uniformly random subset of ``batch_size`` distinct examples, drawn
  afresh every step from ``fold_in(key, step)`` (``jax.random.choice`` sorts all ``n`` keys,
  ``O(n log n)`` per step).
- ``"with_replacement"``: ``batch_size`` i.i.d. indices from ``fold_in(key, step)``, ``O(batch_size)``
  per step: the choice for small batches from a large set, where the sort would dominate the step.
- ``"stream"``: one fixed stream of examples per seed, read ``batch_size`` at a time: step ``s`` reads
  stream positions ``s B .. s B + B - 1``, position ``p`` being example ``randint(fold_in(key, p), n)``.
  With gradient accumulation over ``k`` steps (``MemberProgram.accumulate``) an update at batch
  ``k B`` reads positions ``[t k B, (t + 1) k B)``, so members with different ``k`` but the same seed
  see the same examples in the same order: batch sizes compared on common random numbers (the device
  of the linear-scaling rule, Goyal et al. 2017, arXiv:1706.02677).
- ``"epochs"``: a stream read as in ``"stream"`` (same positions, so gradient accumulation keeps
  common random numbers), but without repetition inside an epoch: position ``p`` is example
  ``permute(fold_in(key, e), p mod n, n)`` with epoch ``e = p // n``, a keyed permutation of
  ``range(n)`` evaluated per index (:func:`~learnmech.train.shuffle.permute`, the swap-or-not shuffle,
  ``O(rounds)`` work per example and no ``n``-sized array). No example is read twice before every
  example was read once; each epoch has a fresh order. :func:`epochs_read` counts the passes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from learnmech.train.shuffle import default_rounds, permute, permute_with, round_material

__all__ = ["SAMPLINGS", "draw_batch", "epoch_positions", "epochs_read"]

SAMPLINGS = ("without_replacement", "with_replacement", "stream", "epochs")
STREAMS = ("stream", "epochs")  # samplings that read consecutive positions of one stream per seed


def epochs_read(n_examples: int, batch_size: int, steps: int) -> float:
    """Passes over the data that ``steps`` steps of ``batch_size`` examples make: ``steps B / n``."""
    if n_examples < 1 or batch_size < 1 or steps < 0:
        raise ValueError(f"epochs_read: need n_examples >= 1, batch_size >= 1, steps >= 0, got "
                         f"{(n_examples, batch_size, steps)}")
    return steps * batch_size / n_examples


def epoch_positions(key: jax.Array, positions: jax.Array, n: int, epochs: int | None = None) -> jax.Array:
    """Example read at stream position ``p``: ``permute(fold_in(key, p // n), p mod n, n)`` (elementwise).

    ``epochs``: ``None``, or a static bound on how many consecutive epochs ``positions`` touch (from the
    epoch of the smallest position on). The round material of each epoch's permutation
    (:func:`~learnmech.train.shuffle.round_material`) is then drawn once per epoch and shared by the
    positions in it, instead of once per position: the same examples, fewer hashes. A training step's
    ``B`` consecutive positions touch at most ``(B - 1) // n + 2`` epochs.
    """
    positions = jnp.asarray(positions)
    flat = positions.ravel()
    if epochs is None:
        epoch_keys = jax.vmap(lambda p: jax.random.fold_in(key, p // n))(flat)
        examples = jax.vmap(lambda k, p: permute(k, p % n, n))(epoch_keys, flat)
        return examples.reshape(positions.shape)
    first = jnp.min(flat) // n
    rounds = default_rounds(n)
    table = jax.vmap(lambda e: round_material(jax.random.fold_in(key, first + e), n, rounds))(jnp.arange(epochs))
    which = flat // n - first  # (P,) row of the position's epoch in the table
    examples = jax.vmap(lambda w, p: permute_with(jax.tree.map(lambda t: t[w], table), p % n, n))(which, flat)
    return examples.reshape(positions.shape)


def _examples(data) -> int:
    return jax.tree.leaves(data)[0].shape[0]


def _indices(sampling: str, batch_size: int, key: jax.Array, step: jax.Array, n: int) -> jax.Array:
    """Example indices ``(batch_size,)`` of step ``step``."""
    if sampling in STREAMS:
        positions = step * batch_size + jnp.arange(batch_size)  # (B,)
        if sampling == "epochs":
            return epoch_positions(key, positions, n, epochs=(batch_size - 1) // n + 2)
        return jax.vmap(lambda p: jax.random.randint(jax.random.fold_in(key, p), (), 0, n))(positions)
    step_key = jax.random.fold_in(key, step)
    if sampling == "with_replacement":
        return jax.random.randint(step_key, (batch_size,), 0, n)
    return jax.random.choice(step_key, n, (batch_size,), replace=False)


def draw_batch(sampling: str, batch_size: int | None, key: jax.Array, step: jax.Array, data):
    """The batch of step ``step`` (see the module docstring); ``data`` itself when ``batch_size`` is None."""
    if batch_size is None:
        return data
    index = _indices(sampling, batch_size, key, step, _examples(data))
    return jax.tree.map(lambda a: jnp.asarray(a)[index], data)  # numpy leaves cannot take a traced index
