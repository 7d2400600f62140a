"""The README's theory-alone example of issue 19, run as a new user would, and its numbers checked against
independent references: the tanh mean-field fixed point and chi_1 by scipy quadrature, the committee machine's
initial error by Monte Carlo over the local fields, and the hard-margin direction by scipy's SLSQP on the primal."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.special import erf

from test_readme_own_model import _run


@pytest.fixture(scope="module")
def example():
    return _run("solvable-theory")


def _gauss(f):
    """E[f(z)], z ~ N(0, 1), by scipy quad (absolute error ~1e-12 for these smooth integrands)."""
    return integrate.quad(lambda z: f(z) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi), -12, 12, epsabs=1e-13)[0]


def test_the_edge_of_chaos_and_the_ordered_depth_scale(example):
    sw2, sb2 = example["critical_sigma_w2"](0.05, "tanh"), 0.05
    q = optimize.brentq(lambda q: sw2 * _gauss(lambda z: np.tanh(np.sqrt(q) * z) ** 2) + sb2 - q, 1e-6, 10)
    chi = sw2 * _gauss(lambda z: np.cosh(np.sqrt(q) * z) ** -4)
    assert chi == pytest.approx(1.0, abs=1e-7)  # chi_1 = 1 on the critical line (quad and brentq to ~1e-9)
    mf = example["mf"]
    q12 = optimize.brentq(lambda q: 1.2 * _gauss(lambda z: np.tanh(np.sqrt(q) * z) ** 2) + sb2 - q, 1e-6, 10)
    assert mf.q_star == pytest.approx(q12, rel=1e-7)
    chi12 = 1.2 * _gauss(lambda z: np.cosh(np.sqrt(q12) * z) ** -4)
    assert mf.chi_1 == pytest.approx(chi12, rel=1e-7) and mf.xi_c == pytest.approx(-1 / np.log(chi12), rel=1e-6)


def test_the_committee_machine_starts_where_monte_carlo_says_and_escapes_its_plateau(example):
    R0, Q0, T, path = example["R0"], example["Q0"], example["T"], example["path"]
    cov = np.block([[Q0, R0], [R0.T, T]])  # local fields (student 2, teacher 2) of one Gaussian input
    fields = np.random.default_rng(0).multivariate_normal(np.zeros(4), cov, size=400_000)
    g = erf(fields / np.sqrt(2))
    mc = 0.5 * np.mean((g[:, :2].sum(1) - g[:, 2:].sum(1)) ** 2)
    assert path.eps[0] == pytest.approx(mc, rel=0.01)  # Monte Carlo standard error ~0.2% at 4e5 samples
    plateau = example["symmetric_fixed_point"](2, 1.0)[3]
    assert path.eps[60] == pytest.approx(plateau, rel=0.03)  # the plateau is the symmetric fixed point's
    assert path.eps[-1] < 1e-6 and 60 < example["escape_time"](path.alpha, path.eps) < 150


def test_the_hard_margin_direction_matches_a_generic_solver(example):
    X, y, fit = example["X"], example["y"], example["fit"]
    primal = optimize.minimize(lambda w: w @ w, np.ones(2), jac=lambda w: 2 * w, method="SLSQP",
                               constraints=[{"type": "ineq", "fun": lambda w: y * (X @ w) - 1}], tol=1e-14)
    np.testing.assert_allclose(fit.w, primal.x, atol=1e-7)  # SLSQP's own tolerance
    assert np.allclose(y[fit.support] * (X[fit.support] @ fit.w), 1.0)  # the support sits on the margin
    assert example["lr_exponents"](3) == (2.0, pytest.approx(2 / 3, rel=1e-15))
