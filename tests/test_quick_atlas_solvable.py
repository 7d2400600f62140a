"""The quick atlas's third part: the solvable models and the three limits of issue 19, run through the CLI on
their own store (tests/test_quick_atlas.py and tests/test_quick_atlas_coarse.py run the rest; the modules spread
over the suite's two workers). Each quick verdict is the one the README reports, a second run skips everything,
and each verdict is re-decided from the store."""

from __future__ import annotations

import json

import pytest

from learnmech.atlas import all_claims
from test_quick_atlas import SOLVABLE, QUICK_VERDICTS, redecide_from_the_store, run_quick_atlas

CLAIMS = [c for c in all_claims().values() if c.id in SOLVABLE]
SKIP = [arg for claim_id in all_claims() if claim_id not in SOLVABLE for arg in ("--skip", claim_id)]
EXPECTED = {c.id: QUICK_VERDICTS.get(c.id, "holds") for c in CLAIMS}


@pytest.fixture(scope="module")
def quick_atlas(tmp_path_factory):
    return run_quick_atlas(tmp_path_factory.mktemp("atlas-solvable"), SKIP)


def test_every_quick_verdict_is_the_one_reported_and_a_second_run_skips(quick_atlas):
    assert len(CLAIMS) == len(SOLVABLE)
    result = quick_atlas["first"]
    assert result.exit_code == (1 if "fails" in EXPECTED.values() else 0), result.output
    outcomes = json.loads(result.stdout)
    assert [o["state"] for o in outcomes] == ["done"] * len(CLAIMS), result.stderr
    assert {o["claim"]: o["verdict"]["status"] for o in outcomes} == EXPECTED
    again = json.loads(quick_atlas["again"].stdout)
    assert [o["state"] for o in again] == ["skipped"] * len(CLAIMS)


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_quick_verdict_is_redecided_from_the_store(claim, quick_atlas):
    redecide_from_the_store(claim, quick_atlas["store"])
