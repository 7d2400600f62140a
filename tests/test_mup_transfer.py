"""hparams.mup-transfer: the eta* estimator, the transfer fit, the verdict on synthetic records, and
the sweep against a hand-written Adam loop."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from pydantic import ValidationError

from learnmech.atlas.contract import Curve
from learnmech.atlas.hparams import mup_transfer as mt
from learnmech.atlas.keys import key
from learnmech.fit import fit_transfer, mean_loss, optimal_learning_rate
from learnmech.nets import MLP
from learnmech.observe import mse
from learnmech.data.transfer_task import transfer_task, zero_function_loss
from learnmech.nets.students import Student, one_draw_init
from learnmech.width_transfer import log2_grid

transfer_module = importlib.import_module("learnmech.width_transfer")

LRS = 2.0 ** np.arange(-12, -2)  # (10,) the quick grid, 2^-12 .. 2^-3


def _bowl(lrs, vertex_log2, curvature=0.7, floor=0.05):
    """Losses with log L an exact parabola in log2 eta, minimum ``floor`` at ``2^vertex_log2``."""
    return floor * np.exp(curvature * (np.log2(lrs) - vertex_log2) ** 2)


# --------------------------------------------------------------------------------------------
# optimal_learning_rate


@pytest.mark.parametrize("vertex", [-6.0, -6.37, -5.51, -9.2])
def test_vertex_of_an_exact_parabola_is_recovered(vertex):
    eta, edge = optimal_learning_rate(LRS, _bowl(LRS, vertex))
    assert not edge
    assert np.log2(eta) == pytest.approx(vertex, abs=1e-12)  # three points determine the parabola exactly


def test_vertex_on_an_uneven_grid():
    lrs = 2.0 ** np.array([-10.0, -8.5, -8.0, -7.25, -6.0, -4.0])  # uneven steps around the minimum
    eta, edge = optimal_learning_rate(lrs, _bowl(lrs, -7.6, curvature=2.0))
    assert not edge and np.log2(eta) == pytest.approx(-7.6, abs=1e-12)


@pytest.mark.parametrize("vertex, index", [(-13.0, 0), (-2.0, -1)])
def test_minimum_at_the_grid_edge_is_flagged(vertex, index):
    eta, edge = optimal_learning_rate(LRS, _bowl(LRS, vertex))
    assert edge and eta == LRS[index]  # the grid point: the optimum may lie beyond it


def test_diverged_runs_rank_above_every_finite_loss():
    losses = _bowl(LRS, -6.3)
    losses[-2:] = [np.inf, np.nan]  # 2^-4 and 2^-3 diverged (the minimum is at 2^-6)
    eta, edge = optimal_learning_rate(LRS, losses)
    assert not edge and np.log2(eta) == pytest.approx(-6.3, abs=1e-12)  # neighbours finite: exact vertex
    # A diverged neighbour of the minimum: no parabola, the grid point itself (not an edge).
    losses = _bowl(LRS, -6.3)
    losses[7:] = np.nan  # 2^-5 and above diverged; the minimum is at 2^-6 (index 6)
    eta, edge = optimal_learning_rate(LRS, losses)
    assert not edge and eta == LRS[6]
    # A diverged run never wins even when every finite loss is huge.
    losses = np.full(LRS.size, 1e30)
    losses[4] = 1e29
    losses[[3, 5]] = np.nan
    assert optimal_learning_rate(LRS, losses) == (LRS[4], False)
    assert np.isnan(optimal_learning_rate(LRS, np.full(LRS.size, np.nan))[0])
    assert optimal_learning_rate(LRS, np.full(LRS.size, np.inf))[1]


def test_a_flat_pair_at_the_bottom_puts_the_vertex_midway():
    lrs = 2.0 ** np.arange(6.0)
    losses = np.array([5.0, 2.0, 1.0, 1.0, 4.0, 9.0])  # parabola through (1, log 2), (2, 0), (3, 0): vertex 2.5
    eta, edge = optimal_learning_rate(lrs, losses)
    assert not edge and np.log2(eta) == pytest.approx(2.5, abs=1e-12)


@pytest.mark.parametrize("lrs, losses, needle", [
    (LRS[:2], np.ones(2), "K >= 3"),
    (LRS[::-1], np.ones(LRS.size), "strictly increasing"),
    (LRS, -np.ones(LRS.size), "positive"),
])
def test_bad_arguments_are_refused(lrs, losses, needle):
    with pytest.raises(ValueError, match=needle):
        optimal_learning_rate(lrs, losses)


def test_mean_loss_is_inf_when_any_seed_diverged():
    losses = np.array([[1.0, 3.0], [2.0, np.nan], [np.inf, 1.0]])  # (K, seeds)
    np.testing.assert_array_equal(mean_loss(losses), [2.0, np.inf, np.inf])


def test_log2_grid():
    np.testing.assert_array_equal(log2_grid(-12, -3), LRS)
    np.testing.assert_allclose(np.log2(log2_grid(-4, -2, 0.5)), [-4, -3.5, -3, -2.5, -2], atol=1e-15)


# --------------------------------------------------------------------------------------------
# fit_transfer and the verdict on synthetic records


def _synthetic_losses(widths, vertices, seeds=2, lrs=LRS):
    """``(W, K, seeds)`` exact bowls; seed ``s`` scales the bowl by ``1 + 0.1 s`` (the vertex is unchanged)."""
    scale = 1.0 + 0.1 * np.arange(seeds)  # (seeds,)
    return np.stack([_bowl(lrs, v)[:, None] * scale[None, :] for v in vertices])


def test_fit_transfer_slope_is_exact_on_a_power_law():
    widths = (32, 64, 128, 256)
    vertices = -6.0 - 0.8 * np.log2(np.array(widths) / 32)  # eta* ~ width^-0.8
    fit = fit_transfer(widths, LRS, _synthetic_losses(widths, vertices))
    np.testing.assert_allclose(np.log2(fit.eta_star), vertices, atol=1e-12)
    assert fit.slope == pytest.approx(-0.8, abs=1e-12) and fit.intercept == pytest.approx(-6.0 + 0.8 * 5, abs=1e-11)
    assert fit.predicted(4096) == pytest.approx(2.0 ** (-6.0 - 0.8 * 7), rel=1e-11)
    # An eta* at the grid edge is kept out of the line.
    vertices[-1] = -14.0
    fit = fit_transfer(widths, LRS, _synthetic_losses(widths, vertices))
    assert fit.at_edge.tolist() == [False, False, False, True] and fit.fitted.tolist() == [True, True, True, False]
    assert fit.slope == pytest.approx(-0.8, abs=1e-12)


def _config(**overrides):
    return mt.CLAIM.make_config("quick", {"lr_log2_min": -12.0, "lr_log2_max": -3.0, "lr_log2_step": 1.0, **overrides})


def _measurement(cfg, mup_vertices, sp_vertices, zero=1.0):
    out = {"zero_loss": zero}
    for p, vertices in (("mup", mup_vertices), ("sp", sp_vertices)):
        losses = _synthetic_losses(cfg.widths, vertices, cfg.seeds, cfg.learning_rates)  # (W, K, seeds)
        for i in range(len(cfg.widths)):
            out[key("loss", p, i)] = Curve(cfg.learning_rates, losses[i].T)
    return out


def _judge(mup, sp, widths=(32, 64, 128, 256), judged_from=None, **kw):
    cfg = _config(widths=widths, seeds=2, judged_from=judged_from)
    return mt.CLAIM.judge(cfg, mt.predict(cfg), _measurement(cfg, mup, sp, **kw))


def test_judge_holds_when_mup_is_flat_and_sp_shrinks():
    v = _judge([-6.0, -6.1, -6.2, -6.3], [-6.0, -7.0, -8.0, -9.0])
    assert v.status == "holds"
    assert v.details["shift/mup"] == pytest.approx(-0.3, abs=1e-9)
    assert v.details["slope/sp"] == pytest.approx(-1.0, abs=1e-9)
    # The headline is the muP check (the first): |shift| 0.3 against 0.5.
    assert v.metric.startswith("muP") and v.value == pytest.approx(0.3, abs=1e-9) and v.threshold == 0.5
    assert "SP slope of log2 eta* vs log2 width (judged widths) -1.00 <= -0.50" in v.reason  # every check reported


def test_judge_fails_when_mup_drifts_or_sp_does_not_shrink():
    v = _judge([-6.0, -6.3, -6.5, -6.6], [-6.0, -7.0, -8.0, -9.0])  # muP shift 0.6 > 0.5
    assert v.status == "fails" and v.metric.startswith("muP") and v.value == pytest.approx(0.6, abs=1e-9)
    v = _judge([-6.0, -6.0, -6.0, -6.0], [-6.0, -6.4, -6.8, -7.2])  # SP slope -0.4 > -0.5
    assert v.status == "fails" and v.metric.startswith("SP") and v.value == pytest.approx(-0.4, abs=1e-9)
    v = _judge([-6.0, -6.0, -6.0, -6.49], [-6.0, -6.51, -7.02, -7.53])  # both just inside the thresholds
    assert v.status == "holds"


def test_judge_is_inconclusive_at_the_grid_edge_or_when_not_trained():
    v = _judge([-6.0, -6.0, -6.0, -6.0], [-6.0, -8.0, -10.0, -12.5])  # SP at 256: minimum at 2^-12, the edge
    assert v.status == "inconclusive" and v.metric.startswith("eta* at the grid edge") and v.value == 1.0
    assert v.details["at_edge/sp/256"] == 1.0 and v.details["at_edge/sp/128"] == 0.0 and "widen the grid" in v.reason
    v = _judge([-6.0, -6.0, -6.0, -6.0], [-6.0, -7.0, -8.0, -9.0], zero=0.08)  # best 0.0525 = 0.66 L_0
    assert v.status == "inconclusive" and v.value == pytest.approx(0.05 * 1.05 / 0.08)  # seed mean 1.05 x floor
    assert v.threshold == 0.5 and "train longer" in v.reason  # the config's trained_below


def test_judge_counts_a_diverged_seed_as_worse_than_any_finite_loss():
    cfg = _config(widths=(32, 64, 128, 256))
    m = dict(_measurement(cfg, [-6.0] * 4, [-6.0, -7.0, -8.0, -9.0]))
    y = m["loss/mup/3"].y.copy()  # (seeds, K)
    y[0, 6] = np.nan  # one seed diverged at 2^-6, the true optimum of the widest muP net
    m["loss/mup/3"] = Curve(cfg.learning_rates, y)
    v = mt.CLAIM.judge(cfg, mt.predict(cfg), m)
    # The minimum moves to 2^-7 with a diverged right neighbour: eta* = 2^-7, a shift of 1 octave.
    assert v.details["log2_eta_star/mup/256"] == -7.0 and v.status == "fails"


def test_predict_is_flat_for_mup_and_minus_one_octave_per_octave_for_sp():
    cfg = _config(widths=(32, 64, 256))
    p = mt.predict(cfg)
    np.testing.assert_array_equal(p["shift/mup"].y[0], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(p["shift/sp"].y[0], [0.0, -1.0, -3.0])


@pytest.mark.parametrize("overrides, needle", [
    ({"widths": (32, 64, 128)}, "at least 8x"),
    ({"widths": (32, 256, 128)}, "strictly increasing"),
    ({"lr_log2_min": -4, "lr_log2_max": -3}, "at least 3 learning rates"),
    ({"batch_size": 4096}, "batch_size"),
    ({"hidden_layers": 1}, "greater than or equal to 2"),
])
def test_config_refuses_experiments_that_cannot_test_the_claim(overrides, needle):
    with pytest.raises(ValidationError, match=needle):
        _config(**overrides)


def test_plot_renders_both_parameterisations_and_the_optima():
    cfg = _config(widths=(32, 64, 128, 256))
    m = _measurement(cfg, [-6.0] * 4, [-6.0, -7.0, -8.0, -9.0])
    summary, verdict = mt.CLAIM.evaluate(cfg, mt.predict(cfg), m)
    fig = mt.plot(cfg, mt.predict(cfg), m, summary, verdict)
    assert len(fig.axes) == 3
    # the optima drawn are the summary's (no refit): muP's four eta* at log2 = -6
    markers = [line for line in fig.axes[2].lines if line.get_label() == "muP: measured eta*"]
    np.testing.assert_allclose(markers[0].get_ydata(), [-6.0] * 4, atol=1e-9)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["SP (standard)", "muP (mup-adam, base width 32)"]


# --------------------------------------------------------------------------------------------
# Judged widths: the narrowest judged width is muP's base width; narrower widths are reported


FULL_WIDTHS = (32, 64, 128, 256, 512)
FLAT_MUP = [-5.6, -6.0, -6.1, -6.2, -6.3]  # muP: width 32 sits 0.4 octave above 64; 64..512 drift 0.3
SP_LINE = [-5.0, -6.0, -7.0, -8.0, -9.0]  # SP: -1 octave per doubling


def test_the_unjudged_width_is_reported_and_does_not_enter_the_verdict():
    v = _judge(FLAT_MUP, SP_LINE, widths=FULL_WIDTHS, judged_from=64)
    assert v.status == "holds" and v.value == pytest.approx(0.3, abs=1e-9)  # |-6.3 - (-6.0)|, 64..512
    assert v.details["judged_from"] == 64.0
    assert v.details["unjudged_shift/mup/32"] == pytest.approx(0.4, abs=1e-9)  # -5.6 - (-6.0)
    assert v.details["unjudged_shift/sp/32"] == pytest.approx(1.0, abs=1e-9)
    assert v.details["log2_eta_star/mup/32"] == pytest.approx(-5.6, abs=1e-9)
    # the line through 64..512 only: slope of [-6.0, -6.1, -6.2, -6.3] against log2 width is -0.1
    assert v.details["slope/mup"] == pytest.approx(-0.1, abs=1e-9)
    slope_all = np.polyfit(np.log2(FULL_WIDTHS), FLAT_MUP, 1)[0]  # all five widths: a steeper drift
    assert v.details["slope_all/mup"] == pytest.approx(slope_all, abs=1e-9) and slope_all < -0.15
    # judged from 32 the same optima fail: |-6.3 - (-5.6)| = 0.7 > 0.5
    v = _judge(FLAT_MUP, SP_LINE, widths=FULL_WIDTHS)
    assert v.status == "fails" and v.value == pytest.approx(0.7, abs=1e-9)


def test_an_unjudged_width_at_the_grid_edge_is_counted_but_not_inconclusive():
    v = _judge([-12.5] + FLAT_MUP[1:], SP_LINE, widths=FULL_WIDTHS, judged_from=64)  # muP at 32: beyond 2^-12
    assert v.status == "holds" and v.details["unjudged_edges"] == 1.0 and v.details["edges"] == 0.0
    v = _judge(FLAT_MUP[:-1] + [-12.5], SP_LINE, widths=FULL_WIDTHS, judged_from=64)  # a judged width at the edge
    assert v.status == "inconclusive" and v.details["edges"] == 1.0


def test_predicted_shift_is_measured_from_the_base_width():
    cfg = _config(widths=FULL_WIDTHS, judged_from=64)
    p = mt.predict(cfg)
    np.testing.assert_array_equal(p["shift/sp"].y[0], [1.0, 0.0, -1.0, -2.0, -3.0])  # -log2(n / 64)
    np.testing.assert_array_equal(p["shift/mup"].y[0], np.zeros(5))
    assert (cfg.base_width, cfg.judged_widths, cfg.unjudged_widths) == (64, (64, 128, 256, 512), (32,))
    assert mt.CLAIM.make_config("full").base_width == 64 and mt.CLAIM.make_config("quick").judged_widths == (32, 256)


@pytest.mark.parametrize("overrides, needle", [
    ({"widths": (32, 64, 512), "judged_from": 128}, "judged_from: must be one of the widths"),
    ({"widths": (32, 64, 256), "judged_from": 64}, "judged_from: the judged widths .* span at least 8x"),
])
def test_config_refuses_a_judged_span_that_cannot_test_the_claim(overrides, needle):
    with pytest.raises(ValidationError, match=needle):
        _config(**overrides)


def test_plot_draws_the_unjudged_width_hollow_and_dotted():
    cfg = _config(widths=FULL_WIDTHS, judged_from=64, seeds=2)
    m = _measurement(cfg, FLAT_MUP, SP_LINE)
    summary, verdict = mt.CLAIM.evaluate(cfg, mt.predict(cfg), m)
    fig = mt.plot(cfg, mt.predict(cfg), m, summary, verdict)
    lines = {line.get_label(): line for line in fig.axes[2].lines}
    np.testing.assert_allclose(lines["muP: measured eta*"].get_ydata(), FLAT_MUP[1:], atol=1e-9)  # judged: filled
    np.testing.assert_allclose(lines["muP: measured eta*, not judged"].get_ydata(), [-5.6], atol=1e-9)
    assert lines["muP: measured eta*, not judged"].get_fillstyle() == "none"
    assert "width 32 (not judged)" in [line.get_label() for line in fig.axes[1].lines]
    assert fig.axes[1].get_title() == "muP (mup-adam, base width 64)"


def _width(model) -> int:
    """The hidden width of a student ``(d_in, n), (n, n), (n, 1)``: the largest fan-out of its weights."""
    return max(leaf.shape[-1] for leaf in jax.tree.leaves(jax.eval_shape(model.init, jax.random.key(0))))


def test_the_base_width_is_trained_once_and_narrower_mup_networks_are_trained(monkeypatch):
    trained = []

    def fake_train(model, loss, lrs, data, *, seeds, **kw):  # no training: record
        total = float(sum(np.sum(m) for m in jax.tree.leaves(model.lr_multipliers)))  # the per-layer learning rates
        trained.append((_width(model), total))
        return np.full((len(lrs), seeds), total)

    monkeypatch.setattr(transfer_module, "_train_width", fake_train)
    lrs = 2.0 ** np.array([-7.0, -5.0, -3.0])
    out = mt.transfer_sweeps((4, 16), lrs, steps=2, seeds=1, batch_size=None, n_samples=16, d_in=3, base_width=16)
    # SP at 4 and 16 (multipliers 1, 1, 1); muP at 4 only, m = 4/16: hidden and readout rates x 16/4 = 4
    assert trained == [(4, 3.0), (16, 3.0), (4, 9.0)]
    np.testing.assert_array_equal(out["mup"].losses[1], out["sp"].losses[1])  # the base width, reused from SP


# --------------------------------------------------------------------------------------------
# The experiment


def test_one_draw_init_has_the_law_of_mlp_init():
    net = MLP((16, 512, 512, 1), "relu", "mup-adam", base_width=32, bias=False, dtype="float32")
    ours, ref = one_draw_init(net)(jax.random.key(3)), net.init(jax.random.key(3))
    assert jax.tree.structure(ours) == jax.tree.structure(ref)
    for a, b, sc in zip(ours, ref, net.scalings):
        assert a["w"].shape == b["w"].shape and a["w"].dtype == b["w"].dtype == jnp.float32
        n = a["w"].size
        # Monte Carlo: the sample std of n Gaussian entries is within 5 / sqrt(2n) of init_std (5 sigma).
        assert float(jnp.std(a["w"])) == pytest.approx(sc.init_std, rel=5 / np.sqrt(2 * n))
        assert abs(float(jnp.mean(a["w"]))) < 5 * sc.init_std / np.sqrt(n)


def _adam_reference(net, lr, data, steps, seed):
    """One member trained by a plain optax loop: full-batch Adam with the net's lr multipliers."""
    k_init, _ = jax.random.split(jax.random.key(seed))  # the trainer's member init key (train.member)
    params = one_draw_init(net)(k_init)
    mults = net.lr_multipliers()
    tx = optax.adam(np.float32(lr))
    state = tx.init(params)
    loss = lambda p: mse(net.apply(p, data[0]), data[1])  # noqa: E731
    for _ in range(steps):
        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        updates = jax.tree.map(lambda m, u: m * u, mults, updates)  # per-layer learning rates eta * m^-c
        params = optax.apply_updates(params, updates)
    return float(loss(params))


