"""Eigenlearning (theory/eigenlearning.py) and kernel ridge regression (theory/krr.py).

Independent references used below: the defining equation of kappa evaluated directly; closed
forms derived on the line (two equal eigenvalues, ordinary least squares); scipy.linalg.solve
and a hand-built pseudo-inverse for kernel ridge regression; and Monte Carlo ridge regression on
Gaussian features, where the eigenfunctions ``phi_i(x) = x_i / sqrt(lambda_i)`` and the exact
population error ``sum_i (c_i - v_i)^2`` are known, so no test sample is needed.
"""

import numpy as np
import pytest
import scipy.linalg

from learnmech.theory.eigenlearning import (
    EigenlearningPrediction,
    effective_regularization,
    kernel_eigensystem,
    learnabilities,
    learning_curve,
    overfitting_coefficient,
    target_coefficients,
)
from learnmech.theory.krr import kernel_ridge, kernel_ridge_path

LAM = np.arange(1, 301, dtype=float) ** -1.3  # power-law spectrum, 300 modes
N_GRID = np.array([1, 2, 5, 10, 30, 100, 250, 299.5])
RIDGES = np.array([0.0, 1e-10, 1e-4, 1e-2, 1.0, 1e3])


def _residual(lam, kappa, n, ridge):
    """The defining equation of kappa, evaluated directly (not through the module)."""
    kappa = np.asarray(kappa)[..., None]
    return np.sum(lam / (lam + kappa), -1) + np.asarray(ridge) / kappa[..., 0] - n


# ---------------------------------------------------------------- effective regularisation


def test_kappa_solves_its_equation_on_a_grid():
    kappa = effective_regularization(LAM, N_GRID[:, None], RIDGES[None, :])  # (8, 6)
    assert kappa.shape == (8, 6) and np.all(kappa > 0)  # n < 300 positive eigenvalues: a root exists
    res = _residual(LAM, kappa, N_GRID[:, None], RIDGES[None, :])
    np.testing.assert_allclose(res / N_GRID[:, None], 0.0, atol=1e-12)  # Newton to ~1e-14 in log kappa


def test_kappa_decreases_with_n_and_increases_with_ridge():
    kappa = effective_regularization(LAM, N_GRID[:, None], RIDGES[None, :])
    assert np.all(np.diff(kappa, axis=0) < 0)  # more data, less effective regularisation
    assert np.all(np.diff(kappa, axis=1) > 0)  # more ridge, more regularisation


def test_ridgeless_learnabilities_sum_to_n():  # CLAIMS.md kernel.eigenlearning
    kappa = effective_regularization(LAM, N_GRID)
    np.testing.assert_allclose(learnabilities(LAM, kappa).sum(-1), N_GRID, rtol=1e-12)


def test_two_equal_eigenvalues_closed_form():
    # lambda = (1, 1), ridge delta: 2/(1+k) + delta/k = n  =>  n k^2 + (n - 2 - delta) k - delta = 0
    n, delta = 1.5, np.array([0.0, 0.3, 2.0])
    b = n - 2 - delta
    expected = (-b + np.sqrt(b**2 + 4 * n * delta)) / (2 * n)
    np.testing.assert_allclose(effective_regularization([1.0, 1.0], n, delta), expected, rtol=1e-13)


def test_large_ridge_limit():
    # kappa n = delta + sum_i lambda_i kappa/(lambda_i + kappa) -> delta + sum_i lambda_i as delta -> inf;
    # the gap is sum_i lambda_i^2/(lambda_i + kappa) <= sum lambda^2 / kappa.
    n, delta = 50.0, 1e8
    kappa = effective_regularization(LAM, n, delta)
    upper = (LAM.sum() + delta) / n
    assert kappa < upper
    assert (upper - kappa) * n <= np.sum(LAM**2) / kappa * (1 + 1e-9) + 1e-6  # the stated gap bound
    np.testing.assert_allclose(kappa, upper, rtol=1e-12)


def test_tiny_ridge_near_rank_and_extreme_spectra_converge():
    lam = np.array([1.0, 1e-8, 1e-16, 1e-30])
    for n, ridge in [(3.999, 0.0), (3.0, 1e-300), (0.001, 0.0), (3.5, 1e-40)]:
        kappa = effective_regularization(lam, n, ridge)
        assert kappa > 0
        rel = _residual(lam, kappa, n, ridge) / n
        assert abs(rel) < 1e-12, (n, ridge, rel)


