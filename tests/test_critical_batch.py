"""hparams.critical-batch: the hyperbola fit, the exact SGD theory, the noise-scale measurement, the judge."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnmech.atlas.contract import Curve
from learnmech.atlas.hparams.critical_batch import CLAIM, Config, dataset, input_spectrum, teacher
from learnmech.atlas.keys import key
from learnmech.atlas.metrics import log_window_mean, steps_to_target
from learnmech.fit.batch_tradeoff import StepsHyperbola
from learnmech.theory.batch_tradeoff import steps_hyperbola
from learnmech.theory.sgd_linear import b_simple_linear, sgd_second_moments
from learnmech.data.noisy_linear import least_squares_floor, mse_linear, power_law_variances
from learnmech.observe.noise import noise_scale_blocks
from learnmech.train import log_schedule

BATCHES = 2.0 ** np.arange(11)  # 1 .. 1024
noise_scale_jit = jax.jit(noise_scale_blocks, static_argnums=(0, 3))  # one compile per shape


@pytest.mark.parametrize("n_train", [None, 4096])
def test_fit_recovers_the_exact_hyperbola(n_train):
    steps = steps_hyperbola(BATCHES, 7.3, 42.0, n_train)
    fit = StepsHyperbola(n_train).fit(BATCHES, steps)
    assert fit.s_min_ == pytest.approx(7.3, rel=1e-6)
    assert fit.b_noise_ == pytest.approx(42.0, rel=1e-6)
    assert fit.rms_ < 1e-8


def test_fit_with_multiplicative_noise_matches_linearised_least_squares():
    """Monte Carlo over 300 noisy curves (5% log-normal scatter, seed 0) against the Gauss-Newton covariance.

    For residuals ``r = log S - log S_min - log(1 + B_noise / B)`` with i.i.d. N(0, s^2) noise, the
    estimate of ``(log S_min, log B_noise)`` has covariance ``s^2 (J^T J)^-1`` to first order.
    """
    s_min, b_noise, scatter, reps = 7.3, 42.0, 0.05, 300
    exact = steps_hyperbola(BATCHES, s_min, b_noise)
    u = b_noise / BATCHES
    J = np.stack([np.ones_like(BATCHES), u / (1 + u)], axis=1)  # d log S / d(log S_min, log B_noise)
    sd = scatter * np.sqrt(np.diag(np.linalg.inv(J.T @ J)))  # (2,)
    rng = np.random.default_rng(0)
    fits = [StepsHyperbola().fit(BATCHES, exact * np.exp(scatter * rng.standard_normal(BATCHES.size)))
            for _ in range(reps)]
    est = np.array([(f.s_min_, f.b_noise_) for f in fits])
    logs = np.log(est) - np.log([s_min, b_noise])  # (reps, 2)
    # Unbiased to within 4 standard errors of the mean; the spread within 20% of first order theory.
    np.testing.assert_array_less(np.abs(logs.mean(axis=0)), 4 * sd / np.sqrt(reps))
    np.testing.assert_allclose(logs.std(axis=0), sd, rtol=0.2)


def test_steps_to_target_interpolates_exponential_decay_exactly_and_skips_divergence():
    t = log_schedule(1000, 40).astype(float)
    excess = 2.0 * np.exp(-t / 37.0)
    assert steps_to_target(t, excess, 2.0 * np.exp(-123.4 / 37.0)) == pytest.approx(123.4, rel=1e-9)
    assert np.isnan(steps_to_target(t, np.where(t > 50, np.nan, excess), 1e-6))  # diverged before reaching
    assert np.isnan(steps_to_target(t, excess + 1.0, 0.5))  # a floor above the target


def test_log_window_mean_keeps_a_power_law_and_averages_white_noise_over_centred_windows():
    t = log_schedule(400, 100).astype(float)
    curve = 3.0 * (1 + t) ** -0.7
    np.testing.assert_allclose(log_window_mean(t, curve, 1.2), curve, rtol=0.02)  # curvature: < 2%, largest early
    # Window sizes counted independently: 2k + 1 points, k = the fewer neighbours on one side within 20%.
    k = np.array([min(np.sum((t >= tj / 1.2) & (t < tj)), np.sum((t > tj) & (t <= 1.2 * tj))) for tj in t])
    noise = np.random.default_rng(1).standard_normal((4000, t.size))
    # Unit white noise: the mean of 2k + 1 samples has standard deviation 1 / sqrt(2k + 1); 4000
    # draws give each column's standard deviation to ~1.1% (1 sigma), 5% is over 4 sigma.
    np.testing.assert_allclose(log_window_mean(t, noise, 1.2).std(axis=0), 1 / np.sqrt(2 * k + 1), rtol=0.05)
    assert k[np.searchsorted(t, 200)] >= 2 and k[0] == 0 and k[-1] == 0  # late windows are wide; the ends stay raw


def test_sgd_second_moments_match_monte_carlo_of_online_sgd():
    """Independent reference: 20000 runs of SGD on fresh Gaussian batches (numpy, seed 2)."""
    lam, sigma, eta, batch, steps, runs = np.array([2.0, 1.0, 0.5, 0.25]), 0.5, 0.3, 2, 25, 20000
    w_star = np.array([0.7, -0.4, 0.5, 0.3])
    rng = np.random.default_rng(2)
    e = np.broadcast_to(-w_star, (runs, 4)).copy()  # w = 0
    excess = [0.5 * (e**2 @ lam)]
    for _ in range(steps):
        x = rng.standard_normal((runs, batch, 4)) * np.sqrt(lam)  # (runs, B, d)
        r = np.einsum("rbd,rd->rb", x, e) - sigma * rng.standard_normal((runs, batch))  # x.w - y
        e -= eta * np.einsum("rbd,rb->rd", x, r) / batch
        excess.append(0.5 * (e**2 @ lam))
    excess = np.array(excess)  # (steps + 1, runs)
    theory = 0.5 * sgd_second_moments(lam, w_star**2, sigma, [eta], batch, steps)[:, 0] @ lam  # (steps + 1,)
    stderr = excess.std(axis=1) / np.sqrt(runs)
    assert np.all(np.abs(excess.mean(axis=1) - theory) < 4 * stderr + 1e-12)


def test_block_noise_scale_is_the_sample_statistics_of_per_example_gradients():
    """With blocks of one example the trace is the unbiased sample trace; |G|^2 is the full gradient's."""
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((64, 5)), rng.standard_normal((64, 1))
    w = rng.standard_normal((5, 1))
    g = X * (X @ w - Y)  # per-example gradients (n, d)
    G = g.mean(axis=0)
    data = (jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32))
    for b in (1, 4, 16):
        est = noise_scale_jit(mse_linear, {"w": jnp.asarray(w, jnp.float32)}, data, b)
        assert float(est.grad_sq_norm) == pytest.approx(G @ G, rel=1e-4)  # the finite-population correction
        if b == 1:
            assert float(est.trace_cov) == pytest.approx(np.sum((g - G) ** 2) / 63, rel=1e-4)
    with pytest.raises(ValueError, match="block"):
        noise_scale_blocks(mse_linear, {"w": jnp.asarray(w)}, data, 5)  # 5 does not divide 64


