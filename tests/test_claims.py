"""End to end: the quick atlas through the CLI, killed mid-run and resumed, and the shared
conformance checks that every registered claim must pass on the run it produced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from learnmech import __version__
from learnmech.atlas import all_claims
from learnmech.atlas.runner import record_from_columns, stored_verdict
from learnmech.store import Store, run_id

CLAIMS = list(all_claims().values())

# The quick presets' verdicts as measured and reported in the README: a claim that does not hold is
# data, kept visible here so that any change of verdict (either way) is noticed. Default: holds.
QUICK_FAILS = {
    # Depth-2 ReLU net: the one-network NNGP error is 3.4 width^{-1/2}, 5.35% at width 4096 (> 5%).
    "limits.kernel-convergence",
    # SGD's (k eta, k B) rule breaks at 0.73 x B_simple: B_simple plateaus where the scaled rate meets the
    # curvature-weighted stability limit 2/h (h = tr(H Sigma)/tr Sigma <= lambda_max), just above where it breaks.
    "hparams.linear-scaling",
}
EXPECTED_RC = 1 if QUICK_FAILS else 0  # learnmech atlas exits 1 when a claim fails


def _atlas(store: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "learnmech.cli", "atlas", "--quick", "--store", str(store), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _statuses(store: Path) -> dict[str, str]:
    with Store.open(store, create=False, read_only=True) as db:
        return {r.claim: r.status for r in db.runs()}


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    """Start the quick atlas, SIGKILL it once the first claim is done, inspect, then re-run it."""
    store = tmp_path_factory.mktemp("atlas") / "learnmech.duckdb"
    proc = _atlas(store)
    first = CLAIMS[0].id
    for line in proc.stderr:  # the CLI prints one line per finished claim
        if line.startswith(f"{first}: "):
            break
    time.sleep(1.0)  # well inside the second claim, which takes several seconds
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    after_kill = _statuses(store)
    resumed = _atlas(store)
    stdout, stderr = resumed.communicate(timeout=600)
    again = _atlas(store, "--json")
    again_out, again_err = again.communicate(timeout=120)
    return {"store": store, "after_kill": after_kill, "resumed": (resumed.returncode, stdout, stderr),
            "again": (again.returncode, again_out, again_err)}


def test_kill_leaves_no_unfinished_run_marked_done(killed_then_resumed):
    after = killed_then_resumed["after_kill"]
    assert after[CLAIMS[0].id] == "done"
    assert after.get(CLAIMS[1].id) == "running"  # killed inside it: not done
    assert all(after.get(c.id) is None for c in CLAIMS[2:])


def test_resume_completes_every_claim(killed_then_resumed):
    rc, stdout, stderr = killed_then_resumed["resumed"]
    assert rc == EXPECTED_RC, stderr
    assert f"{CLAIMS[0].id}: run" in stderr and "already done, skipped" in stderr
    assert set(_statuses(killed_then_resumed["store"]).values()) == {"done"}
    for claim in CLAIMS:
        assert claim.id in stdout


def test_second_run_skips_everything(killed_then_resumed):
    rc, stdout, stderr = killed_then_resumed["again"]
    assert rc == EXPECTED_RC, stderr
    outcomes = json.loads(stdout)
    assert [o["state"] for o in outcomes] == ["skipped"] * len(CLAIMS)
    verdicts = {o["claim"]: o["verdict"]["status"] for o in outcomes}
    assert verdicts == {c.id: "fails" if c.id in QUICK_FAILS else "holds" for c in CLAIMS}


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_conformance(claim, killed_then_resumed):
    """Every registered claim: presets, JSON round trip, purity of predict, verdict, figure, stored records."""
    store = killed_then_resumed["store"]
    quick, full = claim.make_config("quick"), claim.make_config("full")
    for cfg in (quick, full):
        assert claim.config.model_validate_json(cfg.model_dump_json()) == cfg
    assert claim.statement and claim.references and claim.pillar
    rid = run_id(claim.id, quick.model_dump(mode="json"), __version__)
    with Store.open(store, create=False, read_only=True) as db:
        assert db.status(rid) == "done"
        verdict = stored_verdict(db, rid)
        figures = [Path(p) for kind, p in db.artifacts(rid) if kind == "figure"]
        cols = db.series(rid)
    assert verdict.status in ("holds", "fails", "inconclusive")
    assert np.isfinite(verdict.value) and np.isfinite(verdict.threshold) and verdict.reason
    assert {p.suffix for p in figures} == {".png", ".svg"}
    assert all(p.exists() and p.stat().st_size > 1000 for p in figures)
    # The stored curves are everything the verdict depends on: judging them again agrees.
    prediction, measurement = record_from_columns(cols, "theory"), record_from_columns(cols, "experiment")
    fresh_prediction = claim.predict(quick)
    assert fresh_prediction.keys() == prediction.keys()
    for name, curve in fresh_prediction.items():  # predict is pure: the same numbers again
        np.testing.assert_allclose(curve.y, prediction[name].y, rtol=1e-12)
    again = claim.judge(quick, prediction, measurement)
    assert again.status == verdict.status
    assert again.value == pytest.approx(verdict.value, rel=1e-9)


def test_runs_and_show_read_the_store(killed_then_resumed):
    from typer.testing import CliRunner

    from learnmech.cli import app

    store = str(killed_then_resumed["store"])
    runner = CliRunner()
    listing = runner.invoke(app, ["runs", "--store", store])
    assert listing.exit_code == 0
    for claim in CLAIMS:
        assert claim.id in listing.stdout
    rid = run_id(CLAIMS[0].id, CLAIMS[0].make_config("quick").model_dump(mode="json"), __version__)
    shown = runner.invoke(app, ["show", rid[:8], "--store", store, "--json"])
    assert shown.exit_code == 0
    info = json.loads(shown.stdout)
    assert info["run_id"] == rid and info["status"] == "done" and info["verdict"]["verdict"] == "holds"
    assert any(c.startswith("experiment:") for c in info["curves"]) and any(c.startswith("theory:") for c in info["curves"])
    missing = runner.invoke(app, ["show", "zzzz", "--store", store])
    assert missing.exit_code == 2 and missing.stderr.startswith("error: RUN:")


def test_the_atlas_page_renders_every_claim_with_its_figure_in_chromium(killed_then_resumed):
    """The page `learnmech atlas --quick` wrote, in headless Chromium: a card per claim, each figure loaded."""
    import browser

    browser.usable_or_skip()
    index = killed_then_resumed["store"].parent / "report" / "index.html"
    shot = browser.artifact_path("atlas-quick.png")
    report = browser.check_page(index, shot)
    assert report.card_ids == [f"claim-{c.id}" for c in CLAIMS]
    assert all(card.images == (True,) for card in report.cards), report.summary()
    verdicts = {card.id.removeprefix("claim-"): card.verdict for card in report.cards}
    assert verdicts == {c.id: "fails" if c.id in QUICK_FAILS else "holds" for c in CLAIMS}
    assert report.ok, report.summary()  # no console or page error, every filter right
    assert shot.stat().st_size > 50_000
