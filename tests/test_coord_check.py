"""hparams.coord-check: exponents, the verdict on synthetic records, and a small real run."""

from __future__ import annotations

from functools import partial

import jax
import numpy as np
import pytest
from pydantic import ValidationError

from learnmech.atlas.contract import Curve
from learnmech.atlas.keys import key
from learnmech.atlas.hparams.coord_check import (
    CLAIM,
    MUP_HIGH,
    MUP_LOW,
    SP_MIN,
    Config,
    _adam,
    _centred_parts,
    _data,
    _network,
)
from learnmech.observe.coords import CoordModel, coord_check
from learnmech.theory.coord_exponents import init_exponents, update_exponents

WIDTHS = (64, 128, 512)
FAST = {"xla_backend_optimization_level": 0}  # small programs: compiling costs more than running


def _measurement(mup_ratio, sp_ratio, steps=3, widths=WIDTHS, seeds=4):
    """Records whose mean change grows from the narrowest to the widest width by the given ratios.

    ``mup_ratio`` and ``sp_ratio`` are ``(K, L)``: the ratio widest/narrowest at each step and
    layer, realised as a power law in width with seed-to-seed scatter that averages out exactly.
    """
    w = np.asarray(widths, float)
    scatter = np.linspace(-0.1, 0.1, seeds)[:, None]  # (seeds, 1), mean 0
    out = {}
    for prefix, ratio in (("mup", np.asarray(mup_ratio, float)), ("sp", np.asarray(sp_ratio, float))):
        K, L = ratio.shape
        for l in range(L):
            out[key("rms", prefix, l)] = Curve(w, 0.5 + scatter + 0 * w)
            for t in range(1, K + 1):
                a = np.log(ratio[t - 1, l]) / np.log(w[-1] / w[0])
                mean = 0.1 * (l + 1) * t * (w / w[0]) ** a  # (W,)
                out[key("change", prefix, l, t)] = Curve(w, mean * (1 + scatter))
    return out


def _judge(mup_ratio, sp_ratio):
    cfg = Config(widths=WIDTHS, steps=np.shape(mup_ratio)[0], hidden_layers=np.shape(mup_ratio)[1] - 1)
    return CLAIM.judge(cfg, CLAIM.predict(cfg), _measurement(mup_ratio, sp_ratio))


def _grid(value, K=3, L=3):
    return np.full((K, L), float(value))


def test_update_and_init_exponents():
    np.testing.assert_array_equal(update_exponents("mup", 2), [0, 0, 0])
    np.testing.assert_array_equal(update_exponents("sp", 2), [0, 1, 1.5])
    np.testing.assert_array_equal(update_exponents("sp", 1), [0, 1])  # no hidden-to-hidden layer
    np.testing.assert_array_equal(init_exponents("sp", 2), [0, 0, 0])
    np.testing.assert_array_equal(init_exponents("mup", 3), [0, 0, 0, -0.5])
    with pytest.raises(ValueError):
        update_exponents("ntk", 2)


