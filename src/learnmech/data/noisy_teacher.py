"""A noisy teacher-MLP regression split into a training set and a held-out set with clean targets.

Contract. ``y = f*(x) + sigma xi`` with ``x ~ N(0, I_d)``, ``f*`` a random teacher MLP
(:func:`learnmech.data.teacher_mlp_regression`, its draw of ``X`` and ``f*`` from the jax ``key``, the
first argument) and ``xi ~ N(0, 1)`` drawn from numpy's ``default_rng(noise_seed)`` (the draw the
hparams.linear-scaling claim has always used). The first ``n_train`` examples are the training set
``(X, Y)``; the remaining ``n_test`` are held out as ``(X, F, Y)`` with ``F = f*(X)`` the clean
targets, so the excess risk ``(1/2) E (f(x) - f*(x))^2`` is measured without the label-noise floor
``sigma^2 / 2``. Inputs are ``(n, d_in)``, targets ``(n, 1)``, jax arrays of an explicit floating
``dtype``. :func:`iid_groups` draws the i.i.d. small batches that a gradient-noise estimator needs
from such a finite training set (with replacement, so they are i.i.d. draws of its examples).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .teacher_mlp import teacher_mlp_regression

__all__ = ["iid_groups", "noisy_teacher_split"]


def noisy_teacher_split(key, n_train: int, n_test: int, d_in: int, *, noise: float, noise_seed: int,
                        width: int = 32, depth: int = 2, activation: str = "tanh", dtype="float32"):
    """``(X, Y)`` of ``n_train`` training examples and ``(X, F, Y)`` of ``n_test`` held-out ones.

    ``noise`` is the label-noise standard deviation ``sigma``; ``width``, ``depth``, ``activation``
    describe the teacher (:func:`learnmech.data.teacher_mlp_regression`).

    >>> train, test = noisy_teacher_split(jax.random.key(0), 6, 4, 3, noise=0.0, noise_seed=0)
    >>> [a.shape for a in train], [a.shape for a in test]
    ([(6, 3), (6, 1)], [(4, 3), (4, 1), (4, 1)])
    """
    X, F, _ = teacher_mlp_regression(key, n_train + n_test, d_in, width=width, depth=depth,
                                     activation=activation, dtype=dtype)
    X, F = np.asarray(X), np.asarray(F)  # (n, d_in), (n, 1) clean teacher outputs
    xi = np.random.default_rng(noise_seed).standard_normal(F.shape).astype(dtype)  # (n, 1)
    Y = F + noise * xi  # y = f*(x) + sigma xi
    n = n_train
    return (jnp.asarray(X[:n]), jnp.asarray(Y[:n])), (jnp.asarray(X[n:]), jnp.asarray(F[n:]), jnp.asarray(Y[n:]))


def iid_groups(data, n: int, group: int, *, seed: int):
    """``n`` examples of ``data`` drawn with replacement (numpy ``default_rng(seed)``), in groups of ``group``.

    ``data``: a pytree whose leaves share a leading example axis; returns the same pytree with leaves
    ``(n // group, group, ...)``. ``group`` must divide ``n``.

    >>> x = jnp.arange(10.0)[:, None]
    >>> iid_groups((x, x), 6, 3, seed=0)[0].shape
    (2, 3, 1)
    """
    if group < 1 or n % group:
        raise ValueError(f"group: must divide n = {n}, got {group}")
    size = jax.tree.leaves(data)[0].shape[0]
    index = np.random.default_rng(seed).integers(0, size, n)  # (n,)
    return jax.tree.map(lambda a: jnp.asarray(a)[index].reshape(n // group, group, *a.shape[1:]), data)
