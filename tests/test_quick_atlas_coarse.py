"""The quick atlas's second half: the coarse-law claims (issue 18), run through the CLI on their own store
(tests/test_quick_atlas.py runs the rest; the two modules run on the suite's two workers side by side). Each
quick verdict is the one the README reports, a second run skips everything, and each verdict is re-decided
from the store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from learnmech import __version__
from learnmech.atlas import all_claims
from learnmech.atlas.runner import record_from_columns, stored_verdict
from learnmech.cli import app
from learnmech.store import Store, run_id
from test_quick_atlas import COARSE, QUICK_VERDICTS

CLAIMS = [c for c in all_claims().values() if c.id in COARSE]
SKIP = [arg for claim_id in all_claims() if claim_id not in COARSE for arg in ("--skip", claim_id)]
EXPECTED = {c.id: QUICK_VERDICTS.get(c.id, "holds") for c in CLAIMS}
runner = CliRunner()


@pytest.fixture(scope="module")
def quick_atlas(tmp_path_factory):
    store = tmp_path_factory.mktemp("atlas-coarse") / "learnmech.duckdb"
    first = runner.invoke(app, ["atlas", "--quick", *SKIP, "--store", str(store), "--json"])
    again = runner.invoke(app, ["atlas", "--quick", *SKIP, "--store", str(store), "--json"])
    return {"store": store, "first": first, "again": again}


def test_every_quick_verdict_is_the_one_reported_and_a_second_run_skips(quick_atlas):
    assert len(CLAIMS) == len(COARSE)
    result = quick_atlas["first"]
    assert result.exit_code == (1 if "fails" in EXPECTED.values() else 0), result.output
    outcomes = json.loads(result.stdout)
    assert [o["state"] for o in outcomes] == ["done"] * len(CLAIMS), result.stderr
    assert {o["claim"]: o["verdict"]["status"] for o in outcomes} == EXPECTED
    again = json.loads(quick_atlas["again"].stdout)
    assert [o["state"] for o in again] == ["skipped"] * len(CLAIMS)


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_quick_verdict_is_redecided_from_the_store(claim, quick_atlas):
    rid = run_id(claim.id, claim.make_config("quick").model_dump(mode="json"), __version__)
    with Store.open(quick_atlas["store"], create=False, read_only=True) as db:
        verdict = stored_verdict(db, rid)
        summary = record_from_columns(db.series(rid, source="summary"), "summary")
    again = claim.decide(summary)
    assert (again.status, again.metric) == (verdict.status, verdict.metric)
    np.testing.assert_allclose(again.value, verdict.value, rtol=1e-12)