def test_predicted_ratios_are_the_width_span_to_the_exponents():
    cfg = Config(widths=(32, 64, 512), hidden_layers=2)
    p = CLAIM.predict(cfg)
    np.testing.assert_allclose(p["ratio/sp"].y[0], [1.0, 16.0, 64.0], rtol=1e-12)
    np.testing.assert_allclose(p["ratio/mup"].y[0], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(p["exponent/sp"].x, [1, 2, 3])


def test_config_requires_an_eightfold_increasing_width_range():
    with pytest.raises(ValidationError):
        Config(widths=(64, 256))  # 4x
    with pytest.raises(ValidationError):
        Config(widths=(512, 64))
    with pytest.raises(ValidationError):
        Config(activation="swish")
    assert Config(widths=(64, 512)).widths == (64, 512)


def test_judge_holds_inside_the_band_with_a_growing_sp_output():
    sp = _grid(1.0)
    sp[0, -1] = 10.0
    v = _judge(_grid(1.2), sp)
    assert v.status == "holds"
    assert v.value == pytest.approx(1.2, rel=1e-9) and v.threshold == MUP_LOW  # the headline: the first check
    assert f"1.200 <= {MUP_HIGH:.3f}" in v.reason  # both ends of the band are reported
    assert v.details["sp_output_ratio_step1"] == pytest.approx(10.0, rel=1e-9)


def test_the_summary_names_the_mup_ratio_furthest_from_one_in_log():
    sp = _grid(1.0)
    sp[0, -1] = 10.0
    mup = _grid(1.2)
    mup[2, 1] = 0.8  # step 3, second hidden layer: |log 0.8| = 0.223 > |log 1.2| = 0.182
    cfg = Config(widths=WIDTHS, steps=3, hidden_layers=2)
    summary = CLAIM.summarize(cfg, CLAIM.predict(cfg), _measurement(mup, sp))
    assert summary["mup_worst_ratio"] == pytest.approx(0.8, rel=1e-9) and summary["diverged"] == 0.0
    assert summary["mup_ratio/layer2/step3"] == pytest.approx(0.8, rel=1e-9)
    assert summary["sp_output_ratio_predicted"] == pytest.approx(8.0**1.5, rel=1e-12)  # 512 / 64 = 8, exponent 3/2


@pytest.mark.parametrize("bad, bound", [(1.4, MUP_HIGH), (0.7, MUP_LOW)])
def test_judge_fails_when_one_mup_layer_and_step_leaves_the_band(bad, bound):
    mup = _grid(1.0)
    mup[1, 0] = bad  # step 2, first hidden layer
    sp = _grid(1.0)
    sp[0, -1] = 10.0
    v = _judge(mup, sp)
    assert v.status == "fails" and v.metric.startswith("muP")
    assert v.value == pytest.approx(bad, rel=1e-9) and v.threshold == bound


@pytest.mark.parametrize("sp_output", [1.0, SP_MIN])
def test_judge_fails_when_the_sp_output_ratio_does_not_exceed_two(sp_output):
    sp = _grid(5.0)  # large at later steps and other layers: only step 1 of the output is judged
    sp[0, -1] = sp_output
    v = _judge(_grid(1.0), sp)
    assert v.status == "fails" and v.metric.startswith("SP")
    assert v.value == pytest.approx(sp_output, rel=1e-9) and v.threshold == SP_MIN


def test_judge_is_inconclusive_on_non_finite_values():
    cfg = Config(widths=WIDTHS)
    m = _measurement(_grid(1.0), _grid(10.0))
    y = m["change/sp/2/3"].y.copy()
    y[0, -1] = np.nan
    m["change/sp/2/3"] = Curve(m["change/sp/2/3"].x, y)
    v = CLAIM.judge(cfg, CLAIM.predict(cfg), m)
    assert v.status == "inconclusive" and v.metric == "diverged members" and v.value == 1.0


def test_small_run_pairs_exactly_and_sp_output_grows():
    """widths 16 -> 128: the paired run's muP half equals a separate muP coordinate check, muP stays
    flat within the claim's band and the SP output's first update grows by more than 2x
    (theory: 8^1.5 = 23)."""
    cfg = Config(widths=(16, 128), seeds=2, steps=2, n_train=32, n_probe=16)
    m = CLAIM.measure(cfg, None)
    data, probe = _data(cfg)

    def build_mup(n):
        init, layers, loss, multipliers = _centred_parts(_network(cfg, n, "mup-adam"), data[0])
        return CoordModel(init, layers, loss, _adam(cfg, multipliers))

    alone = coord_check(build_mup, cfg.widths, data=data, probe=probe, steps=cfg.steps, seeds=range(cfg.seeds),
                        compiler_options=FAST)
    for l in range(3):  # float32; the two programs may round differently, changes are >= 1e-3 of h
        np.testing.assert_allclose(m[f"rms/mup/{l}"].y, alone.rms_per_seed[:, :, l].T, rtol=1e-5)
        for t in (1, 2):
            np.testing.assert_allclose(m[f"change/mup/{l}/{t}"].y, alone.change_per_seed[:, :, t - 1, l].T, rtol=1e-4)
    summary, v = CLAIM.evaluate(cfg, CLAIM.predict(cfg), m)
    assert v.details["sp_output_ratio_step1"] > SP_MIN
    assert all(MUP_LOW <= v.details[f"mup_ratio/layer{l}/step1"] <= MUP_HIGH for l in (1, 2, 3))
    fig = CLAIM.plot(cfg, CLAIM.predict(cfg), m, summary, v)
    assert len(fig.axes) == 3


def test_centring_removes_the_initial_output_without_moving_the_network():
    """At w_0 the centred loss is (1/2n)|y|^2 whatever the initial function; f0 is frozen."""
    cfg = Config(widths=(16, 128), n_train=32)
    (x, y), _ = _data(cfg)
    init, layers, loss, multipliers = _centred_parts(_network(cfg, 16, "sp"), x)

    @partial(jax.jit, compiler_options=FAST)
    def at_init(key):
        params = init(key)
        value, grads = jax.value_and_grad(loss)(params, (x, y))
        return params["f0"], layers(params, x)[-1], value, grads["f0"]

    f0, output, value, grad_f0 = at_init(jax.random.key(3))
    assert float(value) == pytest.approx(0.5 * float(np.mean(np.asarray(y) ** 2)), rel=1e-6)
    assert np.abs(np.asarray(f0)).max() > 0.05  # a non-trivial initial function was removed
    np.testing.assert_allclose(np.asarray(output), np.asarray(f0), rtol=1e-6)  # layers: the network itself
    np.testing.assert_array_equal(np.asarray(grad_f0), 0.0)
    assert multipliers["f0"] == 0.0


def test_the_claims_worst_ratio_is_the_coord_checks_worst_step_rule():
    """The claim's muP verdict value and CoordCheck.worst_ratio read the same rule: the ratio farthest
    from 1 in log (per layer for CoordCheck, then over layers for the claim)."""
    from learnmech.observe.coords import CoordCheck

    mup = _grid(1.1)
    mup[0, 2] = 0.7  # step 1, output: |log 0.7| = 0.357, the farthest from 1
    mup[2, 0] = 1.3  # step 3, first hidden layer: |log 1.3| = 0.262
    sp = _grid(1.0)
    sp[0, -1] = 10.0
    cfg = Config(widths=WIDTHS, steps=3, hidden_layers=2)
    m = _measurement(mup, sp)
    summary = CLAIM.summarize(cfg, CLAIM.predict(cfg), m)
    change = np.array([[m[key("change", "mup", l, t)].mean for l in range(3)] for t in (1, 2, 3)])  # (K, L, W)
    rms = np.array([m[key("rms", "mup", l)].mean for l in range(3)]).T  # (W, L)
    check = CoordCheck(widths=np.asarray(WIDTHS), steps=np.arange(1, 4), rms=rms, change=change.transpose(2, 0, 1))
    np.testing.assert_allclose(check.worst_ratio, [1.3, 1.1, 0.7], rtol=1e-9)
    np.testing.assert_array_equal(check.worst_step, [3, 1, 1])  # ties (all 1.1) resolve to the first step
    farthest = check.worst_ratio[np.argmax(np.abs(np.log(check.worst_ratio)))]
    assert summary["mup_worst_ratio"] == pytest.approx(farthest, rel=1e-12)
