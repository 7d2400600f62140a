"""limits.lazy-rich: the student's kernel, the linearised-movement and alignment pieces, and the verdict rules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnmech.atlas.contract import Curve
from learnmech.atlas.keys import key
from learnmech.atlas.limits.lazy_rich import CLAIM, Config, student, summarize
from learnmech.theory.lazy_rich import angle_to_nearest, isotropic_alignment, linearised_movement


def _student_ntk(X) -> np.ndarray:
    return student(CLAIM.make_config("quick")).kernels(np.asarray(X, np.float64), dtype=np.float64).ntk


def test_student_kernel_matches_its_empirical_tangent_kernel():
    """Monte Carlo: J J^T of the claim's student at width 4096 (float64), averaged over 4 initialisations."""
    X = np.asarray(jax.random.normal(jax.random.key(1), (5, 2), jnp.float64))
    net = student(CLAIM.make_config("quick", {"width": 4096}))

    @jax.jit
    def empirical(key):
        params = jax.tree.map(lambda a: a.astype(jnp.float64), net.init(key))
        jac = jax.jacobian(lambda p: net.apply(p, jnp.asarray(X))[:, 0])(params)
        J = jnp.concatenate([j.reshape(len(X), -1) for j in jax.tree.leaves(jac)], axis=1)  # (n, P)
        return J @ J.T

    with jax.enable_x64(True):
        theta = np.mean([np.asarray(empirical(jax.random.key(s))) for s in range(4)], axis=0)
    scale = np.sqrt(np.outer(np.diag(theta), np.diag(theta)))
    # Each entry averages 16384 units: relative standard error ~1%; 5% is about 5 sigma.
    np.testing.assert_allclose(_student_ntk(X) / scale, theta / scale, atol=0.05)


