"""hparams.mup-transfer-lm: the summary against a numpy recomputation, on the tiny run and on planted optima."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learnmech.data import text
from learnmech.nets import transformer
from learnmech.atlas.contract import Curve
from learnmech.atlas.execute import record_from_columns, verdict_from_row
from learnmech.atlas.hparams import mup_transfer_lm as lm
from learnmech.atlas.keys import key
from learnmech.data.text import stdlib_corpus

CLAIM = lm.CLAIM


def _vertex(lrs: np.ndarray, mean: np.ndarray) -> tuple[float, bool]:
    """log2 eta* by hand: vertex of the parabola in (log2 eta, ln L) through the grid minimum and its neighbours."""
    x, y = np.log2(lrs), np.log(mean)
    i = int(np.argmin(y))
    if i in (0, y.size - 1):
        return float(x[i]), True
    h = x[1] - x[0]
    y0, y1, y2 = y[i - 1], y[i], y[i + 1]
    return float(x[i] - 0.5 * h * (y2 - y0) / (y2 - 2 * y1 + y0)), False


@pytest.fixture(scope="module")
def tiny(tiny_payload):
    """The tiny run as execute_run gives it, once per test run (tests/conftest.py; the conformance test
    runs the same one), read back from its long-format columns as the store gives it back."""
    payload = tiny_payload(CLAIM)
    assert payload.state == "done", payload.error
    prediction, measurement, summary = (record_from_columns(payload.series, source)
                                        for source in ("theory", "experiment", "summary"))
    return CLAIM.make_config("tiny"), prediction, measurement, summary, verdict_from_row(payload.verdict)


def test_unigram_entropy_matches_closed_forms():
    assert text.unigram_entropy(np.arange(4, dtype=np.uint8).repeat(3)) == pytest.approx(math.log(4), abs=1e-12)
    assert text.unigram_entropy(np.zeros(5, np.uint8)) == 0.0  # one symbol: no uncertainty
    tokens = np.random.default_rng(0).integers(0, 7, size=1000).astype(np.uint8)
    p = np.bincount(tokens) / tokens.size  # numpy reference, every symbol present
    assert text.unigram_entropy(tokens) == pytest.approx(-(p * np.log(p)).sum(), rel=1e-12)
    with pytest.raises(ValueError, match="tokens"):
        text.unigram_entropy(np.zeros(0, np.uint8))


def test_config_refuses_bad_widths():
    with pytest.raises(ValueError, match="divisible by n_heads"):
        CLAIM.make_config("quick", {"widths": (9, 72)})
    with pytest.raises(ValueError, match="8x"):
        CLAIM.make_config("quick", {"widths": (8, 32)})
    with pytest.raises(ValueError, match="judged"):
        CLAIM.make_config("quick", {"widths": (8, 16, 64), "judged_from": 16})


def test_mup_is_sp_only_at_the_base_width():
    cfg = CLAIM.make_config("quick")
    sp, mup = lm.sweep_configs(cfg, "sp"), lm.sweep_configs(cfg, "mup")
    assert transformer.same_network(sp[cfg.base_width], mup[cfg.base_width])
    assert not transformer.same_network(sp[cfg.widths[-1]], mup[cfg.widths[-1]])  # lr 1/m, readout std, 1/d_head logits


def test_tiny_summary_matches_a_numpy_recomputation(tiny):
    cfg, _, measurement, summary, _ = tiny
    lrs = cfg.learning_rates
    base = cfg.widths.index(cfg.base_width)
    np.testing.assert_array_equal(measurement[key("loss", "mup", base)].y,  # reused, not retrained
                                  measurement[key("loss", "sp", base)].y)
    entropy = measurement["unigram_entropy"]
    for p in ("sp", "mup"):
        found = [_vertex(lrs, measurement[key("loss", p, i)].mean) for i in range(len(cfg.widths))]
        for w, (log2_eta, edge), i in zip(cfg.widths, found, range(len(cfg.widths))):
            assert summary[key("log2_eta_star", p, w)] == pytest.approx(log2_eta, abs=1e-9)
            assert summary[key("at_edge", p, w)] == float(edge)
            best = np.nanmin(measurement[key("loss", p, i)].mean)
            assert summary[key("best_bits_per_byte", p, w)] == pytest.approx(best / math.log(2), rel=1e-9)
        shift = found[-1][0] - found[base][0]
        assert summary[key("shift", p)] == pytest.approx(shift, abs=1e-9)
    corpus = stdlib_corpus()
    assert entropy == pytest.approx(text.unigram_entropy(corpus.train), rel=1e-12)
    assert summary["train_bytes"] == corpus.train.size and summary["n_files"] == len(corpus.files)
    assert summary["sha256_prefix"] == int(corpus.sha256[:12], 16)


def test_tiny_verdict_follows_the_rules_by_hand(tiny):
    _, _, _, summary, verdict = tiny
    if summary["edges"] > 0 or not summary["worst_loss_ratio"] <= summary["trained_below"]:
        expected = "inconclusive"
    elif summary["mup_shift"] <= 0.5 and summary[key("slope", "sp")] <= -0.5:
        expected = "holds"
    else:
        expected = "fails"
    assert verdict.status == expected


def _planted(cfg, sp_slope: float, mup_slope: float) -> dict:
    """Losses ``L = H exp(0.05 (log2 eta - c_w)^2 - 0.3)`` per seed with optimum ``c_w`` on a line in log2 width."""
    lrs = cfg.learning_rates
    out = {"unigram_entropy": 3.0, "train_bytes": 10.0, "validation_bytes": 2.0, "n_files": 3.0,
           "sha256_prefix": 7.0, "tokens_per_member": 1.0, "passes": 0.1, "train_seconds": 1.0}
    for p, slope in (("sp", sp_slope), ("mup", mup_slope)):
        for i, w in enumerate(cfg.widths):
            centre = -5.3 + slope * math.log2(w / cfg.base_width)
            loss = 3.0 * np.exp(0.05 * (np.log2(lrs) - centre) ** 2 - 0.3)  # (K,)
            out[key("loss", p, i)] = Curve(lrs, np.stack([loss, loss * 1.01]))  # (seeds, K)
    return out


@pytest.mark.parametrize("sp_slope, mup_slope, status", [(-1.0, 0.0, "holds"), (-1.0, 0.3, "fails"),
                                                        (-0.2, 0.0, "fails")])
def test_planted_optima_are_recovered_and_judged(sp_slope, mup_slope, status):
    cfg = CLAIM.make_config("quick", {"widths": (8, 16, 32, 64), "lr_log2_min": -12.0, "lr_log2_max": 0.0})
    prediction, measurement = CLAIM.predict(cfg), _planted(cfg, sp_slope, mup_slope)
    summary, verdict = CLAIM.evaluate(cfg, prediction, measurement)
    # the parabola through three points of an exact parabola in ln L recovers its vertex exactly
    assert summary[key("slope", "sp")] == pytest.approx(sp_slope, abs=1e-9)
    assert summary["mup_shift"] == pytest.approx(abs(mup_slope) * 3, abs=1e-9)  # 8 -> 64: three doublings
    best = [measurement[key("loss", p, i)].mean.min() / 3.0 for p in ("sp", "mup") for i in range(4)]
    assert summary["worst_loss_ratio"] == pytest.approx(max(best), rel=1e-12)  # loss / unigram entropy
    assert verdict.status == status
    fig = CLAIM.figure(cfg, prediction, measurement, summary, verdict)
    assert len(fig.axes) == 3 and fig.axes[-1].get_xlabel() == "log2 d_model"
