"""`learnmech transfer`: a tiny real sweep, the JSON output on a sweep with known optima, bad input."""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from learnmech import transfer_budget
from learnmech.cli import app
from learnmech.width_transfer import Transfer

runner = CliRunner()
transfer_module = importlib.import_module("learnmech.width_transfer")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_tiny_sweep_prints_the_table_and_writes_the_figure(workdir):
    result = runner.invoke(app, ["transfer", "--widths", "8,16", "--lrs", "2^-8..2^-2:2", "--steps", "4",
                                 "--seeds", "1", "--out", "figs"])
    assert result.exit_code == 0, result.output
    for needle in ("optimal Adam learning rate eta*", "width 8", "width 16", "slope of log2 eta* vs log2 width",
                   "predicted eta* at width 4096", "muP (mup-adam)", "SP", "figure: figs/transfer.png"):
        assert needle in result.stdout, needle
    assert sorted(p.name for p in (workdir / "figs").iterdir()) == ["transfer.png", "transfer.svg"]
    assert (workdir / "figs" / "transfer.png").stat().st_size > 10_000


def _known_transfer(init, apply, widths, lrs, *, seeds, **kwargs):
    """Exact bowls in (log2 eta, log L): muP optimum 2^-6 at every width, SP 2^-6 (w0 / w)."""
    p = init.__self__.parameterization  # init is the claim's Student.init
    x = np.log2(np.asarray(lrs))  # (K,)
    octaves = np.log2(np.asarray(widths) / widths[0])  # (W,)
    vertex = {"mup": -6.0 + 0.0 * octaves, "sp": -6.0 - octaves}[p]
    bowl = 0.01 * np.exp(0.5 * (x[None, :] - vertex[:, None]) ** 2)  # (W, K)
    losses = np.repeat(bowl[:, :, None], seeds, axis=2)  # (W, K, seeds)
    if p == "sp":
        losses[-1, -1, 0] = np.nan  # the widest SP net diverged at the largest learning rate: no effect on eta*
    return Transfer.from_losses(widths, lrs, losses)


