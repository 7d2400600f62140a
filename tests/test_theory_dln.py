"""Deep-linear-network mode dynamics (theory/dln.py) against independent references.

References used below: the mode ODE ``du/dt = L u^{2-2/L} (s - u)`` integrated by
``scipy.integrate.solve_ivp`` in the plain variable ``u`` (the module integrates in ``ln u``),
finite differences of the closed form, closed forms derived on the line, and an exactly
whitened finite sample for the loss.
"""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from learnmech.theory.dln import (
    effective_u0_two_layer,
    mode_trajectory,
    mode_trajectory_two_layer,
    predicted_loss,
    rise_time_two_layer,
    stage_separation_two_layer,
    t_half,
    t_half_two_layer,
    transition_time_two_layer,
    typical_u0_two_layer,
)

S = np.array([2.0, 1.0, 0.5])  # singular values of Sigma_yx, decreasing
U0 = np.array([1e-3, 2e-3, 5e-3])  # initial mode strengths, one per mode


def _ode_reference(t, s, u0, depth, *, events=None):
    """Independent reference: solve_ivp of du/dt = L u^{2-2/L} (s - u) in the plain variable u."""
    s = np.asarray(s, float)
    u0 = np.broadcast_to(np.asarray(u0, float), s.shape)

    def rhs(_t, u):
        return depth * np.abs(u) ** (2.0 - 2.0 / depth) * (s - u)

    t = np.asarray(t, float)
    sol = solve_ivp(rhs, (0.0, t.max()), u0, method="DOP853", t_eval=t,
                    rtol=1e-13, atol=1e-20, events=events)
    assert sol.success
    return sol


# ---------------------------------------------------------------- two layers, closed form


def test_two_layer_initial_value_and_half_time():
    u = mode_trajectory_two_layer(0.0, S, U0)  # shape T + (K,) with T = () -> (K,)
    np.testing.assert_allclose(u, U0, rtol=1e-13)  # u(0) = u0; logistic form rounds at ~eps ln(s/u0)
    th = t_half_two_layer(S, U0)
    np.testing.assert_allclose(th, np.log(S / U0 - 1) / (2 * S), rtol=1e-15)  # CLAIMS.md dln.modes
    u_half = np.diag(mode_trajectory_two_layer(th, S, U0))  # mode a at its own t_half
    np.testing.assert_allclose(u_half, S / 2, rtol=1e-13)  # definition of t_half


def test_two_layer_solves_its_ode_by_finite_differences():
    t = np.linspace(0.0, 3 * t_half_two_layer(S, U0).max(), 41)
    h = 1e-5
    fd = (mode_trajectory_two_layer(t + h, S, U0) - mode_trajectory_two_layer(t - h, S, U0)) / (2 * h)
    u = mode_trajectory_two_layer(t, S, U0)
    rhs = 2 * u * (S - u)  # du/dt = 2 u (s - u)
    # central difference error h^2 |u'''|/6 <~ 1e-10 * (2s)^3 s; roundoff eps s / h ~ 4e-11
    np.testing.assert_allclose(fd, rhs, rtol=0, atol=1e-7 * np.abs(rhs).max())


def test_two_layer_finite_difference_error_is_second_order():
    s, u0 = 2.0, 1e-3
    t = t_half_two_layer(s, u0) + np.array([-0.7, -0.2, 0.3])  # where u''' is large
    hs = np.array([1e-2, 5e-3, 2.5e-3, 1.25e-3])
    u = mode_trajectory_two_layer(t, s, u0)[:, 0]
    exact = 2 * u * (s - u)
    errs = []
    for h in hs:
        fd = (mode_trajectory_two_layer(t + h, s, u0) - mode_trajectory_two_layer(t - h, s, u0))[:, 0] / (2 * h)
        errs.append(np.abs(fd - exact).max())
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert abs(slope - 2.0) < 0.05, slope  # central differences converge at order 2 on a smooth solution


def test_two_layer_matches_solve_ivp_on_the_raw_ode():
    t = np.linspace(0.0, 4 * t_half_two_layer(S, U0).max(), 60)
    ref = _ode_reference(t, S, U0, depth=2).y.T  # (T, K), solver at rtol 1e-13
    np.testing.assert_allclose(mode_trajectory_two_layer(t, S, U0), ref, rtol=1e-8, atol=0)