def test_ridgeless_at_or_above_rank_returns_zero_and_least_squares():
    lam = np.array([2.0, 1.0, 0.5, 0.0, 0.0])  # M+ = 3 positive eigenvalues
    assert effective_regularization(lam, 3) == 0.0 and effective_regularization(lam, 7) == 0.0
    assert effective_regularization(lam, 3, 1e-3) > 0  # a ridge always gives a root
    np.testing.assert_array_equal(learnabilities(lam, 0.0), [1, 1, 1, 0, 0])
    assert overfitting_coefficient(lam, 0.0, 3) == np.inf  # interpolation threshold n = M+
    v = np.array([1.0, -0.5, 0.2, 0.3, 0.0])
    eps2 = 0.04
    p = learning_curve(lam, v, np.array([3.0, 8.0]), noise=eps2)
    # Least squares on p = 3 features: E0 = n/(n - p) times (out-of-span power 0.09 + eps^2); train
    # MSE is (1 - p/n) times the same bracket (for Gaussian features exactly E[train] = eps^2 (n - p)/n).
    bracket = 0.3**2 + eps2
    assert p.test_mse[0] == np.inf and p.train_mse[0] == 0.0
    np.testing.assert_allclose(p.test_mse[1], 8 / 5 * bracket, rtol=1e-14)
    np.testing.assert_allclose(p.train_mse[1], 5 / 8 * bracket, rtol=1e-14)
    clean = learning_curve(lam, np.array([1.0, 2.0, 3.0, 0.0, 0.0]), 3.0)  # target in the span, no noise
    assert clean.test_mse == 0.0 and clean.train_mse == 0.0  # learned exactly, not 0 * inf


def test_ridgeless_limit_is_continuous():
    lam = np.array([2.0, 1.0, 0.5, 0.0])
    v = np.array([0.3, 0.2, 0.1, 0.4])
    exact = learning_curve(lam, v, 6.0, 0.0, 0.01)
    near = learning_curve(lam, v, 6.0, 1e-9, 0.01)  # delta -> 0+: kappa ~ delta / (n - M+)
    np.testing.assert_allclose(near.test_mse, exact.test_mse, rtol=1e-7)
    np.testing.assert_allclose(near.train_mse, exact.train_mse, rtol=1e-7)
    np.testing.assert_allclose(near.kappa, 1e-9 / 3, rtol=1e-6)


# ---------------------------------------------------------------- learning curve


def test_e0_at_least_one_and_learnability_sum():
    kappa = effective_regularization(LAM, N_GRID[:, None], RIDGES[None, :])
    e0 = overfitting_coefficient(LAM, kappa, N_GRID[:, None])
    assert np.all(e0 >= 1.0)  # sum L^2 >= 0
    ls = learnabilities(LAM, kappa).sum(-1)
    assert np.all(ls <= N_GRID[:, None] * (1 + 1e-12))  # sum L = n - delta/kappa <= n


def test_learning_curve_shapes_and_multi_output():
    v = np.stack([LAM**0.3, -(LAM**0.6)], axis=1)  # (300, 2)
    p = learning_curve(LAM, v, N_GRID[:, None, None], RIDGES[None, :, None] + np.zeros((1, 1, 4)), noise=0.01)
    assert isinstance(p, EigenlearningPrediction)
    for field in (p.n, p.ridge, p.kappa, p.learnability_sum, p.e0, p.test_mse, p.train_mse):
        assert field.shape == (8, 6, 4)
    assert learnabilities(LAM, p.kappa).shape == (8, 6, 4, 300)
    # Two outputs = the sum of the two single-output curves (each with its own noise eps^2).
    a = learning_curve(LAM, v[:, 0], 40.0, 0.01, noise=0.01)
    b = learning_curve(LAM, v[:, 1], 40.0, 0.01, noise=0.01)
    both = learning_curve(LAM, v, 40.0, 0.01, noise=0.01)
    np.testing.assert_allclose(both.test_mse, a.test_mse + b.test_mse, rtol=1e-13)
    np.testing.assert_allclose(both.train_mse, a.train_mse + b.train_mse, rtol=1e-13)


def test_train_to_test_ratio():
    p = learning_curve(LAM, LAM**0.5, N_GRID, 0.05, noise=0.01)
    ratio = (0.05 / (N_GRID * p.kappa)) ** 2  # (delta / (n kappa))^2, Simon et al. 2021
    np.testing.assert_allclose(p.train_mse / p.test_mse, ratio, rtol=1e-12)
    np.testing.assert_allclose(0.05 / p.kappa, N_GRID - p.learnability_sum, rtol=1e-10)  # kappa equation
    assert np.all(learning_curve(LAM, LAM**0.5, N_GRID).train_mse == 0.0)  # ridgeless interpolates


