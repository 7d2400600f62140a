"""The shared conformance test: every registered claim's ``tiny`` preset, run in this process.

For each claim: its presets validate and round-trip through JSON; a ``tiny`` run completes (its
verdict is not asserted: tiny may be too small for the claim to hold) and is written to a store;
read back from the store alone, the prediction is what ``predict`` gives again (it is pure), and
the stored summary, decided again by the claim's rules, gives the stored verdict; the figure was
written as PNG and SVG. A claim added to the registry is checked here with no other test.

A claim whose own test file checks numbers of its tiny run (``check_tiny_details`` there) is checked on
this same run, and a claim test file that needs the tiny run's curves gets this same run from the
``tiny_payload`` fixture (tests/conftest.py), so that each tiny preset runs once in the suite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from learnmech.atlas import all_claims
from learnmech.atlas.contract import PRESETS, Curve
from learnmech.atlas.execute import record_from_columns, verdict_from_row
from learnmech.store import Store
from learnmech.sweep.payload import record_payload

CLAIMS = list(all_claims().values())


def _tiny_details_checks() -> dict:
    """Claim id -> its test file's ``check_tiny_details(details)`` (tests/ is on sys.path, as for
    bad_input_matrix); imported here so that the checks stay beside each claim's other tests."""
    import test_central_flow
    import test_conservation
    import test_feature_ansatz
    import test_hea
    import test_max_margin
    import test_richness_lr
    import test_signal_propagation

    return {"laws.central-flow": test_central_flow.check_tiny_details,
            "conservation.balancedness": test_conservation.check_tiny_details,
            "laws.feature-ansatz": test_feature_ansatz.check_tiny_details,
            "kernel.hea": test_hea.check_tiny_details,
            "solvable.max-margin": test_max_margin.check_tiny_details,
            "limits.richness-lr": test_richness_lr.check_tiny_details,
            "limits.signal-propagation": test_signal_propagation.check_tiny_details}


TINY_DETAILS = _tiny_details_checks()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with Store.open(tmp_path_factory.mktemp("tiny") / "learnmech.duckdb") as db:
        yield db


def _same(a, b):
    if isinstance(a, Curve):
        assert isinstance(b, Curve)
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_allclose(a.y, b.y, rtol=1e-12, equal_nan=True)
    else:
        assert not isinstance(b, Curve)
        np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_tiny_run_is_reproduced_from_the_store(claim, store, tiny_payload):
    assert set(PRESETS) <= set(claim.presets), f"{claim.id}: presets {sorted(claim.presets)}"
    for preset in PRESETS:
        cfg = claim.make_config(preset)
        assert claim.config.model_validate_json(cfg.model_dump_json()) == cfg
    assert claim.statement and claim.references and claim.pillar
    tiny = claim.make_config("tiny")
    payload = tiny_payload(claim)  # execute_run(claim, "tiny", tiny config), once per test run (conftest.py)
    assert payload.state == "done", payload.error
    if claim.id in TINY_DETAILS:  # the claim's own numbers on this run
        TINY_DETAILS[claim.id](verdict_from_row(payload.verdict).details)
    store.begin_run(payload.run_id, claim=claim.id, preset="tiny", config=tiny.model_dump(mode="json"),
                    versions=payload.versions, host=payload.host)
    paths = [Path(p) for p in record_payload(store, payload)]
    assert {p.suffix for p in paths} == {".png", ".svg"}
    assert all(p.stat().st_size > 1000 for p in paths)

    cols = store.series(payload.run_id)
    verdict = verdict_from_row(store.verdict(payload.run_id))
    assert np.isfinite(verdict.threshold) and verdict.reason
    prediction = record_from_columns(cols, "theory")
    fresh = claim.predict(tiny)
    assert fresh.keys() == prediction.keys()
    for name, entry in fresh.items():  # predict is pure: the same numbers again, as stored
        _same(entry, prediction[name])
    summary = record_from_columns(cols, "summary")
    assert summary, f"{claim.id}: no summary stored"
    again = claim.decide(summary)  # re-decided from the store alone
    assert (again.status, again.metric) == (verdict.status, verdict.metric)
    np.testing.assert_allclose(again.value, verdict.value, rtol=1e-12, equal_nan=True)


def test_every_tiny_details_check_names_a_registered_claim():
    assert set(TINY_DETAILS) <= {c.id for c in CLAIMS}  # a renamed claim would silently skip its checks


def test_rules_decide_guards_then_checks_and_decisive_failures_first():
    """The rule engine on hand-made summaries: a guard's inconclusive, a failing check, a NaN that passes nothing."""
    from learnmech.atlas.rules import Check, Rules, decide, diverged

    rules = Rules(guards=(diverged(),), checks=(Check("a", "a", ">=", 1.0), Check("b", "b", "<=", "b_max")))
    ok = {"diverged": 0.0, "a": 2.0, "b": 0.5, "b_max": 1.0}
    assert decide(rules, ok).status == "holds" and decide(rules, ok).metric == "a"
    assert decide(rules, {**ok, "b": 1.5}).metric == "b" and decide(rules, {**ok, "b": 1.5}).threshold == 1.0
    assert decide(rules, {**ok, "a": float("nan")}).status == "fails"
    failing_and_diverged = {**ok, "diverged": 1.0, "a": 0.5}
    assert decide(rules, failing_and_diverged).status == "inconclusive"
    decisive = Rules(guards=rules.guards, checks=rules.checks, decisive_failures=True)
    assert decide(decisive, failing_and_diverged).status == "fails"
    assert decide(decisive, {**failing_and_diverged, "a": float("nan")}).status == "inconclusive"