def test_json_reports_eta_star_slopes_and_the_extrapolation(workdir, monkeypatch):
    monkeypatch.setattr(transfer_module, "transfer", _known_transfer)
    result = runner.invoke(app, ["transfer", "--widths", "32,64,128,256", "--lrs", "2^-12..2^-2", "--seeds", "2",
                                 "--target-width", "4096", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["widths"] == [32, 64, 128, 256] and data["base_width"] == 32 and data["target_width"] == 4096
    assert data["learning_rates"] == [2.0**k for k in range(-12, -1)]
    np.testing.assert_allclose(data["mup"]["log2_eta_star"], [-6.0] * 4, atol=1e-9)
    np.testing.assert_allclose(data["sp"]["log2_eta_star"], [-6.0, -7.0, -8.0, -9.0], atol=1e-9)
    assert data["mup"]["slope"] == pytest.approx(0.0, abs=1e-9) and data["sp"]["slope"] == pytest.approx(-1.0)
    # Extrapolated to width 4096 = 32 x 2^7: muP keeps 2^-6, SP falls 7 octaves to 2^-13.
    assert math.log2(data["mup"]["eta_star_at_target"]) == pytest.approx(-6.0, abs=1e-9)
    assert math.log2(data["sp"]["eta_star_at_target"]) == pytest.approx(-13.0, abs=1e-9)
    assert data["sp"]["at_edge"] == [False] * 4 and data["sp"]["mean_loss"][-1][-1] is None  # diverged -> null
    assert data["figures"] == ["learnmech-results/transfer/transfer.png", "learnmech-results/transfer/transfer.svg"]
    assert (workdir / "learnmech-results" / "transfer" / "transfer.png").exists()


@pytest.mark.parametrize("args, needle", [
    (["--widths", "32"], "--widths: need at least 2 widths"),
    (["--widths", "0,32"], "--widths: must be positive and strictly increasing"),
    (["--widths", "-8,32"], "--widths: must be positive and strictly increasing"),
    (["--widths", "64,32"], "--widths: must be positive and strictly increasing"),
    (["--widths", "32,32"], "--widths: must be positive and strictly increasing"),
    (["--widths", "32,wide"], "--widths: expected comma-separated integers"),
    (["--lrs", "0.01,0.1"], "--lrs: need at least 3 learning rates"),
    (["--lrs", "2^-4..2^-3"], "--lrs: need at least 3 learning rates"),
    (["--lrs", "2^-4..2^-12"], "--lrs: need at least 3 learning rates"),
    (["--lrs", "0.1,0.01,0.001"], "--lrs: learning rates must be positive and strictly increasing"),
    (["--lrs", "-0.1,0.01,0.1"], "--lrs: learning rates must be positive and strictly increasing"),
    (["--lrs", "fast"], "--lrs: expected a range such as 2^-12..2^-3"),
    (["--lrs", "2^-12..2^-3:0"], "--lrs: expected a range such as 2^-12..2^-3"),
    (["--steps", "0"], "--steps: must be an integer >= 1, got 0"),
    (["--seeds", "0"], "--seeds: must be an integer >= 1, got 0"),
    (["--target-width", "0"], "--target-width: must be an integer >= 1, got 0"),
    # every option bounded, with the limit named (learnmech.transfer_budget)
    (["--seeds", "-1"], "--seeds: must be an integer >= 1, got -1"),
    (["--steps", "-5"], "--steps: must be an integer >= 1, got -5"),
    (["--seeds", "65"], "--seeds: must be an integer <= 64 (MAX_SEEDS), got 65"),
    (["--steps", "100001"], "--steps: must be an integer <= 100000 (MAX_STEPS), got 100001"),
    (["--steps", "9" * 30], f"--steps: must be an integer <= 100000 (MAX_STEPS), got {'9' * 30}"),
    (["--target-width", "2000000"], "--target-width: must be an integer <= 1048576 (MAX_TARGET_WIDTH), got 2000000"),
    (["--widths", ",".join(str(2**k) for k in range(33))], "--widths: at most 32 widths (MAX_WIDTHS), got 33"),
    (["--widths", "32,99999999999"], "--widths: each width must be at most 2147483647 (MAX_WIDTH), got 99999999999"),
    (["--lrs", "2^-12..2^-3:1e-9"],
     "--lrs: at most 64 learning rates (MAX_LEARNING_RATES), got 9000000001 from '2^-12..2^-3:1e-9'"),
    (["--lrs", "2^-12..2^-3:1e-320"],
     "--lrs: at most 64 learning rates (MAX_LEARNING_RATES), got infinitely many from '2^-12..2^-3:1e-320'"),
    (["--lrs", ",".join(f"{k / 1000}" for k in range(1, 66))],
     "--lrs: at most 64 learning rates (MAX_LEARNING_RATES), got 65"),
    (["--lrs", "2^-12..2^2000"], "--lrs: expected a range such as 2^-12..2^-3"),  # 2.0 ** 2000 overflows
    (["--widths", "32,1000000000"], "--widths: width 1000000000 needs about 1.49e+12 GiB for 2 hidden layers x 40 "
                                    "members (10 learning rates x 4 seeds); this machine has"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(workdir, args, needle):
    result = runner.invoke(app, ["transfer", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert result.stdout == ""
    assert list(workdir.iterdir()) == []  # no results folder, no figure


def test_out_that_is_a_file_is_refused_untouched(workdir):
    target = workdir / "notes.txt"
    target.write_text("keep me\n")
    result = runner.invoke(app, ["transfer", "--out", str(target)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: --out: {target} exists and is not a folder"
    assert target.read_text() == "keep me\n" and [p.name for p in workdir.iterdir()] == ["notes.txt"]


def test_a_request_that_does_not_fit_in_memory_is_refused_before_training(workdir, monkeypatch):
    def must_not_train(*args, **kwargs):
        raise AssertionError("trained although refused")

    monkeypatch.setattr(transfer_module, "transfer", must_not_train)
    monkeypatch.setattr(transfer_budget, "machine_memory_bytes", lambda: 16 * 2**30)
    # width 4096, 2 hidden layers, 10 learning rates x 4 seeds: about 10 copies of 16.8M weights x 40 members
    # plus activations, 26.4 GiB (transfer_budget.ensemble_bytes); 75% of 16 GiB = 12 GiB allowed
    result = runner.invoke(app, ["transfer", "--widths", "32,4096"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == ("error: --widths: width 4096 needs about 26.4 GiB for 2 hidden layers x 40 members "
                                     "(10 learning rates x 4 seeds); this machine has 16.0 GiB and a run may plan to "
                                     "use 75% of it (MEMORY_SHARE)")
    assert list(workdir.iterdir()) == []
    monkeypatch.setattr(transfer_budget, "machine_memory_bytes", lambda: 64 * 2**30)  # 48 GiB allowed: it runs
    with pytest.raises(AssertionError, match="trained although refused"):
        runner.invoke(app, ["transfer", "--widths", "32,4096"], catch_exceptions=False)


def test_the_memory_estimate_grows_with_the_weights_and_the_members():
    from learnmech.transfer_budget import ensemble_bytes

    task = dict(d_in=16, hidden_layers=2, rows=512)
    # Quadratic in width once the n x n matrix dominates, linear in members; at widths 1024 and 2048 with
    # 40 members it is within 4% of the peak memory growth measured on CPU (1.84 and 6.70 GiB).
    assert ensemble_bytes(2**20, 40, **task) / ensemble_bytes(2**19, 40, **task) == pytest.approx(4.0, rel=1e-3)
    assert ensemble_bytes(1024, 80, **task) == 2 * ensemble_bytes(1024, 40, **task)
    assert ensemble_bytes(1024, 40, **task) / 2**30 == pytest.approx(1.84, rel=0.04)
    assert ensemble_bytes(2048, 40, **task) / 2**30 == pytest.approx(6.70, rel=0.04)


def test_help_says_how_to_run_your_own_model_from_python():
    result = runner.invoke(app, ["transfer", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for needle in ("Your own model runs through the same function, from Python", "from learnmech import transfer",
                   "transfer(build=make, widths=[32, 64, 128],", 'parameterization="mup-adam"',
                   "make(width, key) returns an equinox Module, a flax nnx Module or a plain pytree"):
        assert needle in text, needle
