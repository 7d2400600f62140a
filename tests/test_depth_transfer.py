"""hparams.depth-transfer: the unigram entropy, the three depth rules at and away from the base depth, the
summary and verdict on synthetic bowls, and one tiny run checked against a numpy recomputation."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from learnmech.data import text
from learnmech.nets import transformer
from learnmech.atlas.contract import Curve
from learnmech.atlas.execute import record_from_columns, verdict_from_row
from learnmech.atlas.hparams import depth_transfer as dt
from learnmech.atlas.keys import key
from learnmech.data.text import stdlib_corpus
from learnmech.nets import transformer as tf

LN2 = math.log(2.0)


# --------------------------------------------------------------------------------------------
# unigram entropy


def test_unigram_entropy_matches_a_counter_and_closed_forms():
    rng = np.random.default_rng(0)
    tokens = rng.choice(np.arange(7, dtype=np.uint8), size=500, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05])
    counts = Counter(tokens.tolist())  # an independent count, in python
    expected = -sum(c / 500 * math.log(c / 500) for c in counts.values())
    assert text.unigram_entropy(tokens) == pytest.approx(expected, rel=1e-12)
    assert text.unigram_entropy(np.arange(256, dtype=np.uint8)) == pytest.approx(math.log(256), rel=1e-12)  # uniform
    assert text.unigram_entropy(np.full(9, 65, np.uint8)) == 0.0  # one symbol: no uncertainty
    for bad in (np.zeros(0, np.uint8), np.zeros(4, np.int32), np.zeros((2, 2), np.uint8)):
        with pytest.raises(ValueError, match="tokens"):
            text.unigram_entropy(bad)


# --------------------------------------------------------------------------------------------
# the three depth parameterisations


def _configs(p, depths=(2, 8)):
    return dt.depth_configs(depths, p, d_model=16, n_heads=2, seq_len=8)


def test_the_three_rules_are_one_network_at_the_base_depth_only():
    base = [_configs(p)[2] for p in dt.DEPTH_SCALINGS]
    assert all(transformer.same_network(base[0], other) for other in base[1:])
    deep = [_configs(p)[8] for p in dt.DEPTH_SCALINGS]
    assert not any(transformer.same_network(a, b) for i, a in enumerate(deep) for b in deep[i + 1:])


@pytest.mark.parametrize("p, alpha", [("completep", 1.0), ("depth-mup", 0.5), ("none", 0.0)])
def test_residual_and_block_learning_rate_factors_at_depth_8(p, alpha):
    cfg = _configs(p)[8]  # m_L = 8 / 2 = 4
    assert cfg.residual_multiplier == pytest.approx(4.0 ** -alpha, rel=1e-12)
    block_lr = 4.0 ** (alpha - 1.0) if p != "none" else 1.0  # CompleteP Table 1; none: no correction
    mult = tf.lr_multipliers(cfg)
    assert mult["blocks"]["mlp_out"] == pytest.approx(block_lr, rel=1e-12)
    assert mult["readout"] == 1.0 and mult["token_embedding"] == 1.0  # outside the blocks: no depth factor


def test_prediction_is_no_shift_under_both_depth_scaled_rules():
    cfg = dt.CLAIM.make_config("full")
    prediction = dt.predict(cfg)
    assert set(prediction) == {key("shift", "completep"), key("shift", "depth-mup")}
    for curve in prediction.values():
        np.testing.assert_array_equal(curve.x, cfg.depths)
        np.testing.assert_allclose(curve.y, 0.0, atol=1e-12)  # m_L * m_L^-alpha * m_L^(alpha-1) = 1


@pytest.mark.parametrize("override, field", [({"depths": (2, 6)}, "depths"), ({"depths": (4, 2)}, "depths"),
                                             ({"n_heads": 3}, "n_heads"), ({"lr_log2_step": 4.0}, "lr_log2"),
                                             ({"judged": "none"}, "judged")])
def test_bad_configs_are_refused_naming_the_field(override, field):
    with pytest.raises(ValidationError, match=field):
        dt.CLAIM.make_config("quick", override)


# --------------------------------------------------------------------------------------------
# summary and verdict on synthetic bowls (log L an exact parabola in log2 eta)


LRS = 2.0 ** np.arange(-10.0, -2.0)  # (8,) 2^-10 .. 2^-3
GRID = {"depths": (2, 8), "lr_log2_min": -10.0, "lr_log2_max": -3.0, "lr_log2_step": 1.0}


def _bowl(vertex_log2, floor):
    return floor * np.exp(0.5 * (np.log2(LRS) - vertex_log2) ** 2)  # (K,)


def _measurement(vertices: dict, floor=1.5, entropy=3.0, seeds=2):
    """Stored curves whose seed mean has its vertex at ``vertices[p][i]`` (seeds scatter symmetrically)."""
    out = {"unigram_entropy": entropy}
    for p, vs in vertices.items():
        for i, v in enumerate(vs):
            y = np.stack([_bowl(v, floor) * (1 + 0.01 * s) for s in range(seeds)])  # (seeds, K)
            out[key("loss", p, i)] = Curve(LRS, y)
    return out


def test_summary_recovers_the_vertices_and_the_verdict_follows_the_rule():
    cfg = dt.CLAIM.make_config("quick", GRID)
    m = _measurement({"completep": (-6.0, -6.3), "depth-mup": (-6.0, -6.8), "none": (-6.0, -8.2)})
    s = dt.summarize(cfg, dt.predict(cfg), m)
    assert s[key("log2_eta_star", "none", 8)] == pytest.approx(-8.2, abs=1e-9)  # (1 + 0.01 s) is a common factor
    assert s["judged_shift"] == pytest.approx(0.3, abs=1e-9) and s["reported_shift"] == pytest.approx(0.8, abs=1e-9)
    assert s["unscaled_drift"] == pytest.approx(-2.2, abs=1e-9)
    assert s[key("slope", "none")] == pytest.approx(-2.2 / 2.0, abs=1e-9)  # over log2 8 - log2 2 = 2 octaves
    off_grid = math.exp(0.5 * 0.3**2)  # the best grid point 2^-6 is 0.3 octave from depth 8's vertex 2^-6.3
    assert s["worst_loss_ratio"] == pytest.approx(1.5 * 1.005 * off_grid / 3.0, rel=1e-12)  # seed mean / H
    assert s[key("best_bpb", "completep", 2)] == pytest.approx(1.5 * 1.005 / LN2, rel=1e-12)
    assert dt.CLAIM.decide(s).status == "holds"
    judged_dmup = cfg.model_copy(update={"judged": "depth-mup"})
    assert dt.CLAIM.decide(dt.summarize(judged_dmup, dt.predict(judged_dmup), m)).status == "fails"  # 0.8 > 0.5


def test_guards_grid_edge_and_not_trained():
    cfg = dt.CLAIM.make_config("quick", GRID)
    edge = _measurement({"completep": (-6.0, -2.0), "depth-mup": (-6.0, -6.0), "none": (-6.0, -6.0)})
    verdict = dt.CLAIM.decide(dt.summarize(cfg, dt.predict(cfg), edge))
    assert verdict.status == "inconclusive" and "grid" in verdict.metric and verdict.value == 1.0
    flat = _measurement({p: (-6.0, -6.0) for p in dt.DEPTH_SCALINGS}, floor=3.2, entropy=3.0)
    verdict = dt.CLAIM.decide(dt.summarize(cfg, dt.predict(cfg), flat))
    assert verdict.status == "inconclusive" and verdict.value == pytest.approx(3.2 * 1.005 / 3.0)
    edge_unscaled = _measurement({"completep": (-6.0, -6.0), "depth-mup": (-6.0, -6.0), "none": (-6.0, -2.0)})
    assert dt.CLAIM.decide(dt.summarize(cfg, dt.predict(cfg), edge_unscaled)).status == "holds"  # not judged


# --------------------------------------------------------------------------------------------
# one tiny run, checked against a numpy recomputation


@pytest.fixture(scope="module")
def tiny(tiny_payload):
    """The tiny run as execute_run gives it, once per test run (tests/conftest.py; the conformance test
    runs the same one), read back from its long-format columns as the store gives it back."""
    payload = tiny_payload(dt.CLAIM)
    assert payload.state == "done", payload.error
    prediction, measurement, summary = (record_from_columns(payload.series, source)
                                        for source in ("theory", "experiment", "summary"))
    return dt.CLAIM.make_config("tiny"), prediction, measurement, summary, verdict_from_row(payload.verdict)


def _vertex(lrs, mean):
    """log2 eta* by numpy: the parabola in (log2 eta, log L) through the argmin and its neighbours."""
    i = int(np.argmin(mean))
    if i in (0, mean.size - 1):
        return float(np.log2(lrs[i]))
    a, b, _ = np.polyfit(np.log2(lrs[i - 1:i + 2]), np.log(mean[i - 1:i + 2]), 2)
    return float(-b / (2 * a))


def test_tiny_run_matches_a_numpy_recomputation(tiny):
    cfg, prediction, m, s, verdict = tiny
    assert m["unigram_entropy"] == pytest.approx(text.unigram_entropy(stdlib_corpus().train), rel=1e-12)
    assert m["base_trained_once"] == 1.0
    base = [m[key("loss", p, 0)].y for p in dt.DEPTH_SCALINGS]
    np.testing.assert_array_equal(base[0], base[1])  # the base depth was trained once, shared by all three
    lrs = cfg.learning_rates
    worst = -np.inf
    for p in dt.DEPTH_SCALINGS:
        stars = []
        for i, L in enumerate(cfg.depths):
            y = m[key("loss", p, i)].y  # (seeds, K) held-out nats
            assert y.shape == (cfg.seeds, lrs.size) and np.all(y > 0)
            mean = np.where(np.isfinite(y), y, np.inf).mean(axis=0)
            stars.append(_vertex(lrs, mean))
            assert s[key("log2_eta_star", p, L)] == pytest.approx(stars[-1], abs=1e-9)
            if p == cfg.judged:
                worst = max(worst, mean.min() / m["unigram_entropy"])
        assert s[key("shift", p)] == pytest.approx(stars[-1] - stars[0], abs=1e-9)
    assert s["worst_loss_ratio"] == pytest.approx(worst, rel=1e-12)
    # The verdict by hand: guards (grid edge, trained below the unigram entropy), then the half-octave check.
    if s["edges"] > 0 or not s["worst_loss_ratio"] < cfg.trained_below:
        expected = "inconclusive"
    else:
        expected = "holds" if s["judged_shift"] <= 0.5 else "fails"
    assert verdict.status == expected


def test_tiny_figure_has_a_loss_panel_per_rule_and_the_optima(tiny):
    import matplotlib.pyplot as plt

    cfg, prediction, m, s, verdict = tiny
    fig = dt.CLAIM.figure(cfg, prediction, m, s, verdict)
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes[:3]] == [dt.NAMES[p] for p in dt.DEPTH_SCALINGS]
    assert fig.axes[3].get_xlabel() == "log2 depth (layers)"
    plt.close(fig)