def _gaussian_ridge_mc(lam, v, n, ridge, eps2, draws, rng):
    """Mean population test MSE (noisy labels) and train MSE of ridge regression on Gaussian features.

    ``x_i = sqrt(lambda_i) z_i`` with ``z ~ N(0, I)``: the linear kernel ``x.x'`` has eigenvalues
    ``lambda_i`` and eigenfunctions ``phi_i = z_i``; the learned ``f = x.w`` has coefficients
    ``c_i = sqrt(lambda_i) w_i``, so its exact population error is ``sum_i (c_i - v_i)^2``.
    """
    z = rng.standard_normal((draws, n, lam.size))  # (draws, n, M)
    x = z * np.sqrt(lam)
    y = z @ v + np.sqrt(eps2) * rng.standard_normal((draws, n))  # (draws, n)
    k = x @ np.swapaxes(x, 1, 2)  # (draws, n, n)
    alpha = np.linalg.solve(k + ridge * np.eye(n), y[..., None])[..., 0]  # (draws, n)
    c = np.sqrt(lam) * np.einsum("dnm,dn->dm", x, alpha)  # (draws, M)
    test = np.sum((c - v) ** 2, -1) + eps2
    train = np.mean((np.einsum("dnk,dk->dn", k, alpha) - y) ** 2, -1)
    return test, train


@pytest.mark.parametrize("n", [20, 60, 200])
def test_monte_carlo_gaussian_features(n):
    """Predicted test and train MSE vs ridge regression on a rank-100 Gaussian-feature kernel.

    Gaussian features are the setting where eigenlearning is asymptotically exact; at finite n and
    M the mean carries corrections of order 1/n, measured once with 1,500 draws per n as
    +2.5/+2.1/+0.2% (test) and +3.7/+7.6/+0.5% (train) at n = 20/60/200 (train is largest near
    interpolation, n = 60 of 100 modes). With 600 draws (150 at n = 200) the standard error of the
    mean is <= 1.5% (test) and <= 2% (train): tolerance 8% for test and 15% for train (bias + 4 s.e.).
    """
    rng = np.random.default_rng(12345 + n)
    lam = np.arange(1, 101, dtype=float) ** -1.5
    v = 1.0 / np.arange(1, 101)
    v /= np.linalg.norm(v)
    ridge, eps2 = 1e-3, 0.01
    test, train = _gaussian_ridge_mc(lam, v, n, ridge, eps2, draws=600 if n <= 60 else 150, rng=rng)
    p = learning_curve(lam, v, n, ridge, eps2)
    assert abs(test.mean() / p.test_mse - 1) < 0.08
    assert abs(train.mean() / p.train_mse - 1) < 0.15


# ---------------------------------------------------------------- pool eigensystem


def test_pool_eigensystem_is_mercer_and_orthonormal():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3))
    gram = np.exp(-0.5 * np.sum((x[:, None] - x[None]) ** 2, -1))  # RBF kernel on a pool of N = 60
    lam, phi = kernel_eigensystem(gram)
    assert lam.shape == (60,) and phi.shape == (60, 60)
    assert np.all(np.diff(lam) <= 0) and lam.min() >= 0
    np.testing.assert_allclose(phi.T @ phi / 60, np.eye(60), atol=1e-12)  # E_mu[phi_i phi_k] = delta_ik
    np.testing.assert_allclose((phi * lam) @ phi.T, gram, atol=1e-12)  # K = sum_i lambda_i phi_i phi_i^T
    np.testing.assert_allclose(lam.sum(), np.trace(gram) / 60, rtol=1e-12)  # trace of the operator
    v = rng.standard_normal((60, 2))
    np.testing.assert_allclose(target_coefficients(phi, phi @ v), v, atol=1e-12)


def test_pool_theory_matches_krr_with_draws_from_the_pool():
    """Pool measure: eigenvalues from kernel_eigensystem, training sets drawn i.i.d. from the pool.

    A rank-40 kernel on a pool of N = 1,000 Gaussian points; 120 draws of n = 60 with replacement;
    the population error is exact (the whole pool). Measured once with 400 draws (two pools): the
    mean differs from the prediction by +1.4..1.7% (test) and -0.2..+2.7% (train); with 120 draws the
    standard error is ~1.6% (test) and ~2.7% (train): tolerance 8% and 12% (bias + 4 s.e.).
    """
    rng = np.random.default_rng(7)
    size, rank, n = 1000, 40, 60
    feats = rng.standard_normal((size, rank)) * np.arange(1, rank + 1) ** -0.75  # (N, rank)
    gram = feats @ feats.T
    lam, phi = kernel_eigensystem(gram)
    v = np.zeros(size)
    v[:rank] = rng.choice([-1, 1], rank) / np.arange(1, rank + 1)
    f_star, eps2, ridge = phi @ v, 0.02, 1e-2 * lam.sum()
    tests, trains = [], []
    for _ in range(120):
        idx = rng.integers(0, size, n)
        y = f_star[idx] + np.sqrt(eps2) * rng.standard_normal(n)
        pred = kernel_ridge(gram[np.ix_(idx, idx)], y, gram[:, idx], ridge)  # (N,) on the whole pool
        tests.append(np.mean((pred - f_star) ** 2) + eps2)
        trains.append(np.mean((pred[idx] - y) ** 2))
    p = learning_curve(lam, v, n, ridge, eps2)
    assert abs(np.mean(tests) / p.test_mse - 1) < 0.08
    assert abs(np.mean(trains) / p.train_mse - 1) < 0.12