def test_two_layer_shapes_and_limits():
    t = np.ones((2, 3))
    assert mode_trajectory_two_layer(t, S, U0).shape == (2, 3, 3)  # T + (K,)
    assert mode_trajectory_two_layer(1.0, 2.0, 1e-3).shape == (1,)
    big = mode_trajectory_two_layer(1e4, S, U0)  # no overflow; t -> inf gives u -> s
    np.testing.assert_allclose(big, S, rtol=1e-15)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)  # fixed examples
@given(
    s=st.floats(0.1, 5.0),
    frac=st.floats(1e-6, 0.5),  # u0 = frac * s
    tau=st.floats(0.0, 3.0),  # in units of t_half
)
def test_two_layer_properties(s, frac, tau):
    u0 = frac * s
    th = t_half_two_layer(s, u0)
    t = tau * th
    u = mode_trajectory_two_layer(t, s, u0)[0]
    # the exponential form of Saxe et al. 2014 (CLAIMS.md dln.modes), safe from overflow here
    e = np.exp(2 * s * t)
    np.testing.assert_allclose(u, s * e / (e - 1 + s / u0), rtol=1e-10)
    # the logistic is point-symmetric about (t_half, s/2): u(t_half + d) + u(t_half - d) = s
    d = abs(t - th)
    pair = mode_trajectory_two_layer(np.array([th + d, max(th - d, 0.0)]), s, u0)[:, 0]
    if th - d >= 0:
        np.testing.assert_allclose(pair.sum(), s, rtol=1e-12)
    assert 0 < u <= s and pair[0] >= u - 1e-15 * s  # bounded and non-decreasing in t


def test_modes_are_learned_in_order_of_decreasing_s():
    th = t_half(S, 1e-4)  # equal u0: larger s is learned first (Saxe et al. 2014)
    assert np.all(np.diff(th) > 0)


# ---------------------------------------------------------------- deeper networks, ODE


@pytest.mark.parametrize("depth", [3, 4])
def test_deep_trajectory_matches_independent_solve_ivp(depth):
    u0 = 1e-2
    t_end = 2.5 * t_half(S, u0, depth).max()
    t = np.linspace(0.0, t_end, 50)
    ref = _ode_reference(t, S, u0, depth).y.T  # plain-u integration at rtol 1e-13
    # relative perturbations grow by at most (s/u0)^{1-2/L} <= 15 across the plateau
    np.testing.assert_allclose(mode_trajectory(t, S, u0, depth), ref, rtol=1e-8, atol=0)


@pytest.mark.parametrize("depth", [1, 3, 4])
def test_t_half_agrees_with_trajectory_and_with_an_ode_event(depth):
    th = t_half(S, U0, depth)
    u = mode_trajectory(th, S, U0, depth)  # (K, K): row a is time t_half[a]
    np.testing.assert_allclose(np.diag(u), S / 2, rtol=1e-8)  # u(t_half) = s/2
    for a in range(S.size):  # independent: first crossing of s/2 found by solve_ivp's event finder
        event = lambda _t, v, a=a: v[0] - S[a] / 2  # noqa: E731
        sol = _ode_reference([2 * th[a]], S[a:a + 1], U0[a], depth, events=event)
        np.testing.assert_allclose(sol.t_events[0][0], th[a], rtol=1e-8)


def test_t_half_depth_two_is_the_closed_form():
    np.testing.assert_allclose(t_half(S, U0, 2), t_half_two_layer(S, U0), rtol=1e-15)


@pytest.mark.parametrize("depth", [3, 4])
def test_t_half_plateau_scaling_with_u0(depth):
    # For L > 2 and u0 -> 0: t_half ~ u0^{-(1 - 2/L)} / (s (L - 2)) (integrate L s u^{2-2/L} from u0);
    # the O(1) remainder makes the local log-log slope approach -(1 - 2/L) like u0^{1 - 2/L}.
    u0 = np.array([1e-12, 1e-11, 1e-10])
    th = np.array([t_half(1.0, a, depth)[0] for a in u0])
    slope = np.polyfit(np.log(u0), np.log(th), 1)[0]
    assert abs(slope + (1 - 2 / depth)) < 0.01, slope
    lead = u0 ** -(1 - 2 / depth) / (depth - 2)  # leading term, s = 1
    np.testing.assert_allclose(th, lead, rtol=0.02)


