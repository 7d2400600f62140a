"""`learnmech transfer`: a tiny real sweep, the JSON output on a sweep with known optima, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from learnmech.atlas.hparams import mup_transfer as mt
from learnmech.cli import app

runner = CliRunner()


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


def _known_sweeps(widths, lrs, parameterizations=("mup", "sp"), *, steps, seeds, **task):
    """Exact bowls in (log2 eta, log L): muP optimum 2^-6 at every width, SP 2^-6 (w0 / w)."""
    x = np.log2(np.asarray(lrs))  # (K,)
    octaves = np.log2(np.asarray(widths) / widths[0])  # (W,)
    vertex = {"mup": -6.0 + 0.0 * octaves, "sp": -6.0 - octaves}
    out = {}
    for p in parameterizations:
        bowl = 0.01 * np.exp(0.5 * (x[None, :] - vertex[p][:, None]) ** 2)  # (W, K)
        out[p] = np.repeat(bowl[:, :, None], seeds, axis=2)  # (W, K, seeds)
    out["sp"][-1, -1, 0] = np.nan  # the widest SP net diverged at the largest learning rate: no effect on eta*
    return out


def test_json_reports_eta_star_slopes_and_the_extrapolation(workdir, monkeypatch):
    monkeypatch.setattr(mt, "transfer_sweeps", _known_sweeps)
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