def test_b_simple_of_the_claims_task_at_init_matches_the_closed_form():
    """The claim's data and model at w = 0 (e = -w*), n = 2^17 examples, 4 independent draws pooled.

    Closed form: B_simple = 1 + (e^T Lambda e + sigma^2) tr(Lambda) / (e^T Lambda^2 e). Relative
    sampling error of the pooled estimate ~ 2 sqrt(B_simple / (4 n)) ~ 1.1% (the |G|^2 part) plus
    ~0.5% (the trace); 5% is about 4 standard errors.
    """
    cfg = CLAIM.make_config("quick")
    trace, grad = [], []
    for seed in range(4):
        X, Y = dataset(cfg, n=2**17, seed=100 + seed)
        est = noise_scale_jit(mse_linear, {"w": jnp.zeros((cfg.dim, 1))}, (jnp.asarray(X), jnp.asarray(Y)),
                              cfg.noise_batch)
        trace.append(float(est.trace_cov))
        grad.append(float(est.grad_sq_norm))
    lam, w = input_spectrum(cfg), teacher(cfg)
    closed = float(b_simple_linear(lam, w, cfg.noise))
    assert np.mean(trace) / np.mean(grad) == pytest.approx(closed, rel=0.05)
    assert np.mean(grad) == pytest.approx(float(w**2 @ lam**2), rel=0.05)  # |G|^2 = e^T Lambda^2 e