def test_t_half_two_layer_grows_linearly_in_log_inverse_u0():
    s = 1.5
    u0 = np.array([1e-2, 1e-3, 1e-4])  # the sigma grid of dln.saddle-to-saddle, u0 = sigma
    slope = np.polyfit(np.log(1 / u0), t_half(np.full(3, s), u0), 1)[0]
    # ln(s/u0 - 1) = ln(1/u0) + ln s + ln(1 - u0/s): the last term (<= 0.7% here) bends the line by ~0.15%
    np.testing.assert_allclose(slope, 1 / (2 * s), rtol=5e-3)


def test_depth_one_closed_form():
    t = np.linspace(0.0, 6.0, 31)
    u = mode_trajectory(t, S, U0, depth=1)
    np.testing.assert_allclose(u, S - (S - U0) * np.exp(-t[:, None]), rtol=1e-15)
    ref = _ode_reference(t, S, U0, depth=1).y.T  # du/dt = s - u (L = 1 makes u^{2-2/L} = 1)
    np.testing.assert_allclose(u, ref, rtol=1e-9)
    # s - (s - u0) e^{-t} = s/2  =>  t_half = ln(2 (s - u0) / s)
    np.testing.assert_allclose(t_half(S, U0, 1), np.log(2 * (S - U0) / S), rtol=1e-10)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_initial_value_and_long_time_limit(depth):
    u = mode_trajectory([0.0], S, U0, depth)
    # u(0) = u0; depth 1 evaluates s - (s - u0), which cancels to within a few eps * s
    np.testing.assert_allclose(u[0], U0, rtol=1e-13, atol=4 * np.finfo(float).eps * S.max())
    late = mode_trajectory([0.0, 200.0], S, U0, depth)[1]
    np.testing.assert_allclose(late, S, rtol=1e-9)  # t -> inf: every mode is learned, u -> s


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_vectorised_over_modes_equals_single_mode_calls(depth):
    t = np.linspace(0.0, 2 * t_half(S, U0, depth).max(), 25)
    full = mode_trajectory(t, S, U0, depth)  # one vector ODE for all modes
    assert full.shape == (t.size, S.size)
    for a in range(S.size):
        one = mode_trajectory(t, S[a], U0[a], depth)[:, 0]
        # separate step-size control: both solves carry rtol 1e-11, amplified <= 15x
        np.testing.assert_allclose(full[:, a], one, rtol=1e-8)


def test_unsorted_times_give_the_same_values():
    t = np.array([3.0, 0.5, 9.0, 0.0, 4.2])
    order = np.argsort(t)
    shuffled = mode_trajectory(t, S, U0, depth=3)
    np.testing.assert_allclose(shuffled[order], mode_trajectory(t[order], S, U0, depth=3), rtol=1e-14)


@pytest.mark.parametrize(
    "call",
    [
        lambda: mode_trajectory([1.0], [1.0, 0.0], 1e-3),  # s must be > 0
        lambda: mode_trajectory([1.0], [1.0, -1.0], 1e-3),
        lambda: mode_trajectory([1.0], [1.0], 0.0),  # u0 must be > 0
        lambda: mode_trajectory([1.0], [1.0], 1.0),  # u0 must be < s
        lambda: mode_trajectory([1.0], [1.0], 1e-3, depth=0),
        lambda: mode_trajectory([1.0], [1.0], 1e-3, depth=2.5),
        lambda: mode_trajectory([-1.0, 1.0], [1.0], 1e-3, depth=3),  # t >= 0
        lambda: mode_trajectory_two_layer(1.0, [-2.0], 1e-3),
        lambda: t_half([1.0], 2.0),
        lambda: t_half([1.0], 1e-3, depth=0),
        lambda: t_half([1.0], 1e-3, depth=2.5),
        lambda: t_half_two_layer(2.0, 2.0),  # before: NaN and a RuntimeWarning, while mode_trajectory raised
        lambda: t_half_two_layer(2.0, 3.0),
        lambda: t_half_two_layer(-1.0, 1e-3),
    ],
)
def test_invalid_inputs_raise(call):
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------- loss


