"""Soft committee machine ODEs (theory/committee.py) and the claim solvable.teacher-student.

References used below: Monte Carlo of one real SGD step (exact Gaussian sampling in the span of the
student and teacher vectors, fixed seeds), Monte Carlo of the generalisation error,
``scipy.integrate.solve_ivp`` of the same right-hand side, the closed-form plateau of Saad & Solla
(1995, PRL 74:4337) ``(K/pi)(pi/6 - K arcsin(1/(2K)))``, analytic curves with known landmarks, and a
numpy replay of the simulation's SGD steps.
"""

import jax
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq
from scipy.special import erf

from learnmech.atlas.solvable.teacher_student import CLAIM, online_sgd
from learnmech.theory.committee import (erf_integrals, escape_time, generalisation_error, integrate_overlaps,
                                        joint_covariance, order_parameter_rhs, plateau_error_small_lr, plateau_index,
                                        symmetric_fixed_point)

K, M = 2, 3  # a student and teacher of different sizes, so no index convention hides behind K = M
R = np.array([[0.3, 0.1, -0.2], [0.05, 0.4, 0.1]])
Q = np.array([[0.5, 0.1], [0.1, 0.4]])
T = np.array([[1.0, 0.2, 0.0], [0.2, 0.8, 0.1], [0.0, 0.1, 1.2]])  # not the identity: tests T's role


def _g(u):
    return erf(u / np.sqrt(2))


def _g_prime(u):
    return np.sqrt(2 / np.pi) * np.exp(-u * u / 2)


def _gaussian_fields(samples, seed):
    """``(lambda, nu)`` ``(P, K)``, ``(P, M)`` of Gaussian inputs: ``x`` restricted to the span of
    the ``K + M`` weight vectors (rows of a Cholesky factor of ``C``), exactly as a real input sees them."""
    chol = np.linalg.cholesky(joint_covariance(R, Q, T))  # rows: weight vectors / sqrt N in the span
    x = np.random.default_rng(seed).standard_normal((samples, K + M))
    u = x @ chol.T
    return u[:, :K], u[:, K:], x


def test_erf_integrals_match_monte_carlo():
    # 4e5 samples: the standard errors are <= 1.5e-3; tolerance 6e-3 (about 4 standard errors)
    lam, nu, _ = _gaussian_fields(400_000, 0)
    u = np.concatenate([lam, nu], 1)
    g, gp = _g(u), _g_prime(u)
    i2, i3, i4 = erf_integrals(joint_covariance(R, Q, T))
    np.testing.assert_allclose(i2, g.T @ g / len(u), atol=6e-3)
    n, p = K + M, len(u)
    mc3 = ((gp[:, :, None] * u[:, None, :]).reshape(p, -1).T @ g).reshape(n, n, n) / p
    np.testing.assert_allclose(i3, mc3, atol=6e-3)
    gg = (g[:, :, None] * g[:, None, :]).reshape(p, -1)
    mc4 = ((gp[:, :, None] * gp[:, None, :]).reshape(p, -1).T @ gg).reshape(n, n, n, n) / p
    np.testing.assert_allclose(i4, mc4, atol=6e-3)


def test_rhs_is_the_mean_sgd_step():
    """``N E[Delta R]`` and ``N E[Delta Q]`` of one real SGD step, by Monte Carlo, against the ODE."""
    eta, n, samples = 1.0, 10**6, 400_000
    lam, nu, x = _gaussian_fields(samples, 1)
    rng = np.random.default_rng(2)
    x_sq = (np.sum(x**2, 1) + rng.chisquare(n - K - M, samples)) / n  # |x|^2 / N of the full input
    delta = _g_prime(lam) * (_g(nu).sum(1) - _g(lam).sum(1))[:, None]  # (P, K)
    # Delta w_i = (eta / sqrt N) delta_i x, so N Delta R_in = eta delta_i nu_n and
    # N Delta Q_ik = eta (delta_i lambda_k + delta_k lambda_i) + eta^2 delta_i delta_k |x|^2 / N
    d_r_mc = eta * delta.T @ nu / samples
    a = delta.T @ lam / samples
    d_q_mc = eta * (a + a.T) + eta**2 * (delta * x_sq[:, None]).T @ delta / samples
    d_r, d_q = order_parameter_rhs(R, Q, T, eta)
    # standard errors <= 1.5e-3 (checked by the spread of the summands); tolerance 6e-3
    np.testing.assert_allclose(d_r, d_r_mc, atol=6e-3)
    np.testing.assert_allclose(d_q, d_q_mc, atol=6e-3)
    assert np.max(np.abs(d_q - order_parameter_rhs(R, Q, T, 0.5)[1] * 2)) > 0.05  # the eta^2 term is there


