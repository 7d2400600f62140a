"""Neural collapse: the four metrics of Papyan, Han & Donoho 2020 (arXiv:2008.08186), for any features.

Contract. Every function takes arrays and returns arrays or scalars; nothing here knows the model.
``features`` are ``(N, p)`` (row ``i`` is the last-layer feature ``h_i`` of example ``i``), ``labels``
``(N,)`` integers in ``0 .. K-1``, the classifier ``W`` is ``(K, p)`` with row ``c`` the weight vector of
class ``c`` (Papyan's and PyTorch's ``nn.Linear`` convention; a learnmech :class:`~learnmech.nets.MLP`
stores its last layer as ``(p, K)``, so pass ``params[-1]["w"].T``), ``predictions`` ``(N,)`` the
network's predicted classes (``argmax`` of its logits, biases included). Computations run in the
inputs' floating dtype (pass float64 under ``jax_enable_x64`` for the pseudo-inverse at 1e-10); every
function traces under ``jit`` and ``vmap`` (``num_classes`` is static).

Definitions (Papyan et al. 2020, section 2 and figures 2-7), with ``N`` examples, ``K`` classes:

- class means ``mu_c = mean_{i: y_i = c} h_i``; global mean ``mu_G = (1/N) sum_i h_i`` (over examples,
  as Papyan and tding1/Neural-Collapse; rhubarbwu/neural-collapse's default is the mean of the class
  means, the same on class-balanced data); centred means ``m_c = mu_c - mu_G``, rows of ``M`` ``(K, p)``;
- ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T``, ``Sigma_B = (1/K) sum_c m_c m_c^T``;
- NC1 ``= tr(Sigma_W Sigma_B^+) / K`` (:func:`nc1`);
- NC2: equinorm ``std_c ||m_c|| / mean_c ||m_c||`` (population std), the pairwise cosines
  ``cos(c, c') = <m_c, m_c'> / (||m_c|| ||m_c'||)`` over ``c != c'``: their mean (``-1/(K-1)`` for a
  simplex ETF), their std (Papyan's figure 3) and Papyan's ``mean |cos + 1/(K-1)|`` (figure 4); and the
  distance of the normalised Gram to the simplex ETF ``|| G/||G||_F - (I - 11^T/K)/sqrt(K-1) ||_F``,
  ``G = M M^T`` (``K x K``) -- tding1's ``compute_ETF`` applied to the centred means, which is
  rhubarbwu's ``simplex_etf_error`` (:func:`etf_distance`);
- NC3 ``= || W/||W||_F - M/||M||_F ||_F^2`` (:func:`self_duality`; Papyan's ``W^T`` against ``M-dot``
  with means as columns, written here with both as ``(K, p)``, the same number);
- NC4: the fraction of examples whose prediction differs from the nearest class centre
  ``argmin_c ||h_i - mu_c||`` (:func:`ncc_disagreement`; ties go to the lowest class index).

Memory: every intermediate is ``O(N (p + K) + p K)`` -- no larger than the features themselves -- and
no ``p x p`` matrix is formed by :func:`nc1` (the covariances are formed only by the two helpers that
return them), so the functions need no blocking over examples.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "ClassStatistics",
    "CollapseMetrics",
    "between_class_covariance",
    "class_statistics",
    "collapse_metrics",
    "equiangularity",
    "Equiangularity",
    "equinorm",
    "etf_distance",
    "nc1",
    "ncc_disagreement",
    "self_duality",
    "within_class_covariance",
]


class ClassStatistics(NamedTuple):
    """Class means ``(K, p)``, the global mean over examples ``(p,)`` and examples per class ``(K,)``."""

    means: jax.Array
    global_mean: jax.Array
    counts: jax.Array

    @property
    def centred(self) -> jax.Array:
        """``M = mu_c - mu_G`` as rows, ``(K, p)``."""
        return self.means - self.global_mean


class Equiangularity(NamedTuple):
    """NC2's angle statistics over pairs ``c != c'`` of centred means: mean, std, ``mean |cos + 1/(K-1)|``."""

    mean_cosine: jax.Array
    std_cosine: jax.Array
    shifted_cosine: jax.Array


class CollapseMetrics(NamedTuple):
    """All four metrics of one set of features (see the module docstring for each formula)."""

    nc1: jax.Array
    equinorm_means: jax.Array
    equinorm_classifier: jax.Array
    mean_cosine: jax.Array
    std_cosine: jax.Array
    shifted_cosine: jax.Array
    etf_distance: jax.Array
    nc3: jax.Array
    nc4: jax.Array


def _as_float(a) -> jax.Array:
    a = jnp.asarray(a)
    return a.astype(jnp.result_type(a.dtype, jnp.float32))


def _checked(features, labels, num_classes: int) -> jax.Array:
    """Features as floats, after the shape checks (shapes are static, so this also runs under jit)."""
    h = _as_float(features)
    if h.ndim != 2 or jnp.ndim(labels) != 1 or jnp.shape(labels)[0] != h.shape[0]:
        raise ValueError(f"features, labels: must be (N, p) and (N,), got {h.shape} and {jnp.shape(labels)}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes: must be an int >= 2, got {num_classes!r}")
    return h


def class_statistics(features, labels, num_classes: int) -> ClassStatistics:
    """``mu_c = mean_{y_i = c} h_i``, ``mu_G = (1/N) sum_i h_i`` and the counts ``N_c``.

    Args:
      features: ``(N, p)``. labels: ``(N,)`` ints in ``0 .. num_classes - 1``. num_classes: ``K`` (static).

    A class without examples has a zero mean (its count is 0); every metric assumes none is empty.
    """
    h = _checked(features, labels, num_classes)  # (N, p)
    onehot = (labels[:, None] == jnp.arange(num_classes)[None, :]).astype(h.dtype)  # (N, K)
    counts = onehot.sum(axis=0)  # (K,)
    means = (onehot.T @ h) / jnp.maximum(counts, 1.0)[:, None]  # (K, p)
    return ClassStatistics(means, h.mean(axis=0), counts)


def within_class_covariance(features, labels, means) -> jax.Array:
    """``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T``, ``(p, p)`` (Papyan et al. 2020, eq. 2)."""
    d = _as_float(features) - means[labels]  # (N, p)
    return d.T @ d / d.shape[0]


def between_class_covariance(means, global_mean) -> jax.Array:
    """``Sigma_B = (1/K) sum_c (mu_c - mu_G)(mu_c - mu_G)^T``, ``(p, p)`` (Papyan et al. 2020, eq. 1)."""
    m = means - global_mean  # (K, p)
    return m.T @ m / m.shape[0]


def nc1(features, labels, num_classes: int, rcond: float | None = None) -> jax.Array:
    """NC1 ``= tr(Sigma_W Sigma_B^+) / K`` (Papyan, Han & Donoho 2020, arXiv:2008.08186, figure 6).

    Pseudo-inverse convention: ``Sigma_B`` is PSD of rank ``<= K - 1`` (its ``K`` centred means sum to
    zero when weighted by the counts). Its eigenpairs come from the thin SVD of the centred means,
    ``M^T = U S V^T`` (``Sigma_B = U (S^2/K) U^T``), and the pseudo-inverse keeps eigenvalue ``i`` when
    (a) ``i < K - 1`` in descending order and (b) ``s_i^2 > rcond * s_0^2``, with ``rcond`` defaulting to
    ``p * eps(dtype)``, scipy.linalg.pinv's default cutoff (``max(rows, cols) * eps``) on ``p x p`` ``Sigma_B``. Rule (b) is
    what tding1/Neural-Collapse computes (``scipy.linalg.pinv(Sigma_B)``); rule (a) is Han, Papyan &
    Donoho 2022's top-``(K-1)`` form (rhubarbwu/neural-collapse ``covariance_ratio(metric="svd")``). In
    exact arithmetic, and in float64 whenever ``Sigma_B`` has numerical rank ``K - 1``, both give the same
    number; (a) also keeps a rounding-level null direction from being inverted in float32. Then

        NC1 = (1/K) sum_i (u_i^T Sigma_W u_i) / (s_i^2 / K) = sum_i ||D u_i||^2 / (N s_i^2),

    ``D`` the ``(N, p)`` within-class deviations, so no ``p x p`` matrix is formed.
    """
    h = _checked(features, labels, num_classes)
    stats = class_statistics(h, labels, num_classes)
    p = h.shape[1]
    u, s, _ = jnp.linalg.svd(stats.centred.T, full_matrices=False)  # (p, K), (K,) descending
    cutoff = (p * jnp.finfo(h.dtype).eps if rcond is None else rcond) * s[0] ** 2
    keep = (jnp.arange(s.size) < num_classes - 1) & (s**2 > cutoff)  # (K,)
    d = h - stats.means[labels]  # (N, p)
    proj = jnp.sum((d @ u) ** 2, axis=0) / h.shape[0]  # (K,) u_i^T Sigma_W u_i
    return jnp.sum(jnp.where(keep, proj / jnp.where(keep, s**2, 1.0), 0.0))


def equinorm(vectors) -> jax.Array:
    """NC2 equinorm ``std_c ||v_c|| / mean_c ||v_c||`` (population std; Papyan et al. 2020, figure 2).

    ``vectors``: ``(K, p)``, the centred class means ``M`` or the classifier rows ``W``.
    """
    norms = jnp.linalg.norm(_as_float(vectors), axis=1)  # (K,)
    return jnp.std(norms) / jnp.mean(norms)


def _cosines(vectors) -> jax.Array:
    v = _as_float(vectors)
    unit = v / jnp.linalg.norm(v, axis=1, keepdims=True)  # (K, p)
    return unit @ unit.T  # (K, K)


def equiangularity(vectors) -> Equiangularity:
    """NC2 angles of the rows ``v_c`` of ``vectors`` ``(K, p)``, over the ``K(K-1)`` pairs ``c != c'``.

    ``cos(c, c') = <v_c, v_c'> / (||v_c|| ||v_c'||)``; returns their mean (``-1/(K-1)`` for a simplex
    ETF), their population std (Papyan et al. 2020, figure 3) and ``mean |cos + 1/(K-1)|`` (figure 4).
    Note: ``K`` centred means of equal counts sum to zero, so with equal norms their mean cosine is
    exactly ``-1/(K-1)`` whatever their angles; the std and the shifted mean are the tests of equal angles.
    """
    cos = _cosines(vectors)
    k = cos.shape[0]
    off = ~jnp.eye(k, dtype=bool)
    pairs = k * (k - 1)
    mean = jnp.sum(jnp.where(off, cos, 0.0)) / pairs
    std = jnp.sqrt(jnp.sum(jnp.where(off, (cos - mean) ** 2, 0.0)) / pairs)
    shifted = jnp.sum(jnp.where(off, jnp.abs(cos + 1.0 / (k - 1)), 0.0)) / pairs
    return Equiangularity(mean, std, shifted)


def etf_distance(vectors) -> jax.Array:
    """``|| G/||G||_F - (I - 11^T/K)/sqrt(K-1) ||_F`` with ``G = V V^T`` the ``K x K`` Gram of the rows.

    tding1/Neural-Collapse ``compute_ETF`` (there applied to the classifier) and rhubarbwu/neural-collapse
    ``simplex_etf_error`` (on the centred means). The target has unit Frobenius norm; 0 for a simplex ETF.
    """
    v = _as_float(vectors)
    k = v.shape[0]
    gram = v @ v.T  # (K, K)
    target = (jnp.eye(k, dtype=v.dtype) - 1.0 / k) / jnp.sqrt(k - 1.0)
    return jnp.linalg.norm(gram / jnp.linalg.norm(gram) - target)


def self_duality(classifier, centred_means) -> jax.Array:
    """NC3 ``|| W/||W||_F - M/||M||_F ||_F^2`` (Papyan et al. 2020, figure 5), both ``(K, p)``.

    ``classifier``: ``W`` with row ``c`` the weights of class ``c``. ``centred_means``: ``M``, row ``c`` is
    ``mu_c - mu_G``. Ranges over ``[0, 4]``; 0 when ``W`` is a positive multiple of ``M``.
    """
    w, m = _as_float(classifier), _as_float(centred_means)
    return jnp.sum((w / jnp.linalg.norm(w) - m / jnp.linalg.norm(m)) ** 2)


def ncc_disagreement(features, means, predictions) -> jax.Array:
    """NC4: fraction of examples with ``predictions_i != argmin_c ||h_i - mu_c||`` (Papyan et al., figure 7).

    Distances as ``||h||^2 - 2 <h, mu_c> + ||mu_c||^2``, ``(N, K)``; ties go to the lowest index.
    """
    h = _as_float(features)
    d2 = jnp.sum(h**2, axis=1)[:, None] - 2.0 * h @ means.T + jnp.sum(means**2, axis=1)[None, :]  # (N, K)
    return jnp.mean((jnp.argmin(d2, axis=1) != predictions).astype(h.dtype))


@functools.partial(jax.jit, static_argnames=("num_classes",))
def collapse_metrics(features, labels, classifier, predictions, num_classes: int) -> CollapseMetrics:
    """NC1-NC4 of one set of features (module docstring): ``features (N, p)``, ``labels (N,)``,
    ``classifier (K, p)``, ``predictions (N,)`` (the network's ``argmax`` over its logits)."""
    if jnp.shape(classifier) != (num_classes, jnp.shape(features)[-1]):
        raise ValueError(f"classifier: must be (num_classes, p) = ({num_classes}, {jnp.shape(features)[-1]}), "
                         f"got {jnp.shape(classifier)}")
    stats = class_statistics(features, labels, num_classes)
    m = stats.centred
    angles = equiangularity(m)
    return CollapseMetrics(
        nc1=nc1(features, labels, num_classes),
        equinorm_means=equinorm(m),
        equinorm_classifier=equinorm(classifier),
        mean_cosine=angles.mean_cosine,
        std_cosine=angles.std_cosine,
        shifted_cosine=angles.shifted_cosine,
        etf_distance=etf_distance(m),
        nc3=self_duality(classifier, m),
        nc4=ncc_disagreement(features, stats.means, predictions),
    )