# --------------------------------------------------------------------------------------------- judge

def _synthetic(cfg: Config, b_noise: float, b_simple: float, s_min: float = 6.0, reach=None, best=None):
    """A measurement in the claim's format whose tuned steps follow the hyperbola exactly.

    Member (batch i, lr j) has excess ``E0 exp(-c t / S_ij)`` (it crosses the target at ``S_ij``);
    the best lr ``best`` (default: the middle of the grid) has ``S_i`` from :func:`steps_hyperbola`,
    the others twice as many steps, the largest lr diverges at step 3. ``tr(Sigma) / |G|^2 = b_simple``.
    """
    L, K = len(cfg.learning_rates), len(cfg.batches)
    best = L // 2 if best is None else best
    t = log_schedule(cfg.steps, cfg.points).astype(float)
    floor, e0 = 0.05, 0.3
    c = np.log(1 / cfg.target_fraction)
    S = steps_hyperbola(np.asarray(cfg.batches, float), s_min, b_noise, cfg.n_train)
    out = {"floor": floor}
    for i in range(K):
        rows = []
        for j in range(L):
            s = S[i] * (1.0 if j == best else 2.0)
            excess = e0 * np.exp(-c * t / s)
            if reach is not None and not reach[i]:
                excess = e0 * (0.5 + 0.5 * np.exp(-t / 10.0))  # levels off above the target
            if j == L - 1:
                excess = np.where(t > 3, np.nan, excess)  # diverged
            rows += [floor + excess] * cfg.seeds
        out[key("loss", i)] = Curve(t, np.array(rows))
        out[key("grad_sq", i)] = Curve(t, np.ones((L * cfg.seeds, t.size)))
        out[key("trace_cov", i)] = Curve(t, np.full((L * cfg.seeds, t.size), b_simple))
    return out


@pytest.fixture(scope="module")
def judge_setup():
    cfg = Config(seeds=2, lr_octaves=4, smoothing=1.0, steps=2000, points=200)
    return cfg, CLAIM.predict(cfg)


@pytest.mark.parametrize("b_simple, status", [(20.0, "holds"), (7.0, "holds"), (6.5, "fails"),
                                              (59.0, "holds"), (61.0, "fails")])
def test_judge_compares_the_fitted_knee_with_b_simple(judge_setup, b_simple, status):
    cfg, prediction = judge_setup
    verdict = CLAIM.judge(cfg, prediction, _synthetic(cfg, b_noise=20.0, b_simple=b_simple))
    assert verdict.status == status
    assert verdict.details["b_noise"] == pytest.approx(20.0, rel=1e-4)  # exact hyperbola, exact crossings
    assert verdict.details["s_min"] == pytest.approx(6.0, rel=1e-4)
    assert verdict.value == pytest.approx(20.0 / b_simple, rel=1e-4)
    assert verdict.details["tuned_batches"] == len(cfg.batches)
    assert verdict.details["b_simple"] == pytest.approx(b_simple, rel=1e-12)  # the average of a constant
    assert verdict.details["knee_margin"] == pytest.approx(min(20.0 / 1, 256 / 20.0), rel=1e-4)  # batches 1..256