def test_generalisation_error_matches_monte_carlo():
    lam, nu, _ = _gaussian_fields(400_000, 3)
    mc = 0.5 * np.mean((_g(lam).sum(1) - _g(nu).sum(1)) ** 2)
    # relative standard error ~ 0.3% here; tolerance 2%
    assert generalisation_error(R, Q, T) == pytest.approx(mc, rel=0.02)
    assert float(generalisation_error(np.eye(2), np.eye(2), np.eye(2))) == pytest.approx(0.0, abs=1e-15)


def test_rk4_matches_solve_ivp():
    eta, alpha_max = 0.8, 12.0
    path = integrate_overlaps(R, Q, T, eta, alpha_max, 6, dalpha=0.05)

    def rhs(_a, y):
        d_r, d_q = order_parameter_rhs(y[: K * M].reshape(K, M), y[K * M:].reshape(K, K), T, eta)
        return np.concatenate([d_r.ravel(), d_q.ravel()])

    ref = solve_ivp(rhs, (0, alpha_max), np.concatenate([R.ravel(), Q.ravel()]), t_eval=path.alpha,
                    rtol=1e-11, atol=1e-12, method="DOP853")
    np.testing.assert_allclose(path.R.reshape(-1, K * M), ref.y[: K * M].T, atol=1e-8)  # RK4 error ~ h^4 ~ 1e-8
    np.testing.assert_allclose(path.Q.reshape(-1, K * K), ref.y[K * M:].T, atol=1e-8)
    np.testing.assert_allclose(path.eps, generalisation_error(path.R, path.Q, T), rtol=1e-12)


def test_rk4_converges_at_fourth_order():
    """Error at alpha = 8 against a fine step: log-log slope in the step size is 4 (+-0.3)."""
    exact = integrate_overlaps(R, Q, T, 1.0, 8.0, 1, dalpha=0.02).R[-1]
    steps = np.array([1.0, 0.5, 0.25])
    errs = [np.max(np.abs(integrate_overlaps(R, Q, T, 1.0, 8.0, 1, dalpha=h).R[-1] - exact)) for h in steps]
    assert np.polyfit(np.log(steps), np.log(errs), 1)[0] == pytest.approx(4.0, abs=0.3)


def test_batched_initial_conditions_integrate_independently():
    r0 = np.stack([R, 0.5 * R])  # (2, K, M)
    q0 = np.stack([Q, Q])
    both = integrate_overlaps(r0, q0, T, 1.0, 4.0, 4, dalpha=0.25)
    second = integrate_overlaps(0.5 * R, Q, T, 1.0, 4.0, 4, dalpha=0.25)
    assert both.R.shape == (2, 5, K, M) and both.eps.shape == (2, 5)
    np.testing.assert_allclose(both.R[1], second.R, rtol=1e-13)


def test_symmetric_fixed_point_reaches_saad_solla_plateau_linearly_in_eta():
    # Saad & Solla 1995: eps* = (K/pi)(pi/6 - K arcsin(1/(2K))) = 0.011611 (K = 2) and 0.020297 (K = 3)
    assert plateau_error_small_lr(2) == pytest.approx(0.0116108, abs=1e-7)
    assert plateau_error_small_lr(3) == pytest.approx(0.0202966, abs=1e-7)
    etas = np.array([1e-3, 1e-2, 1e-1])
    lift = [symmetric_fixed_point(2, e)[3] - plateau_error_small_lr(2) for e in etas]
    # the eta^2 term of dQ moves the fixed point at O(eta): slope 1 (+-0.05) in log-log
    assert np.polyfit(np.log(etas), np.log(lift), 1)[0] == pytest.approx(1.0, abs=0.05)
    r, q, c, _ = symmetric_fixed_point(2, 1e-3)
    assert (r, q, c) == pytest.approx((1 / np.sqrt(6), 1 / 3, 1 / 3), abs=2e-3)
    with pytest.raises(ValueError, match="eta"):
        symmetric_fixed_point(2, 2.0)


