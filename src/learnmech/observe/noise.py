"""Gradient noise: per-example gradients and the simple gradient noise scale ``B_simple``.

Contract. A *batch* is any pytree whose leaves share a leading example axis of length ``B``
(e.g. ``(x, y)`` with ``x: (B, d_in)``, ``y: (B, d_out)``); ``loss(params, batch)`` is the usual
batch loss that *averages* over the examples of its batch (e.g. :func:`learnmech.observe.mse_loss`,
``L = (1/2n) sum_i ||f(x_i) - y_i||^2``). The per-example gradient ``g_i`` is the gradient of that
same loss evaluated on the batch of one ``{x_i}``, so that the batch gradient is their mean,
``grad L = (1/B) sum_i g_i``. All norms are Euclidean norms over every leaf of the parameter pytree.

The noise scale follows McCandlish, Kaplan, Amodei et al. (2018), "An empirical model of
large-batch training", arXiv:1812.06162:

    B_simple = tr(Sigma) / |G|^2,

with ``G = E[g]`` the true (full-data) gradient and ``Sigma = Cov[g]`` the covariance of a single
example's gradient. The gradient of a mean over ``B`` examples has ``E|G_B|^2 = |G|^2 + tr(Sigma)/B``
(their App. A.1); both estimators below are unbiased for ``|G|^2`` and ``tr(Sigma)`` separately; their
ratio ``B_simple`` is not, so average numerator and denominator over many batches first
(:func:`average_noise_scale`), as the paper does.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "NoiseScale",
    "average_noise_scale",
    "b_noise_at_losses",
    "gradient_noise_scale",
    "noise_scale_blocks",
    "noise_scale_from_batch_sizes",
    "noise_scale_two_batch",
    "per_example_gradients",
]


class NoiseScale(NamedTuple):
    """Estimates of ``B_simple = tr(Sigma) / |G|^2`` and of its numerator and denominator.

    ``trace_cov`` and ``grad_sq_norm`` are unbiased; ``b_simple`` is their ratio. Single-batch
    estimates of ``grad_sq_norm`` can be negative when the gradient is small next to its noise.
    """

    b_simple: jax.Array
    trace_cov: jax.Array
    grad_sq_norm: jax.Array


def _batch_size(tree, field: str) -> int:
    leaves = jax.tree.leaves(tree)
    if not leaves:
        raise ValueError(f"{field}: must have at least one array leaf")
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) > 0 else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"{field}: every leaf needs the same leading example axis, got sizes {sorted(sizes, key=str)}")
    return sizes.pop()


def per_example_gradients(loss: Callable, params, batch):
    """Per-example gradients ``g_i = grad_params loss(params, {example_i})``, stacked on a leading axis.

    ``loss(params, batch)`` averages over the examples of ``batch`` (any pytree with a leading
    example axis ``B``); each example is passed to it as a batch of one, so ``g_i`` is the gradient
    of the per-example loss and the batch gradient ``grad loss(params, batch) = (1/B) sum_i g_i``.
    Returns a pytree shaped like ``params`` with every leaf ``(B, *leaf.shape)``. Computed as
    ``jax.vmap(jax.grad(...))``; jit-friendly (``loss`` is static).
    """
    _batch_size(batch, "batch")

    def one(example):
        single = jax.tree.map(lambda a: a[None], example)  # batch of one: (1, ...)
        return jax.grad(loss)(params, single)

    return jax.vmap(one)(batch)


def _sums(per_example_grads) -> tuple[jax.Array, jax.Array]:
    """``(sum_i |g_i|^2, |sum_i g_i|^2)`` over all leaves."""
    leaves = jax.tree.leaves(per_example_grads)
    sum_sq = sum(jnp.sum(g**2) for g in leaves)  # sum_i |g_i|^2
    sq_sum = sum(jnp.sum(jnp.sum(g, axis=0) ** 2) for g in leaves)  # |sum_i g_i|^2
    return sum_sq, sq_sum


def gradient_noise_scale(per_example_grads=None, *, loss: Callable | None = None, params=None,
                         batch=None) -> NoiseScale:
    """Unbiased one-batch estimate of ``B_simple = tr(Sigma)/|G|^2`` from ``B`` per-example gradients.

    With ``S = sum_i g_i`` and ``Q = sum_i |g_i|^2`` over the ``B`` per-example gradients ``g_i``
    (the leading axis of ``per_example_grads``, see :func:`per_example_gradients`):

        |G|^2_est     = (|S|^2 - Q) / (B (B - 1))        (U-statistic: mean of g_i . g_j over i != j)
        tr(Sigma)_est = (Q - |S|^2 / B) / (B - 1)        (trace of the unbiased sample covariance)

    both unbiased when the ``g_i`` are i.i.d. draws of the per-example gradient; ``b_simple`` is
    their ratio (biased, noisy for one batch: average many with :func:`average_noise_scale`).
    These are the ``B_small = 1``, ``B_big = B`` case of the paper's two-batch estimator
    (:func:`noise_scale_from_batch_sizes`) averaged over the ``B`` choices of the small batch.
    Reference: McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162, Sec. 2 and App. A.1.

    Give either ``per_example_grads`` or ``loss``, ``params`` and ``batch`` (then the per-example
    gradients are computed by :func:`per_example_gradients`). Needs ``B >= 2``. Jit-friendly.
    """
    if per_example_grads is None:
        if loss is None or params is None or batch is None:
            raise ValueError("per_example_grads: give it, or all of loss, params and batch")
        per_example_grads = per_example_gradients(loss, params, batch)
    elif loss is not None or params is not None or batch is not None:
        raise ValueError("per_example_grads: give it or loss/params/batch, not both")
    b = _batch_size(per_example_grads, "per_example_grads")
    if b < 2:
        raise ValueError(f"per_example_grads: need at least 2 examples, got {b}")
    sum_sq, sq_sum = _sums(per_example_grads)
    grad_sq_norm = (sq_sum - sum_sq) / (b * (b - 1))
    trace_cov = (sum_sq - sq_sum / b) / (b - 1)
    return NoiseScale(trace_cov / grad_sq_norm, trace_cov, grad_sq_norm)


def noise_scale_from_batch_sizes(sq_norm_small, sq_norm_big, b_small: int, b_big: int) -> NoiseScale:
    """Two-batch-size estimate of ``B_simple`` (McCandlish et al. 2018, arXiv:1812.06162, App. A.1).

    ``sq_norm_small = |G_small|^2`` and ``sq_norm_big = |G_big|^2`` are squared norms of gradients
    averaged over ``b_small`` and ``b_big`` examples (``b_small < b_big``, static ints). Since
    ``E|G_B|^2 = |G|^2 + tr(Sigma)/B``,

        |G|^2     = (b_big |G_big|^2 - b_small |G_small|^2) / (b_big - b_small)
        tr(Sigma) = (|G_small|^2 - |G_big|^2) / (1/b_small - 1/b_big)

    are unbiased. Arrays of norms (one entry per pair, any shape, the two of equal shape) are
    averaged over *all* entries before the ratio ``B_simple = tr(Sigma)/|G|^2`` is taken, as the
    paper does (it averages numerator and denominator, e.g. with exponential moving averages,
    over many steps; here it is a plain mean). For the per-pair values pass scalars under
    ``jax.vmap``. Jit-friendly.
    """
    if isinstance(b_small, bool) or not isinstance(b_small, (int, np.integer)) or b_small < 1:
        raise ValueError(f"b_small: must be an int >= 1, got {b_small!r}")
    if isinstance(b_big, bool) or not isinstance(b_big, (int, np.integer)) or b_big <= b_small:
        raise ValueError(f"b_big: must be an int > b_small = {b_small}, got {b_big!r}")
    small, big = jnp.asarray(sq_norm_small), jnp.asarray(sq_norm_big)
    if small.shape != big.shape:
        raise ValueError(f"sq_norm_big: shape {big.shape} differs from sq_norm_small shape {small.shape}")
    small, big = jnp.mean(small), jnp.mean(big)  # mean over pairs; the estimators are linear in them
    grad_sq_norm = (b_big * big - b_small * small) / (b_big - b_small)
    trace_cov = (small - big) / (1.0 / b_small - 1.0 / b_big)
    return NoiseScale(trace_cov / grad_sq_norm, trace_cov, grad_sq_norm)


def noise_scale_two_batch(loss, params, groups):
    """``B_simple`` pieces from the two-batch-size estimator on ``G`` i.i.d. small batches of ``b`` examples.

    ``groups`` is a batch pytree with leaves ``(G, b, ...)`` (``loss`` averages over a group's ``b``
    examples). The small-batch gradients ``g_s`` (``b`` examples each) give ``|G_small|^2 = |g_s|^2``,
    their mean ``(1/G) sum_s g_s`` the big-batch gradient over ``B_big = G b`` examples; :func:`learnmech.observe.noise_scale_from_batch_sizes` turns the two
    into unbiased ``|G|^2`` and ``tr(Sigma)`` (McCandlish et al. 2018, arXiv:1812.06162, App. A.1).
    Needs ``G >= 2``; returns the :class:`learnmech.observe.NoiseScale`.
    """
    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, groups)  # leaves (G, *leaf)
    small = sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in jax.tree.leaves(grads))  # (G,)
    big = sum(jnp.sum(jnp.mean(g, axis=0) ** 2) for g in jax.tree.leaves(grads))  # |mean of g_s|^2
    G, b = small.shape[0], jax.tree.leaves(groups)[0].shape[1]
    return noise_scale_from_batch_sizes(small, jnp.full_like(small, big), b, G * b)


def average_noise_scale(estimates: NoiseScale, axis: int | tuple[int, ...] | None = None) -> NoiseScale:
    """Pool stacked estimates (e.g. from ``jax.vmap(gradient_noise_scale)`` over batches).

    Averages ``trace_cov`` and ``grad_sq_norm`` over ``axis`` (default: all) and returns their
    ratio as ``b_simple``: the ratio of means, as in McCandlish et al. 2018 (arXiv:1812.06162,
    App. A.1), not the mean of the per-batch ratios, which is biased and heavy-tailed.
    """
    trace_cov = jnp.mean(estimates.trace_cov, axis=axis)
    grad_sq_norm = jnp.mean(estimates.grad_sq_norm, axis=axis)
    return NoiseScale(trace_cov / grad_sq_norm, trace_cov, grad_sq_norm)


def noise_scale_blocks(loss: Callable, params, data, block: int) -> NoiseScale:
    """``tr(Sigma)`` and ``|G|^2`` on a finite training set by the two-batch estimator over its blocks.

    Small batches: the ``n / b`` disjoint blocks of ``b = block`` consecutive examples of ``data`` (for
    i.i.d. data the blocks are random batches); big batch: all ``n``. The estimator of McCandlish et al.
    (2018, arXiv:1812.06162, App. A.1; :func:`noise_scale_from_batch_sizes`) assumes batches drawn from an
    infinite population, ``E |G_b|^2 = |G|^2 + tr(Sigma) / b``; for blocks of a finite set
    ``E |G_b|^2 = |G|^2 + tr(Sigma) (1/b - 1/n)``, which leaves its ``tr(Sigma)`` unbiased (for the
    per-example covariance with ``1/(n-1)`` normalisation) and its ``|G|^2`` short by ``tr(Sigma) / n``,
    added back here: ``grad_sq_norm`` is then exactly the squared norm of the full training gradient.
    ``block`` must divide ``n`` (static int). Jit-friendly.
    """
    n = _batch_size(data, "data")
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or not 1 <= block < n or n % block:
        raise ValueError(f"block: must be an int that divides n = {n} and is smaller, got {block!r}")
    blocks = jax.tree.map(lambda a: a.reshape(n // block, block, *a.shape[1:]), data)
    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, blocks)  # leaves (n / b, *leaf)
    small = sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in jax.tree.leaves(grads))  # (n / b,)
    full = sum(jnp.sum(g**2) for g in jax.tree.leaves(jax.grad(loss)(params, data)))  # |G_n|^2
    est = noise_scale_from_batch_sizes(jnp.mean(small), full, block, n)
    grad_sq_norm = est.grad_sq_norm + est.trace_cov / n
    return NoiseScale(est.trace_cov / grad_sq_norm, est.trace_cov, grad_sq_norm)


def b_noise_at_losses(path_loss, trace_h_sigma, g_h_g, levels) -> np.ndarray:
    """``B_noise = tr(H Sigma) / G^T H G`` where a path's loss first falls to each of ``levels`` (NaN: never).

    ``path_loss``, ``trace_h_sigma``, ``g_h_g``: ``(T,)`` along a path (e.g. full-batch gradient descent, whose
    ``G`` is the exact gradient), in the order of its steps; ``B_noise`` of McCandlish, Kaplan, Amodei et al.
    2018 (arXiv:1812.06162, Sec. 2) is interpolated linearly in ``log B_noise`` against ``log L`` between the
    last point above a level and the first at or below it. A level above the path's first loss is NaN too.

    >>> b_noise_at_losses([1.0, 0.1, 0.01], [10.0, 10.0, 10.0], [1.0, 0.1, 0.01], [0.1, np.sqrt(0.1)]).round(6).tolist()
    [100.0, 31.622777]
    """
    loss, b = np.asarray(path_loss, np.float64), np.asarray(trace_h_sigma, np.float64) / np.asarray(g_h_g, np.float64)
    out = np.full(np.shape(levels), np.nan)
    for i, level in enumerate(np.asarray(levels, np.float64)):
        below = np.flatnonzero(loss <= level)
        j = below[0] if below.size else 0
        if j > 0 and np.all(np.isfinite(loss[j - 1:j + 1]) & (loss[j - 1:j + 1] > 0)) and np.all(b[j - 1:j + 1] > 0):
            w = np.log(loss[j - 1] / level) / np.log(loss[j - 1] / loss[j])  # 0 at the point above, 1 at the one below
            out[i] = np.exp((1 - w) * np.log(b[j - 1]) + w * np.log(b[j]))
    return out
