"""Representation similarity against naive n x n references written here in numpy (float64).

References: HSIC / CKA as in Kornblith et al. 2019 (arXiv:1905.00414); the unbiased HSIC of
Song et al. 2012 (JMLR 13, eq. 5) written with explicit n x n matrices; mutual kNN by brute-force
sorting and Python set intersection (Huh et al. 2024, arXiv:2405.07987).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import pdist

from learnmech.observe.representation import (
    debiased_cka,
    lazy_linear_cka,
    linear_cka,
    median_distance,
    mutual_knn,
    rbf_cka,
    unbiased_hsic_linear,
)

TOL32 = 2e-5  # float32 against a float64 reference, values of order 1
TOL = {np.float32: TOL32, np.float64: 1e-10}  # conftest enables x64: float64 inputs stay float64
DTYPES = [np.float32, np.float64]


def _centering(n):
    return np.eye(n) - np.ones((n, n)) / n


def _hsic(k, l):  # noqa: E741
    h = _centering(k.shape[0])
    return np.trace(k @ h @ l @ h) / (k.shape[0] - 1) ** 2


def _cka(k, l):  # noqa: E741
    return _hsic(k, l) / np.sqrt(_hsic(k, k) * _hsic(l, l))


def _hsic_unbiased(k, l):  # noqa: E741  Song et al. 2012, eq. 5, with explicit matrices
    n = k.shape[0]
    kt, lt = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    one = np.ones(n)
    return (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * one @ kt @ lt @ one) / (n * (n - 3))


def _rbf(x, frac):
    d2 = np.sum((x[:, None] - x[None]) ** 2, -1)
    sigma = frac * np.median(pdist(x))  # distinct pairs
    return np.exp(-d2 / (2 * sigma**2))


def _pair(seed, n=40, p=7, q=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    y = np.tanh(x @ rng.normal(size=(p, q))) + 0.5 * rng.normal(size=(n, q))  # related, not identical
    return x, y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_linear_cka_matches_naive_hsic(seed, dtype):
    x, y = _pair(seed)
    expected = _cka(x @ x.T, y @ y.T)
    got = linear_cka(x.astype(dtype), y.astype(dtype))
    assert got.dtype == dtype
    assert float(got) == pytest.approx(expected, abs=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_debiased_cka_matches_naive_unbiased_hsic(seed, dtype):
    x, y = _pair(seed)
    k, l = x @ x.T, y @ y.T  # noqa: E741  uncentred: the U-statistic does not depend on centring
    expected = _hsic_unbiased(k, l) / np.sqrt(_hsic_unbiased(k, k) * _hsic_unbiased(l, l))
    got = debiased_cka(x.astype(dtype), y.astype(dtype))
    assert got.dtype == dtype
    assert float(got) == pytest.approx(expected, abs=TOL[dtype])
    xc = x - x.mean(0)
    assert _hsic_unbiased(k, l) == pytest.approx(_hsic_unbiased(xc @ xc.T, l), rel=1e-10)


def test_unbiased_hsic_value():
    x, y = _pair(3, n=30)
    got = unbiased_hsic_linear(jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64))
    assert got.dtype == jnp.float64
    assert float(got) == pytest.approx(_hsic_unbiased(x @ x.T, y @ y.T), rel=1e-10)


def test_float32_by_default_without_x64():
    x, y = _pair(3, n=30)
    with jax.enable_x64(False):
        got = linear_cka(x, y)  # numpy float64 inputs become float32 when x64 is off
        assert got.dtype == jnp.float32
    assert float(got) == pytest.approx(_cka(x @ x.T, y @ y.T), abs=TOL32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("frac", [0.5, 0.8, 2.0])
def test_rbf_cka_matches_naive_kernels(frac, dtype):
    x, y = _pair(2, n=37)
    expected = _cka(_rbf(x, frac), _rbf(y, frac))
    x, y = x.astype(dtype), y.astype(dtype)
    assert float(rbf_cka(x, y, frac)) == pytest.approx(expected, abs=TOL[dtype])
    assert float(rbf_cka(x, y, frac, block=8)) == pytest.approx(expected, abs=TOL[dtype])  # 37 = 4 x 8 + 5


def test_median_distance_exact_and_subsampled():
    x = np.random.default_rng(4).normal(size=(300, 3))
    assert float(median_distance(x)) == pytest.approx(np.median(pdist(x)), rel=1e-5)
    sub = x[[i * 299 // 99 for i in range(100)]]
    assert float(median_distance(x, max_points=100)) == pytest.approx(np.median(pdist(sub)), rel=1e-5)


def test_cka_of_a_representation_with_itself_is_one():
    x, _ = _pair(5)
    for f in (linear_cka, debiased_cka, rbf_cka):
        assert float(f(x, x)) == pytest.approx(1.0, abs=1e-10)
        assert float(f(x.astype(np.float32), x.astype(np.float32))) == pytest.approx(1.0, abs=TOL32)
    assert float(mutual_knn(x, x, k=5)) == 1.0


def test_linear_cka_invariances():
    x, y = _pair(6, p=6)
    x, y = x.astype(np.float32), y.astype(np.float32)
    rng = np.random.default_rng(7)
    q = np.linalg.qr(rng.normal(size=(6, 6)))[0].astype(np.float32)  # orthogonal
    base = float(linear_cka(x, y))
    assert float(linear_cka(x @ q * 3.7, y)) == pytest.approx(base, abs=TOL32)
    assert float(debiased_cka(x @ q * 3.7, y)) == pytest.approx(float(debiased_cka(x, y)), abs=TOL32)
    # a general invertible map (anisotropic scaling of one direction by 20) changes it
    a = np.eye(6, dtype=np.float32)
    a[0, 0] = 20.0
    assert abs(float(linear_cka(x @ a, y)) - base) > 0.05


def _knn_bruteforce(x, y, k, metric):
    def sets(a):
        if metric == "cosine":
            a = a / np.linalg.norm(a, axis=1, keepdims=True)
            d = -a @ a.T
        else:
            d = np.sum((a[:, None] - a[None]) ** 2, -1)
        np.fill_diagonal(d, np.inf)
        return [set(np.argsort(row, kind="stable")[:k]) for row in d]

    return np.mean([len(a & b) / k for a, b in zip(sets(x), sets(y))])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("k", [1, 4, 10])
def test_mutual_knn_matches_set_intersection(metric, k):
    x, y = _pair(8, n=53)
    expected = _knn_bruteforce(x, y, k, metric)
    assert 0.0 < expected < 1.0  # a non-trivial case
    assert float(mutual_knn(x, y, k, metric=metric)) == pytest.approx(expected, abs=1e-6)
    assert float(mutual_knn(x, y, k, metric=metric, block=16)) == pytest.approx(expected, abs=1e-6)


def test_debiased_cka_removes_the_bias_of_linear_cka():
    """Independent Gaussian representations with p = n: the population CKA is 0.

    The plug-in numerator ``||Y^T X||^2 ~ n p^2`` against ``||X^T X|| ~ sqrt(n p (n + p))`` gives
    linear CKA ~ ``p / (n + p) = 0.5``; the unbiased HSIC has mean exactly 0. Monte Carlo over
    200 draws (seeded): |mean debiased| within 4 standard errors of 0 (and below 0.02), mean
    linear CKA within 0.05 of 0.5.
    """
    n = p = 32
    rng = np.random.default_rng(9)
    lin, deb = [], []
    for _ in range(200):
        x, y = rng.normal(size=(n, p)).astype(np.float32), rng.normal(size=(n, p)).astype(np.float32)
        lin.append(float(linear_cka(x, y)))
        deb.append(float(debiased_cka(x, y)))
    se = np.std(deb) / np.sqrt(len(deb))
    assert abs(np.mean(deb)) < max(4 * se, 1e-3) and abs(np.mean(deb)) < 0.02
    assert np.mean(lin) == pytest.approx(p / (n + p), abs=0.05)


def test_lazy_linear_cka_against_monte_carlo_of_random_relu_layers():
    """``1 / (1 + v/m)`` against the mean naive CKA (centred Gram matrices, ``_cka``) of 300
    independent pairs of random ReLU layers ``relu(x W)``, ``W ~ N(0, I/d)``, drawn here in numpy.

    At ``m = 64`` the terms the formula neglects are ``O(1/m^2)`` relative to ``1 - CKA`` ~ 0.15;
    tolerance 10% of ``1 - CKA`` (the Monte Carlo standard error of the mean is ~1% of it). One
    constant ``v = m (1/CKA - 1)`` serves every width.
    """
    x = np.random.default_rng(0).normal(size=(40, 6))
    m = 64
    predicted = lazy_linear_cka(x, [m, 4 * m], units=200_000, seed=1)
    rng = np.random.default_rng(2)

    def layer():  # (n, m) random ReLU features
        return np.maximum(x @ rng.normal(size=(6, m)) / np.sqrt(6), 0.0)

    draws = [_cka(a @ a.T, b @ b.T) for a, b in ((layer(), layer()) for _ in range(300))]
    assert 0.05 < 1 - predicted[0] < 0.5  # a regime where the correction matters
    assert 1 - np.mean(draws) == pytest.approx(1 - predicted[0], rel=0.1)
    assert (1 / predicted[0] - 1) * m == pytest.approx((1 / predicted[1] - 1) * 4 * m, rel=1e-12)  # one v
    np.testing.assert_array_equal(predicted, lazy_linear_cka(x, [m, 4 * m], units=200_000, seed=1))  # seeded


def test_input_validation():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="same n"):
        linear_cka(x, np.zeros((9, 3)))
    with pytest.raises(ValueError, match="k: must"):
        mutual_knn(x, x, k=10)
    with pytest.raises(ValueError, match="metric"):
        mutual_knn(x, x, k=2, metric="manhattan")
    with pytest.raises(ValueError, match="sigma_frac"):
        rbf_cka(x, x, 0.0)


def test_speed_sanity_at_n_10000():
    """n = 10,000, p = 64: every metric completes in bounded memory (no timing assertion)."""
    rng = np.random.default_rng(10)
    x = jnp.asarray(rng.normal(size=(10_000, 64)), jnp.float32)
    y = jnp.asarray(np.tanh(np.asarray(x) @ rng.normal(size=(64, 64)) / 8), jnp.float32)
    values = [float(f(x, y)) for f in (linear_cka, debiased_cka, rbf_cka, mutual_knn)]
    assert all(np.isfinite(values)) and all(0.0 < v <= 1.0 + 1e-5 for v in values)