def test_summary_holds_the_exact_steps_and_the_tuned_runs(judge_setup):
    """On the synthetic sweep every batch is tuned at the middle learning rate and crosses at the hyperbola."""
    cfg, prediction = judge_setup
    summary = CLAIM.summarize(cfg, prediction, _synthetic(cfg, b_noise=20.0, b_simple=20.0))
    batches = np.asarray(cfg.batches, float)
    exact = steps_hyperbola(batches, 6.0, 20.0, cfg.n_train)
    np.testing.assert_allclose(summary["steps"].y[0], exact, rtol=1e-6)  # log-linear crossing of an exponential
    np.testing.assert_allclose(summary["steps_per_seed"].y, np.tile(exact, (cfg.seeds, 1)), rtol=1e-6)
    np.testing.assert_array_equal(summary["best_lr"].y[0], cfg.learning_rates[len(cfg.learning_rates) // 2])
    np.testing.assert_array_equal(summary["tuned"].y[0], 1.0)
    assert summary["e_min"] == pytest.approx(6.0 * 20.0, rel=1e-4)
    np.testing.assert_allclose(summary[key("b_simple_run", 3)].y, 20.0, rtol=1e-12)


def test_judge_is_inconclusive_when_few_batches_reach_the_target(judge_setup):
    cfg, prediction = judge_setup
    reach = np.arange(len(cfg.batches)) >= len(cfg.batches) - cfg.min_batches + 1  # one too few
    verdict = CLAIM.judge(cfg, prediction, _synthetic(cfg, 20.0, 20.0, reach=reach))
    assert verdict.status == "inconclusive" and verdict.value == cfg.min_batches - 1


def test_judge_is_inconclusive_when_the_best_lr_is_at_the_edge_of_the_grid(judge_setup):
    cfg, prediction = judge_setup
    verdict = CLAIM.judge(cfg, prediction, _synthetic(cfg, 20.0, 20.0, best=0))
    assert verdict.status == "inconclusive" and verdict.value == 0


def test_judge_is_inconclusive_when_the_knee_is_outside_the_grid(judge_setup):
    cfg, prediction = judge_setup
    verdict = CLAIM.judge(cfg, prediction, _synthetic(cfg, b_noise=2.0, b_simple=2.0))  # 4 x B_min = 4 > 2
    assert verdict.status == "inconclusive" and verdict.metric == "knee bracketed by tuned batches"
    assert verdict.value == pytest.approx(2.0 / 1, rel=1e-4)  # B_noise / B_min: the knee sits 2x above the grid


def test_plot_renders_a_synthetic_measurement(judge_setup):
    cfg, prediction = judge_setup
    measurement = _synthetic(cfg, 20.0, 20.0)
    summary, verdict = CLAIM.evaluate(cfg, prediction, measurement)
    fig = CLAIM.plot(cfg, prediction, measurement, summary, verdict)
    assert len(fig.axes) == 3


def test_the_task_has_the_stated_spectrum_teacher_and_floor():
    """Mean-1 power-law variances; a unit teacher; the sample covariance and the least-squares floor of a large draw."""
    lam = power_law_variances(8, 1.0)
    assert lam.mean() == pytest.approx(1.0, rel=1e-14)
    np.testing.assert_allclose(lam[0] / lam, np.arange(1, 9), rtol=1e-12)  # lambda_k ~ 1/k
    cfg = CLAIM.make_config("quick")
    assert np.linalg.norm(teacher(cfg)) == pytest.approx(1.0, rel=1e-14)
    X, Y = dataset(cfg, n=2**16, seed=5)
    np.testing.assert_allclose(np.var(X.astype(float), axis=0), input_spectrum(cfg), rtol=0.03)  # ~4 sigma
    # least squares on n examples leaves sigma^2 (n - d) / n / 2 of the noise (the residual's degrees of freedom)
    assert least_squares_floor(X, Y) == pytest.approx(0.5 * cfg.noise**2 * (1 - cfg.dim / 2**16), rel=0.03)
