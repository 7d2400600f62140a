"""The training and test sets of modular addition: a seeded split of the ``p^2`` pairs.

The pairs and their encoding are :mod:`learnmech.theory.modular`'s (``all_pairs``, row ``a * p + b``); the
split deals them into a training set of ``round(fraction p^2)`` pairs and a test set of the rest by a seeded
permutation (Power et al. 2022, arXiv:2201.02177, train on a fraction of the table).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Split", "train_test_split"]


class Split(NamedTuple):
    """Indices into ``all_pairs(p)``: ``train`` ``(n_train,)`` and ``test`` ``(p^2 - n_train,)``, each sorted."""

    train: np.ndarray
    test: np.ndarray


def train_test_split(p: int, fraction: float, seed: int) -> Split:
    """A deterministic split of the ``p^2`` pairs: ``round(fraction p^2)`` for training, the rest for test.

    The pairs are dealt by ``numpy.random.default_rng(seed).permutation(p^2)``; both parts must be non-empty.
    """
    if int(p) != p or p < 2:
        raise ValueError(f"p: must be an integer >= 2, got {p!r}")
    p = int(p)
    n_train = int(round(fraction * p * p))
    if not 0 < n_train < p * p:
        raise ValueError(f"fraction: must leave both sets non-empty (0 < fraction p^2 < p^2), got {fraction!r}")
    perm = np.random.default_rng(seed).permutation(p * p)
    return Split(np.sort(perm[:n_train]), np.sort(perm[n_train:]))