def test_student_kernel_closed_form_points():
    # Theta = |x||x'| (sin th + 2 (pi - th) cos th) / (4 pi): th = 0: |x|^2/2; th = pi/2: |x||x'|/(4 pi); th = pi: 0.
    X = np.array([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    K = _student_ntk(X)
    np.testing.assert_allclose(np.diag(K), [2.0, 4.5, 0.5], rtol=1e-14)
    assert K[0, 1] == pytest.approx(6.0 / (4 * np.pi), rel=1e-14)
    assert K[0, 2] == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("P", [3, 40])  # P < n: the kernel has zero eigenvalues
def test_linearised_movement_equals_gd_on_the_linear_model(P):
    """Independent reference: GD on F_alpha(w) = ||alpha J (w - w0) - y||^2 / (2 n alpha^2), step by step."""
    rng = np.random.default_rng(3)
    n, alpha, eta, steps = 12, 0.7, 0.05, 300
    J, y = rng.standard_normal((n, P)), rng.standard_normal(n)
    dw = np.zeros(P)
    for _ in range(steps):
        dw -= eta * J.T @ (alpha * J @ dw - y) / (n * alpha)
    # alpha ||w_s - w0|| does not depend on alpha; both sides are exact up to rounding.
    assert linearised_movement(J @ J.T, y, eta, steps) == pytest.approx(alpha * np.linalg.norm(dw), rel=1e-9)


@pytest.mark.parametrize("angles", [(0.0, 90.0, 180.0), (0.0, 15.0, 180.0), (350.0, 5.0)])
def test_isotropic_alignment_matches_monte_carlo(angles):
    rng = np.random.default_rng(0)
    theta = rng.uniform(-180.0, 180.0, 400_000)
    mc = np.mean(angle_to_nearest(theta, angles) <= 10.0)
    # Binomial standard error <= 0.0008 at 4e5 samples; 0.004 is 5 sigma.
    assert isotropic_alignment(angles) == pytest.approx(mc, abs=0.004)


def test_angle_to_nearest_wraps_around_the_circle():
    got = angle_to_nearest(np.array([355.0, -170.0, 45.0, 100.0]), (0.0, 180.0))
    np.testing.assert_allclose(got, [5.0, 10.0, 45.0, 80.0], atol=1e-12)  # by hand


def test_config_rejects_bad_grids():
    with pytest.raises(ValueError, match="alphas"):
        Config(alphas=(1.0, 0.1, 30.0))
    with pytest.raises(ValueError, match="lazy_min"):
        Config(lazy_min=20.0)
    with pytest.raises(ValueError, match="alphas"):
        Config(alphas=(0.3, 1.0, 3.0))  # nothing in the rich range alpha <= 0.1


def _synthetic(cfg: Config, movement_exponent: float, rich_fraction: float, final_loss: float):
    """Records shaped like ``measure``'s: movement ~ alpha^exponent, a chosen aligned fraction."""
    t = np.array([0.0, 1.0, 2.0])
    m = cfg.width
    lazy_angles = np.linspace(-180.0, 180.0, m, endpoint=False)  # isotropic: 1/6 within 10 deg
    n_aligned = round(rich_fraction * m)
    rich_angles = np.concatenate([np.full(n_aligned, 90.0), np.full(m - n_aligned, 45.0)])
    out = {}
    for i, alpha in enumerate(cfg.alphas):
        rich = alpha <= 0.1
        out[key("loss", i)] = Curve(t, np.tile([1.0, 0.1, final_loss if rich else 1e-2], (cfg.seeds, 1)))
        out[key("movement", i)] = Curve(t, np.tile([0.0, 1.0, alpha**movement_exponent], (cfg.seeds, 1)))
        out[key("alignment", i)] = Curve(t, np.zeros((cfg.seeds, 3)))
        angles = rich_angles if rich else lazy_angles
        out[key("angle", i)] = Curve(np.arange(m), np.tile(angles, (cfg.seeds, 1)))
        out[key("mass", i)] = Curve(np.arange(m), np.ones((cfg.seeds, m)))
    return out


def test_judge_outcomes_on_synthetic_records():
    cfg = CLAIM.make_config("quick")
    prediction = CLAIM.predict(cfg)
    base = np.mean(angle_to_nearest(np.linspace(-180.0, 180.0, 200, endpoint=False), cfg.teacher_angles) <= 10.0)
    holds = CLAIM.judge(cfg, prediction, _synthetic(cfg, -1.0, 0.6, 1e-6))
    assert holds.status == "holds" and holds.details["slope"] == pytest.approx(-1.0, abs=1e-12)
    assert holds.metric.startswith("alignment ratio") and holds.value == pytest.approx(0.6 / base, rel=1e-12)
    slope = CLAIM.judge(cfg, prediction, _synthetic(cfg, -0.5, 0.6, 1e-6))
    assert slope.status == "fails" and slope.metric.startswith("|slope + 1|")
    assert slope.value == pytest.approx(0.5, abs=1e-12)
    weak = CLAIM.judge(cfg, prediction, _synthetic(cfg, -1.0, 2.5 * base, 1e-6))
    assert weak.status == "fails" and weak.value == pytest.approx(2.5, abs=0.03)  # rounding to whole neurons
    short = CLAIM.judge(cfg, prediction, _synthetic(cfg, -1.0, 0.6, 0.05))
    assert short.status == "inconclusive" and short.value == pytest.approx(0.05)
    assert short.threshold == cfg.converged_loss
    nan = _synthetic(cfg, -1.0, 0.6, 1e-6)
    nan[key("movement", 3)] = Curve(nan[key("movement", 3)].x, np.full((cfg.seeds, 3), np.nan))
    diverged = CLAIM.judge(cfg, prediction, nan)
    assert diverged.status == "inconclusive" and diverged.value == cfg.seeds  # every seed of one alpha


def test_summary_per_alpha_numbers():
    """The summary's per-alpha scalars the figure reads: movement ~ alpha^-1 exactly, alignment fractions."""
    cfg = CLAIM.make_config("quick")
    prediction = CLAIM.predict(cfg)
    summary = summarize(cfg, prediction, _synthetic(cfg, -1.0, 0.6, 1e-6))
    for a in cfg.alphas:
        assert summary[key("movement", f"{a:g}")] == pytest.approx(1.0 / a, rel=1e-12)
        assert summary[key("alignment", f"{a:g}")] == pytest.approx(0.6 if a <= 0.1 else 1 / 6, abs=0.005)
    lazy = [a for a in cfg.alphas if a >= cfg.lazy_min]
    assert {k for k in summary if k.startswith("movement_over_linearised/")} == {
        key("movement_over_linearised", f"{a:g}") for a in lazy}
