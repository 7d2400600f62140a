"""Tests of learnmech.observe.spectra and learnmech.theory.spectral against numpy and closed forms.

The power-law fit of a spectrum is an estimator of learnmech.fit: tests/test_fit_power_law.py."""

import numpy as np
import pytest

from learnmech.observe.spectra import (
    covariance_spectrum,
    cumulative_power,
    kernel_spectrum,
    linear_kernel_eigensystem,
    predicted_learning_curve_exponent,
    target_power,
)
from learnmech.theory.eigenlearning import learning_curve


def _numpy_covariance_eigenvalues(x):
    return np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]  # (1/n) normalisation


def test_covariance_spectrum_matches_known_diagonal_covariance():
    # x = z diag(sqrt(lam)): population covariance diag(lam). The sample eigenvalues fluctuate by
    # ~ lam sqrt(2/n) = 1% at n = 20000; 5% is 5 standard deviations.
    lam = np.array([4.0, 2.0, 1.0, 0.5, 0.25])
    x = np.random.default_rng(0).standard_normal((20_000, lam.size)) * np.sqrt(lam)
    s = covariance_spectrum(x)
    assert s.dtype == np.float64 and s.shape == (5,)
    assert np.all(np.diff(s) <= 0)
    np.testing.assert_allclose(s, lam, rtol=0.05)
    np.testing.assert_allclose(s, _numpy_covariance_eigenvalues(x), rtol=1e-10)


def test_covariance_spectrum_gram_route_when_n_below_d():
    x = np.random.default_rng(1).standard_normal((30, 80)) + 3.0  # offset: centring matters
    s = covariance_spectrum(x)  # (30,) via the (30, 30) Gram
    ref = _numpy_covariance_eigenvalues(x)  # (80,), the last 51 are zero (rank n - 1 after centring)
    assert s.shape == (30,)
    np.testing.assert_allclose(s, ref[:30], rtol=1e-9, atol=1e-11)
    assert s[-1] == pytest.approx(0.0, abs=1e-10)


def test_covariance_spectrum_uncentred_is_second_moment():
    x = np.random.default_rng(2).standard_normal((50, 4)) + np.array([1.0, -2.0, 0.0, 0.5])
    ref = np.sort(np.linalg.eigvalsh(x.T @ x / 50))[::-1]
    np.testing.assert_allclose(covariance_spectrum(x, center=False), ref, rtol=1e-12)


def test_gram_and_covariance_routes_agree():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((120, 7)) * np.array([3.0, 2.0, 1.5, 1.0, 0.7, 0.5, 0.2]) + 1.0
    y = rng.standard_normal((120, 3))
    xc = x - x.mean(0)
    full = kernel_spectrum(xc @ xc.T)  # (120,), (120, 120)
    lin = linear_kernel_eigensystem(x)  # (7,), (120, 7)
    np.testing.assert_allclose(full.eigenvalues[:7], covariance_spectrum(x), rtol=1e-10)
    np.testing.assert_allclose(lin.eigenvalues, covariance_spectrum(x), rtol=1e-10)
    np.testing.assert_allclose(full.eigenvalues[7:], 0.0, atol=1e-12)
    # eigenfunctions orthonormal under the pool measure and reproducing the kernel
    phi = lin.eigenfunctions
    np.testing.assert_allclose(phi.T @ phi / 120, np.eye(7), atol=1e-10)
    np.testing.assert_allclose(phi * lin.eigenvalues @ phi.T, xc @ xc.T, atol=1e-9)
    # target power per mode is sign-independent, so the two routes agree mode by mode
    np.testing.assert_allclose(target_power(lin, y), target_power(full, y)[:7], rtol=1e-8)


@pytest.mark.parametrize("outputs", [None, 4])
def test_target_power_parseval_on_the_pool(outputs):
    rng = np.random.default_rng(5)
    n = 60
    a = rng.standard_normal((n, 90))
    es = kernel_spectrum(a @ a.T / 90)  # complete orthonormal basis of the pool
    y = rng.standard_normal(n if outputs is None else (n, outputs))
    p = target_power(es, y)
    assert p.shape == (n,)
    assert p.sum() == pytest.approx(np.sum(y**2) / n, rel=1e-12)
    np.testing.assert_allclose(target_power(es.eigenfunctions, y), p, rtol=1e-14)  # array form


def test_cumulative_power_closed_form():
    k = np.arange(1.0, 2001.0)
    p = k**-2.0
    tail = cumulative_power(p)
    direct = np.array([p[i + 1:].sum() for i in range(p.size)]) / p.sum()
    np.testing.assert_allclose(tail, direct, rtol=1e-12, atol=1e-300)
    assert tail[-1] == 0.0
    # with the total given, the power outside the modes counts as unexplained
    np.testing.assert_allclose(cumulative_power([2.0, 1.0, 1.0], total=8.0), [0.75, 0.625, 0.5])
    # tail of k^-b decays as k^{1-b} (b = 2: slope -1 far from the cut-off at 2000); numpy's log-log line
    slope = np.polyfit(np.log(k[9:100]), np.log(tail[9:100]), 1)[0]  # ranks 10..100
    assert -slope == pytest.approx(1.0, abs=0.05)


def test_predicted_exponent_regimes_and_errors():
    assert predicted_learning_curve_exponent(1.5, 2.0) == 1.0  # b - 1
    assert predicted_learning_curve_exponent(1.2, 4.0) == pytest.approx(2.4)  # 2a
    for a, b in [(0.0, 2.0), (1.0, 1.0), (float("nan"), 2.0)]:
        with pytest.raises(ValueError):
            predicted_learning_curve_exponent(a, b)


@pytest.mark.parametrize("a,b", [(1.5, 2.0), (1.2, 4.0), (2.0, 2.5)])
def test_predicted_exponent_matches_eigenlearning(a, b):
    # Independent reference: the ridgeless eigenlearning test MSE for lambda_k = k^-a,
    # v_k^2 = k^-b on 2e5 modes, fitted over n = 100..1000. Off the crossover b = 2a + 1 the
    # local slope is within ~0.02 of the asymptotic exponent; allow 0.03.
    k = np.arange(1.0, 200_001.0)
    n = np.geomspace(100, 1000, 8)
    mse = learning_curve(k**-a, k ** (-b / 2), n).test_mse
    slope = -np.polyfit(np.log(n), np.log(mse), 1)[0]
    assert slope == pytest.approx(predicted_learning_curve_exponent(a, b), abs=0.03)