# ---------------------------------------------------------------- kernel ridge regression


def _small_problem(n=12, m=5, outputs=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n + m, 4))
    k = (1 + x @ x.T / 4) ** 3  # polynomial kernel, positive definite on generic points
    y = rng.standard_normal((n,) if outputs is None else (n, outputs))
    return k[:n, :n], y, k[n:, :n]


@pytest.mark.parametrize("outputs", [None, 3])
def test_kernel_ridge_matches_scipy_solve(outputs):
    k, y, kt = _small_problem(outputs=outputs)
    for ridge in (1e-3, 0.7):
        expected = kt @ scipy.linalg.solve(k + ridge * np.eye(len(k)), y)
        np.testing.assert_allclose(kernel_ridge(k, y, kt, ridge), expected, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(kernel_ridge(k, y, kt, 0.0), kt @ scipy.linalg.solve(k, y), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("outputs", [None, 2])
def test_kernel_ridge_path_equals_single_solves(outputs):
    k, y, kt = _small_problem(outputs=outputs, seed=1)
    ridges = np.array([[0.0, 1e-4], [1e-2, 3.0]])
    path = kernel_ridge(k, y, kt, ridges)  # an array of ridges goes through kernel_ridge_path
    assert path.shape == (2, 2) + kt.shape[:1] + y.shape[1:]
    np.testing.assert_allclose(path, kernel_ridge_path(k, y, kt, ridges), rtol=0, atol=0)
    for index in np.ndindex(2, 2):
        single = kernel_ridge(k, y, kt, float(ridges[index]))
        np.testing.assert_allclose(path[index], single, rtol=1e-6, atol=1e-8)  # condition number ~1e3


def test_ridgeless_singular_gram_uses_the_pseudo_inverse():
    k, y, kt = _small_problem(n=8, seed=2)
    rep = np.r_[np.arange(8), 2, 5]  # points 2 and 5 appear twice, with the same labels
    k_rep, y_rep, kt_rep = k[np.ix_(rep, rep)], y[rep], kt[:, rep]
    assert np.linalg.matrix_rank(k_rep) == 8  # singular 10 x 10 Gram matrix
    expected = kt @ scipy.linalg.solve(k, y)  # interpolating the 8 distinct points
    np.testing.assert_allclose(kernel_ridge(k_rep, y_rep, kt_rep, 0.0), expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(kernel_ridge_path(k_rep, y_rep, kt_rep, [0.0])[0], expected, rtol=1e-6, atol=1e-8)
    # and it is the delta -> 0+ limit of ridge regression
    np.testing.assert_allclose(kernel_ridge(k_rep, y_rep, kt_rep, 1e-9), expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: effective_regularization([1.0, -0.1], 3), "eigenvalues"),
        (lambda: effective_regularization(np.ones((2, 2)), 3), "eigenvalues"),
        (lambda: effective_regularization([1.0], 0), "n"),
        (lambda: effective_regularization([1.0], [2, -1]), "n"),
        (lambda: effective_regularization([1.0], 2, -1.0), "ridge"),
        (lambda: learnabilities([1.0], -1.0), "kappa"),
        (lambda: learning_curve([1.0, 2.0], [1.0], 3), "coefficients"),
        (lambda: learning_curve([1.0], [1.0], 3, noise=-0.1), "noise"),
        (lambda: kernel_eigensystem(np.ones((2, 3))), "gram"),
        (lambda: target_coefficients(np.eye(3), np.ones(4)), "y"),
        (lambda: kernel_ridge(np.eye(2), np.ones(2), np.ones((3, 2)), -1.0), "ridge"),
        (lambda: kernel_ridge(np.ones((2, 3)), np.ones(2), np.ones((3, 2))), "k_train"),
        (lambda: kernel_ridge(np.eye(2), np.ones(3), np.ones((3, 2))), "y_train"),
        (lambda: kernel_ridge(np.eye(2), np.ones(2), np.ones((3, 3))), "k_test"),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        call()