def test_predicted_loss_equals_the_loss_of_an_aligned_map_on_whitened_data():
    rng = np.random.default_rng(0)
    n, d_in, d_out, k = 64, 5, 4, 3
    Xq, _ = np.linalg.qr(rng.standard_normal((n, n)))
    X = np.sqrt(n) * Xq[:, :d_in]  # (n, d_in), X^T X / n = I exactly (whitened)
    E = Xq[:, d_in:] @ rng.standard_normal((n - d_in, d_out))  # noise orthogonal to X: Sigma_yx untouched
    U, _ = np.linalg.qr(rng.standard_normal((d_out, k)))
    V, _ = np.linalg.qr(rng.standard_normal((d_in, k)))
    teacher = U @ np.diag(S) @ V.T  # Sigma_yx = U diag(s) V^T
    Y = X @ teacher.T + E  # (n, d_out)
    residual = 0.5 * (np.trace(Y.T @ Y / n) - np.sum(S**2))  # predicted_loss docstring
    us = np.array([[0.1, 0.2, 0.05], [1.9, 0.7, 0.01], list(S)])  # (T, K) mode strengths
    direct = [0.5 * np.sum((X @ (U @ np.diag(u) @ V.T).T - Y) ** 2) / n for u in us]  # (1/2n) sum ||.||^2
    np.testing.assert_allclose(predicted_loss(us, S, residual), direct, rtol=1e-12)
    np.testing.assert_allclose(predicted_loss(S, S), 0.0, atol=0)  # learned noiseless teacher: zero loss
    assert predicted_loss(us, S).shape == (3,)



# ---------------------------------------------------------------- stages from a small random init


@pytest.mark.parametrize("u0", [1e-2, 1e-4, 1e-7])
def test_rise_time_is_the_time_between_ode_events_at_10_and_90_percent(u0):
    for s in (4.0, 1.5, 0.5):
        events = [lambda _t, v, q=q: v[0] - q * s for q in (0.1, 0.9)]  # crossings of u = 0.1 s and 0.9 s
        sol = _ode_reference([3 * t_half_two_layer(s, u0) + 5 / s], [s], u0, 2, events=events)
        t10, t90 = sol.t_events[0][0], sol.t_events[1][0]
        np.testing.assert_allclose(rise_time_two_layer(s, u0), t90 - t10, rtol=1e-8)  # solve_ivp at rtol 1e-13
        np.testing.assert_allclose(rise_time_two_layer(s, u0), np.log(81) / (2 * s), rtol=1e-12)  # closed form
        np.testing.assert_allclose(transition_time_two_layer(s, u0, [0.1, 0.9]), [t10, t90], rtol=1e-8)


def test_rise_time_of_a_mode_that_starts_above_ten_percent_counts_from_zero():
    s, u0 = 2.0, 0.5  # u0 = 0.25 s: the 10% point lies before t = 0
    sol = _ode_reference([5.0], [s], u0, 2, events=lambda _t, v: v[0] - 0.9 * s)
    np.testing.assert_allclose(rise_time_two_layer(s, u0), sol.t_events[0][0], rtol=1e-8)
    assert rise_time_two_layer(s, u0) < np.log(81) / (2 * s)
    with pytest.raises(ValueError, match="fraction"):
        transition_time_two_layer(s, u0, 1.0)


def test_stage_separation_is_the_t_half_gap_over_the_earlier_rise_time():
    s, u0 = np.array([4.0, 1.5, 0.5]), np.array([[8e-4, 7.5e-4, 7e-4], [8e-6, 7.5e-6, 7e-6]])  # (2 scales, K)
    gap1 = np.log(1.5 / 7.5e-4 - 1) / 3 - np.log(4 / 8e-4 - 1) / 8  # t_half = ln(s/u0 - 1)/(2s), modes 2 - 1
    np.testing.assert_allclose(stage_separation_two_layer(s, u0)[0, 0], gap1 / (np.log(81) / 8), rtol=1e-13)
    assert stage_separation_two_layer(s, u0).shape == (2, 2)
    assert np.all(stage_separation_two_layer(s, u0)[1] > stage_separation_two_layer(s, u0)[0])  # smaller init
    with pytest.raises(ValueError, match="decreasing"):
        stage_separation_two_layer([1.0, 2.0], [1e-3, 1e-3])