def test_ode_plateau_sits_at_the_symmetric_fixed_point():
    """From a small, nearly symmetric start, the located plateau is the fixed point (to 0.5%)."""
    eta = 0.5
    r0 = np.array([[2e-3, 1e-3], [1.2e-3, 1.9e-3]])
    path = integrate_overlaps(r0, 0.01 * np.eye(2), np.eye(2), eta, 120.0, 120, dalpha=0.25)
    p = plateau_index(path.alpha, path.eps)
    assert path.eps[p] == pytest.approx(symmetric_fixed_point(2, eta)[3], rel=5e-3)


def test_landmarks_of_an_analytic_curve():
    """A fall, a plateau at 0.02 and a logistic escape centred at alpha = 50, then a floor of 1e-4."""
    def curve(a):
        return 0.3 * np.exp(-a) + 0.02 / (1 + np.exp((a - 50) / 3)) + 1e-4

    alpha = np.linspace(0, 100, 1001)
    eps = curve(alpha)
    p = plateau_index(alpha, eps)
    assert 15 < alpha[p] < 35 and eps[p] == pytest.approx(0.02, rel=0.01)
    level = 0.5 * (eps[p] + eps[-1])
    expected = brentq(lambda a: curve(a) - level, alpha[p], 100)  # the crossing, solved exactly
    assert escape_time(alpha, eps) == pytest.approx(expected, abs=0.02)  # linear interpolation on a 0.1 grid
    assert np.isnan(escape_time(alpha, np.full_like(alpha, 0.3)))  # no fall, no plateau
    with pytest.raises(ValueError, match="alpha"):
        plateau_index(alpha[::-1], eps)


def test_online_sgd_replays_in_numpy():
    """Three SGD steps of the simulation, replayed with the same inputs in float64 numpy."""
    n, every = 40, 3
    rng = np.random.default_rng(5)
    w0 = (0.3 * rng.standard_normal((1, K, n))).astype(np.float32)
    b = rng.standard_normal((M, n)).astype(np.float32)
    stream = jax.random.split(jax.random.key(7), 1)
    x_test = rng.standard_normal((50, n)).astype(np.float32)
    r, q, eps_mc = online_sgd(w0, b, 0.9, stream, 1, every, x_test)
    xs = np.asarray(jax.random.normal(jax.random.fold_in(stream[0], 0), (every, n), np.float32), np.float64)
    w, b64 = w0[0].astype(np.float64), b.astype(np.float64)
    for x in xs:
        lam, nu = w @ x / np.sqrt(n), b64 @ x / np.sqrt(n)
        w = w + 0.9 / np.sqrt(n) * (_g_prime(lam) * (_g(nu).sum() - _g(lam).sum()))[:, None] * x
    np.testing.assert_allclose(np.asarray(r[0, 0]), w @ b64.T / n, rtol=1e-4, atol=1e-6)  # float32 run
    np.testing.assert_allclose(np.asarray(q[0, 0]), w @ w.T / n, rtol=1e-4, atol=1e-6)
    y, f = _g(x_test @ b64.T / np.sqrt(n)).sum(1), _g(x_test @ w.T / np.sqrt(n)).sum(1)
    assert float(eps_mc[0, 0]) == pytest.approx(0.5 * np.mean((f - y) ** 2), rel=1e-4)


@pytest.mark.parametrize("override", [{"alpha_max": (100.0, 50.0)}, {"points": 7}, {"eta": (2.0,)},
                                      {"units": (0,), "alpha_max": (10.0,), "eta": (1.0,)}, {"dalpha": 1e-9}])
def test_config_rejects_bad_input(override):
    with pytest.raises(ValueError):
        CLAIM.make_config("tiny", override)


@pytest.mark.parametrize("override, field", [
    ({"n": 20_000, "test_inputs": 100_000, "points": 5000}, "test_inputs"),  # a 16 GB test set
    ({"n": 20_000, "points": 10, "alpha_max": (200.0,)}, "observation block"),  # 2 x 4e5 x 2e4 inputs at once
    ({"seeds": 4096, "units": (8,), "points": 1200}, "I4"),  # 4096 x 16^4 per RK4 temporary
])
def test_config_refuses_arrays_that_do_not_fit(override, field):
    with pytest.raises(ValueError, match=field):
        CLAIM.make_config("tiny", override)
    for preset in ("tiny", "quick", "full"):  # the presets stay far below the limits
        CLAIM.make_config(preset)
