"""Exact learning coefficients against published cases, consistency identities and brute force.

Brute force uses the partition function Z(t) = int exp(-t K(w)) phi(w) dw ~ c t^-lam (ln t)^(m-1)
(Watanabe 2009, ch. 2), so the effective exponent -d ln Z / d ln t = lam - (m-1)/ln t + O(1/ln^2 t).
Z is computed by quadrature, never from the formula under test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import special

from learnmech.theory.learning_coefficient import (
    Coefficient,
    normal_crossing,
    reduced_rank_regression,
    regular,
    rrr_case,
)

T_PROBE = 1e12  # ln t = 27.6: the next-order term of the multiplicity correction is ~ c/ln^2 t < 0.01
EXPONENT_TOL = 0.02  # |lam_eff + (m-1)/ln t - lam| at T_PROBE (O(1/ln^2 t) plus quadrature error)


def effective_exponent(log_z, t: float = T_PROBE, h: float = 0.01) -> float:
    """-d ln Z / d ln t by a central difference in ln t (error O(h^2))."""
    lt = np.log(t)
    return -(log_z(np.exp(lt + h)) - log_z(np.exp(lt - h))) / (2 * h)


def corrected_exponent(log_z, multiplicity: int, t: float = T_PROBE) -> float:
    """Effective exponent plus the leading log correction (m - 1)/ln t: tends to lam."""
    return effective_exponent(log_z, t) + (multiplicity - 1) / np.log(t)


# --- the reference package's cases ------------------------------------------------------------

# (M, H, N) with true rank 0 and expected values from timaeus-research/devinterp,
# tests/slt/rrr_test.py (test_accuracy_rrr). Their values come from the same theorem (Aoyagi &
# Watanabe 2005), transcribed independently; recomputed by hand here as a check:
# (5,3,5): (1 + 50 + 30 + 30 - 25 - 25 - 9)/8 = 6.5; (5,4,5): (50 + 40 + 40 - 25 - 25 - 16)/8 = 8;
# (4,3,8): 4*3/2 = 6; (8,3,4): 3*4/2 = 6; (3,8,4): 3*4/2 = 6.
DEVINTERP_CASES = [
    ((5, 3, 5), 6.5, "balanced-odd"),
    ((5, 4, 5), 8.0, "balanced-even"),
    ((4, 3, 8), 6.0, "output-dominated"),
    ((8, 3, 4), 6.0, "input-dominated"),
    ((3, 8, 4), 6.0, "hidden-dominated"),
]


@pytest.mark.parametrize("mhn, lam, case", DEVINTERP_CASES)
def test_devinterp_cases(mhn, lam, case):
    M, H, N = mhn
    got = reduced_rank_regression(M, H, N, 0)
    assert got.lam == lam  # exact: every value is a multiple of 1/8
    assert got.multiplicity == (2 if case == "balanced-odd" else 1)
    assert rrr_case(M, H, N, 0) == case


# --- consistency identities -------------------------------------------------------------------

SIZES = range(1, 7)


def _valid(M, H, N):
    return [(M, H, N, r) for r in range(min(M, H, N) + 1)]


ALL_CASES = [c for M, H, N in itertools.product(SIZES, SIZES, SIZES) for c in _valid(M, H, N)]


def test_no_redundancy_is_regular_count_of_rank_h_matrices():
    # H = r: the model is the manifold of rank-H matrices, dimension H(M+N) - H^2 (the
    # GL(H) quotient of (A, B)); it is regular there, so lam = dim/2, m = 1.
    for M, N in itertools.product(SIZES, SIZES):
        for H in range(1, min(M, N) + 1):
            assert reduced_rank_regression(M, H, N, H) == regular(H * (M + N) - H * H)


def test_one_by_one_is_the_normal_crossing_ab_squared():
    # K = (a b)^2: normal crossing with powers (1, 1) -> (1/2, 2).
    assert reduced_rank_regression(1, 1, 1, 0) == normal_crossing([1, 1]) == Coefficient(0.5, 2)


def test_symmetric_in_input_and_output():
    # K(A, B) = |B A - W0|^2 = |A^T B^T - W0^T|^2: swapping M and N transposes the model.
    for M, H, N, r in ALL_CASES:
        assert reduced_rank_regression(M, H, N, r) == reduced_rank_regression(N, H, M, r)


def test_monotone_in_true_rank_and_bounded_by_half_dimension():
    for M, H, N in itertools.product(SIZES, SIZES, SIZES):
        coeffs = [reduced_rank_regression(*c) for c in _valid(M, H, N)]
        lams = [c.lam for c in coeffs]
        # the free energy lam ln n - (m - 1) ln ln n never falls as r grows: (lam, -m) rises
        # lexicographically (lam is flat once M + N < H + r, and e.g. (1,1,1): (1/2, 2) -> (1/2, 1))
        keys = [(c.lam, -c.multiplicity) for c in coeffs]
        assert all(b >= a for a, b in zip(keys, keys[1:]))
        assert max(lams) <= H * (M + N) / 2  # lam <= d/2 (Watanabe 2009, Theorem 7.2)
        assert min(lams) > 0


def test_large_hidden_width_is_regular_in_the_product():
    # M + N < H + r: the map (A, B) -> B A is a submersion onto all N x M matrices: lam = MN/2.
    assert reduced_rank_regression(2, 9, 3, 1) == Coefficient(3.0, 1)
    assert rrr_case(2, 9, 3, 1) == "hidden-dominated"


def test_every_case_is_reached_and_values_are_eighths():
    seen = {rrr_case(*c) for c in ALL_CASES}
    assert seen == {"balanced-even", "balanced-odd", "output-dominated", "input-dominated", "hidden-dominated"}
    for c in ALL_CASES:
        assert (8 * reduced_rank_regression(*c).lam) % 1 == 0


# --- brute force: reduced-rank regression -----------------------------------------------------
#
# Gaussian prior A ~ N(0, I), B ~ N(0, I) (positive at every true parameter, so lam and m are
# those of a uniform prior). For each of the M columns a_k of A, B a_k ~ N(0, B B^T), and
#   E_a exp(-t |B a - w|^2) = det(I + 2t B B^T)^(-1/2) exp(-t w^T (I + 2t B B^T)^(-1) w).
# With N = 1 (or r = 0 and H = 1) this depends on B only through rho = |B|_F ~ chi(N H):
#   Z(t) = E_rho[(1 + 2 t rho^2)^(-M/2) exp(-t s^2 / (1 + 2 t rho^2))],   s = |W0|_F (r = 1) or 0.


def rrr_log_z(M: int, H: int, N: int, r: int):
    """ln Z(t) by trapezoid quadrature over u = ln rho (smooth, decaying at both ends)."""
    assert N == 1 or (r == 0 and H == 1)
    k = N * H  # chi degrees of freedom
    s2 = 1.0 if r == 1 else 0.0
    u = np.linspace(-40.0, 3.0, 40001)  # rho from e^-40 (<< t^-1/2) to e^3 (weight e^-200)
    rho2 = np.exp(2 * u)
    log_w = k * u - rho2 / 2  # chi(k) density times the Jacobian rho, up to a constant

    def log_z(t):
        q = 1 + 2 * t * rho2
        log_f = log_w - (M / 2) * np.log(q) - t * s2 / q
        top = log_f.max()
        return top + np.log(np.trapezoid(np.exp(log_f - top), u))

    return log_z


BRUTE_RRR = [
    (1, 1, 1, 0),  # (ab)^2: lam 1/2, m 2
    (2, 1, 1, 0),  # balanced-even, 1/2
    (1, 1, 3, 0),  # output-dominated: 1/2
    (1, 3, 1, 0),  # hidden-dominated: 1/2
    (2, 2, 1, 0),  # balanced-odd: 1, m 2
    (3, 2, 1, 0),  # balanced-even: 1
    (4, 3, 1, 0),  # balanced-even: 3/2
    (5, 2, 1, 0),  # input-dominated: 1
    (1, 1, 1, 1),  # balanced-even, regular: 1/2
    (3, 2, 1, 1),  # input-dominated: 3/2
    (2, 3, 1, 1),  # hidden-dominated: 1
    (3, 3, 1, 1),  # balanced-even: 3/2
]


@pytest.mark.parametrize("case", BRUTE_RRR)
def test_rrr_matches_partition_function_scaling(case):
    exact = reduced_rank_regression(*case)
    log_z = rrr_log_z(*case)
    assert abs(corrected_exponent(log_z, exact.multiplicity) - exact.lam) < EXPONENT_TOL
    if exact.multiplicity == 2:  # the log correction is visible: lam_eff sits 1/ln t below lam
        assert effective_exponent(log_z) < exact.lam - 0.5 / np.log(T_PROBE)


def test_gaussian_column_integral_against_monte_carlo():
    # The closed form used above, checked once by Monte Carlo (2e5 draws, fixed seed; 3 sigma).
    rng = np.random.default_rng(0)
    B = rng.normal(size=(2, 3))  # (N, H)
    w = rng.normal(size=2)
    t = 0.7
    a = rng.normal(size=(200_000, 3))  # (draws, H)
    vals = np.exp(-t * np.sum((a @ B.T - w) ** 2, axis=1))
    cov = np.eye(2) + 2 * t * B @ B.T
    closed = np.linalg.det(cov) ** -0.5 * np.exp(-t * w @ np.linalg.solve(cov, w))
    assert abs(vals.mean() - closed) < 3 * vals.std() / np.sqrt(vals.size)


# --- brute force: normal crossing -------------------------------------------------------------
#
# Prior phi(w) = prod (h_j + 1) w_j^h_j on [0, 1]^d. With u_j = -ln w_j, K = exp(-sum 2 p_j u_j)
# and the last coordinate integrates in closed form: with alpha = (h + 1)/(2p), x = t e^-c,
#   int_0^inf exp(-x e^(-2 p u)) (h+1) e^(-(h+1) u) du = alpha x^-alpha gamma_lower(alpha, x).


def normal_crossing_log_z(powers, prior_powers):
    """ln Z(t) with the last coordinate exact and the others on a trapezoid grid in u."""
    p, h = np.asarray(powers, float), np.asarray(prior_powers, float)
    alpha = (h[-1] + 1) / (2 * p[-1])
    u = np.linspace(0.0, 80.0, 1601)
    grids = np.meshgrid(*([u] * (p.size - 1)), indexing="ij")  # (n,) * (d - 1)
    c = sum(2 * pj * g for pj, g in zip(p[:-1], grids))
    log_prior = sum(np.log(hj + 1) - (hj + 1) * g for hj, g in zip(h[:-1], grids))

    def log_z(t):
        log_x = np.log(t) - c
        x = np.exp(log_x)
        log_last = np.log(alpha) - alpha * log_x + np.log(special.gammainc(alpha, x)) + special.gammaln(alpha)
        vals = np.exp(log_prior + log_last)
        for _ in range(p.size - 1):
            vals = np.trapezoid(vals, u, axis=0)
        return np.log(vals)

    return log_z


NORMAL_CROSSINGS = [
    ([1, 1], [0, 0], Coefficient(0.5, 2)),
    ([1, 2], [0, 0], Coefficient(0.25, 1)),
    ([1, 2], [0, 1], Coefficient(0.5, 2)),  # (0+1)/2 = (1+1)/4
    ([2, 1], [1, 0], Coefficient(0.5, 2)),
    ([1, 3], [2, 0], Coefficient(1 / 6, 1)),
    ([1, 1, 1], [0, 0, 0], Coefficient(0.5, 3)),
    ([1, 1, 2], [0, 2, 0], Coefficient(0.25, 1)),
    ([0.5, 1.5], [0, 0], Coefficient(1 / 3, 1)),  # real powers
]


@pytest.mark.parametrize("powers, prior_powers, exact", NORMAL_CROSSINGS)
def test_normal_crossing_closed_form_and_partition_function(powers, prior_powers, exact):
    got = normal_crossing(powers, prior_powers)
    assert got.multiplicity == exact.multiplicity
    assert got.lam == pytest.approx(exact.lam, rel=1e-14)
    log_z = normal_crossing_log_z(powers, prior_powers)
    # m = 3 adds a (ln ln t)-free next term of order (m-1)c/ln^2 t: same tolerance holds at 1e12
    assert abs(corrected_exponent(log_z, exact.multiplicity) - exact.lam) < EXPONENT_TOL


def test_normal_crossing_zero_powers_and_float_ties():
    assert normal_crossing([0, 1, 0]) == Coefficient(0.5, 1)  # w_1, w_3 do not enter K
    assert normal_crossing([1 / 3, 1 / 3]) == Coefficient(1.5, 2)  # float ratios tie
    assert normal_crossing([1, 1], [-0.5, 0]) == Coefficient(0.25, 1)  # prior blowing up at 0


def test_regular_is_half_the_dimension():
    assert regular(1) == Coefficient(0.5, 1)
    assert regular(7) == Coefficient(3.5, 1)
    assert regular(3) == reduced_rank_regression(1, 1, 3, 1) == Coefficient(1.5, 1)  # y = b a x, rank 1


# --- input validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: regular(0), "d"),
        (lambda: regular(2.0), "d"),
        (lambda: reduced_rank_regression(0, 1, 1, 0), "M"),
        (lambda: reduced_rank_regression(1, True, 1, 0), "H"),
        (lambda: reduced_rank_regression(2, 2, 1, -1), "r"),
        (lambda: reduced_rank_regression(3, 1, 3, 2), "r"),
        (lambda: normal_crossing([]), "powers"),
        (lambda: normal_crossing([0, 0]), "powers"),
        (lambda: normal_crossing([1, -1]), "powers"),
        (lambda: normal_crossing([1, np.inf]), "powers"),
        (lambda: normal_crossing([1, 1], [0, -1]), "prior_powers"),
        (lambda: normal_crossing([1, 1], [0]), "prior_powers"),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        call()