def test_sweep_matches_a_plain_adam_loop_and_reuses_the_base_width(monkeypatch):
    widths, lrs, steps = (4, 16), 2.0 ** np.array([-7.0, -5.0, -3.0]), 6
    task = dict(batch_size=None, n_samples=32, d_in=3, data_seed=1)
    trained = []
    train_width = transfer_module._train_width
    monkeypatch.setattr(transfer_module, "_train_width",
                        lambda *a, **kw: trained.append(_width(a[0])) or train_width(*a, **kw))  # a[0]: the model
    results = mt.transfer_sweeps(widths, lrs, steps=steps, seeds=2, **task)
    losses = {p: r.losses for p, r in results.items()}
    assert losses["sp"].shape == losses["mup"].shape == (2, 3, 2)
    assert trained == [4, 16, 16]  # SP at 4 and 16, muP at 16: muP at the base width is the SP network
    np.testing.assert_array_equal(losses["sp"][0], losses["mup"][0])
    assert not np.allclose(losses["sp"][1], losses["mup"][1])
    with pytest.raises(ValueError, match="parameterization: must be one of"):
        Student("ntk", 4)
    data = transfer_task(32, 3, 1)
    assert zero_function_loss(data) == pytest.approx(0.5 * np.mean(np.asarray(data[1], np.float64) ** 2), rel=1e-12)
    for p, name in (("sp", "sp"), ("mup", "mup-adam")):
        net = MLP((3, 16, 16, 1), "relu", name, base_width=4, bias=False, dtype="float32")
        ref = _adam_reference(net, lrs[1], data, steps, seed=1)
        assert losses[p][1, 1, 1] == pytest.approx(ref, rel=1e-4)  # float32 arithmetic, same operations