def _gd_two_layer(W1, W2, U, V, s, eta, t_max):
    """Plain GD on (1/2)||U diag(s) V^T - W2 W1||^2 (whitened population loss); mode strengths over time."""
    target = U @ np.diag(s) @ V.T
    ts, us = [], []
    for k in range(int(t_max / eta)):
        err = target - W2 @ W1  # (d_out, d_in)
        W1, W2 = W1 + eta * W2.T @ err, W2 + eta * err @ W1.T
        ts.append((k + 1) * eta)
        us.append(np.einsum("oa,oh,hi,ia->a", U, W2, W1, V))
    return np.array(ts), np.array(us)  # (T,), (T, K)


def test_effective_u0_predicts_when_gradient_descent_learns_each_mode():
    rng = np.random.default_rng(3)
    d, h, s, sigma, eta = 5, 8, np.array([3.0, 1.2, 0.4]), 1e-3, 2e-3
    U = np.linalg.qr(rng.standard_normal((d, 3)))[0]
    V = np.linalg.qr(rng.standard_normal((d, 3)))[0]
    W1, W2 = sigma * rng.standard_normal((h, d)), sigma * rng.standard_normal((d, h))
    u0 = effective_u0_two_layer(W1 @ V, W2.T @ U)
    predicted = t_half_two_layer(s, u0)
    t, u = _gd_two_layer(W1, W2, U, V, s, eta, predicted[-1] + 3.0)
    measured = np.array([np.interp(s[k] / 2, u[:, k], t) for k in range(3)])  # u rises monotonically here
    # GD with step eta grows u by (1 + eta s)^2 per step, not e^{2 eta s}: t_half longer by ~eta s / 2 <= 0.3%
    np.testing.assert_allclose(measured, predicted, rtol=5e-3)  # measured here: 0.26%, 0.10%, 0.03%
    # without the projection off the earlier modes' hidden directions the last mode comes 3% early here
    p = W1 @ V + W2.T @ U
    unprojected = t_half_two_layer(s, np.sum(p**2, axis=0) / 4)
    assert abs(unprojected[-1] / measured[-1] - 1) > 10 * abs(predicted[-1] / measured[-1] - 1)
    # the projected initial product diag(U^T W2 W1 V) is not the logistic's u0 (here it is negative for a mode)
    product = np.einsum("oa,oh,hi,ia->a", U, W2, W1, V)
    assert np.any(product <= 0) or np.max(np.abs(t_half_two_layer(s, np.abs(product)) / measured - 1)) > 0.05


def test_typical_u0_is_the_monte_carlo_mean():
    rng = np.random.default_rng(0)
    n, h, k, d = 4000, 16, 3, 6
    U = np.linalg.qr(rng.standard_normal((d, k)))[0]
    V = np.linalg.qr(rng.standard_normal((d, k)))[0]
    W1, W2 = rng.standard_normal((n, h, d)), rng.standard_normal((n, d, h))  # sigma = 1
    u0 = effective_u0_two_layer(W1 @ V, np.swapaxes(W2, 1, 2) @ U)  # (n, K)
    # u0_k = chi^2_{h-k} / 2 in law: mean (h - k)/2, standard deviation sqrt(2 (h - k)) / 2
    se = np.sqrt(2.0 * (h - np.arange(k))) / 2 / np.sqrt(n)
    np.testing.assert_allclose(u0.mean(axis=0), typical_u0_two_layer(1.0, h, k), atol=4 * se.max())
    np.testing.assert_allclose(u0.var(axis=0), 2.0 * (h - np.arange(k)) / 4, rtol=0.15)  # var of chi^2/2
    assert effective_u0_two_layer(np.ones((2, 3)), np.zeros((2, 3)))[2] == 0.0  # h = 2 < K = 3: no room
